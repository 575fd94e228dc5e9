"""`autoscaler status`: every pool, from the fleet and the daemon's state (a table; on a
narrow terminal a block of lines per pool).

Reads the config, the state file and the overrides file, and asks each pool's fleet for
its count now (a read, never a write); a fleet that cannot be reached is said so, and the
rest still shows, from the saved state.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from autoscaler.cli.views import field_blocks
from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.config.schema import Config, Pool
from autoscaler.overrides import OverridesFile, active_override
from autoscaler.schedules import bounds_at, next_change
from autoscaler.state import PoolState
from backends import make_backend
from backends.base import BackendError, FleetState
from common.clock import Clock
from common.durations import format_duration, format_span


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
    failing: bool = False
    """The fleet cannot be read, or the last tick had an error: `status` exits 1."""


FLEET_READERS = 16
"""Fleets asked at once by `status`."""


def read_fleets(
    config: Config, clock: Clock, env: Mapping[str, str] = os.environ
) -> dict[str, FleetState | str]:
    """Each pool's fleet as it is now, or why it cannot be read (the backends' read()),
    asked FLEET_READERS at a time: one after another, a fleet API that did not answer
    (each read retried for most of a minute) held `status` that long for every pool on
    it, a quarter of an hour for 20 pools while Nomad was down. The readers are daemon
    threads, so Ctrl-C does not wait for them."""
    todo: queue.SimpleQueue[Pool] = queue.SimpleQueue()
    for pool in config.pools:
        todo.put(pool)
    fleets: dict[str, FleetState | str] = {}
    failed: list[BaseException] = []  # raised here, as a read one after another raised it

    def reader() -> None:
        while not failed:
            try:
                pool = todo.get_nowait()
            except queue.Empty:
                return
            try:
                fleets[pool.name] = _read_fleet(pool, clock, env)
            except BaseException as exc:
                failed.append(exc)

    readers = [
        threading.Thread(target=reader, name="status: fleet", daemon=True)
        for _ in range(min(FLEET_READERS, len(config.pools)))
    ]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()
    if failed:
        raise failed[0]
    return {pool.name: fleets[pool.name] for pool in config.pools}


def _read_fleet(pool: Pool, clock: Clock, env: Mapping[str, str]) -> FleetState | str:
    try:
        return make_backend(pool.backend, clock, env, boot_time=pool.boot_time).read()
    except (BackendError, ValueError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)


def _current(fleet: FleetState | str | None, saved: object) -> str:
    if isinstance(fleet, FleetState):
        stuck = f"; not coming up: {fleet.stuck}" if fleet.stuck else ""
        return f"{fleet.desired} ({fleet.ready} ready, {fleet.pending} pending{stuck})"
    at_tick = f"{_text(saved)} at the last tick; " if saved is not None else ""
    return f"{at_tick}fleet unreachable: {fleet}" if fleet else _text(saved)


def pool_statuses(
    config: Config,
    states: dict[str, PoolState],
    overrides: OverridesFile | None,
    now: datetime,
    fleets: Mapping[str, FleetState | str] | None = None,
) -> list[PoolStatus]:
    """One row per pool (pure); `fleets` is what read_fleets found, by pool; `overrides`
    None where the file does not read (each pool's override is then unknown, not none)."""
    rows = []
    # Ticks on the wall clock (a replayed trace's are on the trace's): staleness is judged.
    live = config.simulation is None and isinstance(config.metrics, PrometheusMetrics)
    for pool in config.pools:
        state = states.get(pool.name, PoolState())
        last = state.last_decision or {}
        bounds = bounds_at(pool.schedules, now)
        upcoming = next_change(pool.schedules, now)
        failing = ", ".join(
            f"{kind} since {since.astimezone(UTC):%m-%d %H:%M} UTC"
            for kind, since in state.failing.items()
        )
        errors = last.get("errors") or {}
        fleet = (fleets or {}).get(pool.name)
        last_error = failing or "; ".join(f"{k}: {v}" for k, v in errors.items()) or "-"
        failing_now = last_error != "-" or isinstance(fleet, str)
        stale = stale_tick(last.get("time"), now, config.interval) if live else None
        if stale is not None:
            if config.leader_election is not None:  # a standby's state stops too: said only
                stale += " (or another replica leads: its state is on its own host)"
            else:
                failing_now = True
            last_error = stale if last_error == "-" else f"{stale}; {last_error}"
        rows.append(
            PoolStatus(
                pool=pool.name,
                current=_current(fleet, last.get("current")),
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
                override=override_text(overrides, pool.name, now),
                next_change=f"{upcoming[0]:%a %m-%d %H:%M} UTC {upcoming[1]}" if upcoming else "-",
                last_error=last_error,
                signals=_signals(last.get("signals") or []),
                failing=failing_now,
            )
        )
    return rows


def override_text(overrides: OverridesFile | None, pool: str, now: datetime) -> str:
    """The override in force, or one planned ahead (`override set --from`): a pin for
    tomorrow's campaign showed as none until it began, and looked forgotten."""
    if overrides is None:
        return "unknown: the overrides file does not read"
    override = active_override(overrides, pool, now)
    if override is not None:
        return f"{override.describe()} until {override.expires:%m-%d %H:%M %z}: {override.reason}"
    planned = overrides.overrides.get(pool)
    if planned is None or planned.starts is None or now >= planned.starts:
        return "-"
    return (
        f"planned: {planned.describe()} from {planned.starts:%m-%d %H:%M %z} until "
        f"{planned.expires:%m-%d %H:%M %z}: {planned.reason}"
    )


STALE_TICKS = 3
"""A pool whose last tick is older than this many intervals is said to be not ticking."""


def stale_tick(last_time: object, now: datetime, interval: timedelta) -> str | None:
    """Where the last tick is more than STALE_TICKS intervals old, words that say so: a
    daemon that stopped (or hangs) leaves a state that looks healthy, and `status` then
    read "ok" at 3 a.m. (exit 0) while nothing scaled. None where the tick is recent or
    there was none (never ticked is said as such)."""
    if not isinstance(last_time, str):
        return None
    try:
        at = datetime.fromisoformat(last_time)
    except ValueError:
        return None
    if at.tzinfo is None or now - at <= STALE_TICKS * interval:
        return None
    return (
        f"no tick for {format_span(now - at)} (interval "
        f"{format_duration(interval)}): is the daemon running?"
    )


COLUMNS = (
    "pool",
    "current (fleet now)",
    "desired (last tick)",
    "last decision",
    "schedule",
    "override",
    "next schedule change",
    "last error",
    "signals",
)
TABLE_WIDTH = 150
"""Below this many columns the nine-column table folds every cell into a word a line (an
80-column terminal, a cron mail): each pool is shown as a block of lines instead."""


def _cells(row: PoolStatus) -> tuple[str, ...]:
    return (
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


def status_view(rows: list[PoolStatus], width: int) -> RenderableType:
    """The status table where `width` holds it; else one block per pool, a field a line."""
    return status_table(rows) if width >= TABLE_WIDTH else status_blocks(rows)


def status_table(rows: list[PoolStatus]) -> Table:
    table = Table(title="autoscaler status", show_lines=True)
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in _cells(row)))  # people's text, never markup
    return table


def status_blocks(rows: list[PoolStatus]) -> Group:
    shown = []
    for row in rows:
        heading = Text(row.pool, style="bold")
        heading.append("  failing" if row.failing else "  ok", "red" if row.failing else "green")
        shown.append((heading, list(zip(COLUMNS[1:], _cells(row)[1:], strict=True))))
    return field_blocks("autoscaler status", shown)


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
