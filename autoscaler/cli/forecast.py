"""The dry-run forecast (`autoscaler forecast`): what the daemon expects and would do.

Reads live metrics and the fleet, writes nothing: no scaling, no state, no log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from rich.table import Table

from autoscaler.config.schema import Pool
from autoscaler.overrides import OverridesFile, active_override
from autoscaler.policy import Decision, Observation, apply_bounds, decide, nodes_for
from autoscaler.schedules import bounds_at
from autoscaler.state import PoolState
from autoscaler.tick import Sizing, limits_of, observe
from backends.base import FleetState


@dataclass(frozen=True)
class ForecastRow:
    at: datetime
    point_rps: float
    upper_rps: float
    nodes: int
    schedule_floor: int | None
    override: str
    desired: int


def forecast_rows(
    pool: Pool, sizing: Sizing, per_node_rps: float, overrides: OverridesFile, every: timedelta
) -> list[ForecastRow]:
    """One row per `every` of the forecast, each with the count the bounds would allow."""
    assert sizing.forecast is not None
    frame = pd.DataFrame(
        {"point": sizing.forecast.point, "upper": sizing.forecast.upper},
        index=sizing.forecast.times,
    )
    blocks = frame.resample(pd.Timedelta(every), origin="start", label="right").max().dropna()
    rows = []
    for at, values in blocks.iterrows():
        when = at.to_pydatetime()
        nodes = nodes_for(float(values["upper"]), per_node_rps, pool.target_utilization)
        override = active_override(overrides, pool.name, when)
        schedule = bounds_at(pool.schedules, when)
        obs = Observation(
            at=when, current=nodes, forecast_nodes=nodes, schedule=schedule, override=override
        )
        desired = apply_bounds(nodes, obs, limits_of(pool), [])
        rows.append(
            ForecastRow(
                when,
                float(values["point"]),
                float(values["upper"]),
                nodes,
                schedule.floor,
                _describe(override),
                desired,
            )
        )
    return rows


def decision_now(
    pool: Pool,
    sizing: Sizing,
    fleet: FleetState,
    now: datetime,
    state: PoolState,
    overrides: OverridesFile,
) -> Decision:
    """What the daemon would decide this instant, from its saved memory (not changed)."""
    obs = observe(pool, sizing, now, fleet.desired, overrides)
    decision, _ = decide(obs, limits_of(pool), state.memory)
    return decision


def forecast_table(pool: Pool, rows: list[ForecastRow], model: str) -> Table:
    table = Table(
        title=f"{pool.name}: forecast ({model}), per-node capacity × "
        f"{pool.target_utilization:.0%} target utilization"
    )
    for column in ("time (UTC)", "demand/s", "upper/s", "nodes", "floor", "override", "desired"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row.at:%a %m-%d %H:%M}",
            f"{row.point_rps:.2f}",
            f"{row.upper_rps:.2f}",
            str(row.nodes),
            "-" if row.schedule_floor is None else str(row.schedule_floor),
            row.override or "-",
            str(row.desired),
        )
    return table


def _describe(override: object) -> str:
    if override is None:
        return ""
    nodes = getattr(override, "nodes", None)
    if nodes is not None:
        return f"fixed {nodes}"
    low, high = getattr(override, "min_nodes", None), getattr(override, "max_nodes", None)
    return f"{'' if low is None else low}..{'' if high is None else high}"
