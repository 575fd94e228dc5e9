"""What one pool's tick made of it, and the decision record that explains it.

The daemon, the decision log, /metrics, `status`, the demo and the benches read it; its
own room beside autoscaler.tick, which makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autoscaler.decision_log import to_json_value
from autoscaler.policy import Decision
from autoscaler.sizing import Sizing
from autoscaler.state import PoolState
from backends.base import FleetState
from predictors import Forecast


@dataclass
class TickResult:
    pool: str
    at: datetime
    fleet: FleetState | None
    sizing: Sizing
    decision: Decision | None
    acted: bool = False
    backend_note: str | None = None
    """What the fleet made of the request (e.g. clamped to a cloud group's MaxSize)."""
    dry_run: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    after: int | None = None
    """The count the fleet holds after the tick, as read back where it clamped the one
    asked for (the digest's nodes paid); None where not known."""


def peak_of(forecast: Forecast | None, which: str) -> float | None:
    """The forecast's peak, of its point or (`which`: "upper") its upper band; None without one."""
    if forecast is None:
        return None
    return forecast.peak_upper() if which == "upper" else forecast.peak_point()


def decision_record(result: TickResult) -> dict[str, Any]:
    """One JSON line per pool per tick: everything needed to explain the decision later."""
    decision, fleet, sizing = result.decision, result.fleet, result.sizing
    return {
        "time": result.at,
        "pool": result.pool,
        "demand_rps": sizing.demand_now,
        "forecast_rps": peak_of(sizing.forecast, "point"),
        "forecast_upper_rps": peak_of(sizing.forecast, "upper"),
        "forecast_model": sizing.forecast.model if sizing.forecast else None,
        "forecast_nodes": sizing.nodes,
        "signals": [reading.record() for reading in sizing.signals],
        "current": fleet.desired if fleet else None,
        "ready": fleet.ready if fleet else None,
        "pending": fleet.pending if fleet else None,
        "target": decision.target if decision else None,
        "desired": decision.desired if decision else None,
        "action": ("would_" if result.dry_run and decision and decision.action != "none" else "")
        + (decision.action if decision else "skipped"),
        "acted": result.acted,
        "after": result.after,
        "backend_note": result.backend_note,
        "dry_run": result.dry_run,
        "reasons": list(decision.reasons) if decision else ["fleet state unknown: no decision"],
        "errors": result.errors,
    }


def held(pool: str, dry_run: bool, now: datetime, state: PoolState, why: str) -> TickResult:
    """The result of a pool that did not tick: nothing decided, nothing written (what
    `status` shows of it, as a tick keeps its own)."""
    result = TickResult(pool, now, None, Sizing(), None, dry_run=dry_run)
    result.errors["tick"] = why
    state.last_decision = to_json_value(decision_record(result))
    return result
