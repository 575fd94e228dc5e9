"""`autoscaler status`: one table of every pool, from the daemon's saved state.

Reads the state file, the config and the overrides file; asks no server and writes
nothing, so it answers even when Prometheus or the fleet is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.table import Table
from rich.text import Text

from autoscaler.config.schema import Config
from autoscaler.overrides import OverridesFile, active_override
from autoscaler.schedules import bounds_at, next_change
from autoscaler.state import PoolState


@dataclass(frozen=True)
class PoolStatus:
    pool: str
    current: str
    desired: str
    last_decision: str
    schedule: str
    override: str
    next_change: str
    last_error: str
    signals: str = "-"


def pool_statuses(
    config: Config, states: dict[str, PoolState], overrides: OverridesFile, now: datetime
) -> list[PoolStatus]:
    rows = []
    for pool in config.pools:
        state = states.get(pool.name, PoolState())
        last = state.last_decision or {}
        bounds = bounds_at(pool.schedules, now)
        override = active_override(overrides, pool.name, now)
        upcoming = next_change(pool.schedules, now)
        failing = ", ".join(
            f"{kind} since {since:%m-%d %H:%M}" for kind, since in state.failing.items()
        )
        errors = last.get("errors") or {}
        rows.append(
            PoolStatus(
                pool=pool.name,
                current=_text(last.get("current")),
                desired=_text(last.get("desired")),
                last_decision=(
                    f"{last.get('time', '?')} {last.get('action', '?')}: "
                    + "; ".join(last.get("reasons", []))
                    if last
                    else "never ticked"
                ),
                schedule=(
                    f"{', '.join(bounds.active)} (floor {_text(bounds.floor)}, "
                    f"ceiling {_text(bounds.ceiling)})"
                    if bounds.active
                    else "-"
                ),
                override=(
                    f"{override.describe()} until {override.expires:%m-%d %H:%M %z}: "
                    f"{override.reason}"
                    if override
                    else "-"
                ),
                next_change=f"{upcoming[0]:%a %m-%d %H:%M} UTC {upcoming[1]}" if upcoming else "-",
                last_error=failing or "; ".join(f"{k}: {v}" for k, v in errors.items()) or "-",
                signals=_signals(last.get("signals") or []),
            )
        )
    return rows


def status_table(rows: list[PoolStatus]) -> Table:
    table = Table(title="autoscaler status", show_lines=True)
    for column in (
        "pool",
        "current",
        "desired",
        "last decision",
        "schedule",
        "override",
        "next schedule change",
        "last error",
        "signals",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = (
            row.pool,
            row.current,
            row.desired,
            row.last_decision,
            row.schedule,
            row.override,
            row.next_change,
            row.last_error,
            row.signals,
        )
        table.add_row(*(Text(cell) for cell in cells))  # people's text, never rich markup
    return table


def _signals(records: list[dict[str, object]]) -> str:
    """Each signal's count at the last tick ("backlog 5, gpu no data"); details in reasons."""
    shown = []
    for record in records:
        nodes = record.get("nodes")
        state = "bad input" if record.get("bad_input") else "no data" if nodes is None else nodes
        shown.append(f"{record.get('name')} {state}")
    return ", ".join(shown) or "-"


def _text(value: object) -> str:
    return "-" if value is None else str(value)
