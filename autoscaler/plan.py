"""From one sizing to one decision, and from a decision to the fleet: the steps the
daemon (autoscaler.tick), `forecast` and the backtest share, so that none of them
forgets a field of what decide() looks at, nor the act step's order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from autoscaler.config.schema import Pool
from autoscaler.overrides import OverridesFile, active_override
from autoscaler.policy import Decision, Limits, Memory, Observation, decide
from autoscaler.schedules import bounds_at
from autoscaler.sizing import Sizing
from backends.base import Backend


def limits_of(pool: Pool) -> Limits:
    return Limits(
        min_nodes=pool.min_nodes,
        max_nodes=pool.max_nodes,
        stabilization=pool.scale_down.stabilization,
        max_step_down=pool.scale_down.max_step,
        cooldown=pool.cooldown,
        max_step_up=pool.scale_up.max_step,
        max_percent_up=pool.scale_up.max_percent,
    )


def observe(
    pool: Pool, sizing: Sizing, now: datetime, current: int, overrides: OverridesFile | None
) -> Observation:
    """What decide() looks at, from one sizing: the daemon, `forecast` and the backtest
    all build it here, so none of them forgets a field."""
    return Observation(
        at=now,
        current=current,
        forecast_nodes=sizing.nodes,
        demand_nodes=sizing.demand_nodes,
        arrival_nodes=sizing.arrival_nodes,
        spare_nodes=sizing.spare_nodes,
        signals=sizing.signals,
        capacity_note=sizing.capacity_note,
        notes=sizing.notes,
        missing_reason=sizing.missing_reason,
        schedule=bounds_at(pool.schedules, now),
        override=active_override(overrides, pool.name, now) if overrides else None,
    )


def noticing_change_by_hand(
    memory: Memory, last_known: int | None, current: int, now: datetime
) -> Memory:
    """`memory`, with `now` as a change by hand where the fleet's count is not the one the
    last tick left (`last_known`; None: unknown): decide() then holds that count for the
    cooldown rather than fight it. The daemon and `forecast` both notice it here."""
    if last_known is None or current == last_known:
        return memory
    return replace(memory, manual_change_at=now)


def plan(
    pool: Pool,
    sizing: Sizing,
    now: datetime,
    current: int,
    overrides: OverridesFile | None,
    memory: Memory,
) -> tuple[Decision, Memory]:
    """From one sizing to the decision, and the memory the next tick starts from: the
    daemon, `forecast` and the backtest all decide here."""
    return decide(observe(pool, sizing, now, current, overrides), limits_of(pool), memory)


def act(backend: Backend, decision: Decision, before_write: Callable[[], None]) -> str | None:
    """Set the fleet to a decision that changes its count (the daemon and the backtest);
    `before_write` runs just before the write. Returns what the fleet made of it."""
    before_write()
    return backend.scale(decision.desired, "; ".join(decision.reasons))
