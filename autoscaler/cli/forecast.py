"""The dry-run forecast (`autoscaler forecast`): what the daemon expects and would do.

Reads live metrics and the fleet, writes nothing: no scaling, no state, no log.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pandas as pd
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from autoscaler.calibration import LoopCalibrated, with_margin
from autoscaler.cli.views import field_blocks
from autoscaler.config.schema import Pool
from autoscaler.metrics import MetricsSource
from autoscaler.overrides import OverridesFile, active_override
from autoscaler.plan import limits_of, noticing_change_by_hand, plan
from autoscaler.policy import Decision, Observation, apply_bounds, nodes_for
from autoscaler.pool_predictor import make_pool_predictor
from autoscaler.schedules import bounds_at
from autoscaler.signals.observe import observe_signals
from autoscaler.sizing import Sizing, forecast_demand, observe_demand, size_fleet
from autoscaler.state import PoolState, StateStore
from autoscaler.tick import PoolTicker
from backends.base import BackendError, FleetState
from common.cli import option_duration, option_positive
from predictors import Predictor

FORECAST_MAX_HOURS = 31 * 24
"""A month ahead, past which a forecast of a week's pattern says nothing more: 100 years
(--hours 876000) once forecast 52 million minutes, 8 GB and minutes, without a word."""
FORECAST_MAX_ROWS = 7 * 24 * 60
"""A week of minutes: each row costs the table a millisecond (2000 h of 1m rows: a minute)."""


def forecast_spans(hours: float, every: str) -> tuple[timedelta, timedelta]:
    """--hours and --every as spans; ValueError naming the option where one is out of reach."""
    if option_positive("--hours", hours, "hours") > FORECAST_MAX_HOURS:
        raise ValueError(f"--hours: at most {FORECAST_MAX_HOURS} (a month ahead), got {hours:g}")
    ahead = timedelta(hours=hours)
    row = option_duration("--every", every, positive=True)
    if row > ahead:
        raise ValueError(f"--every {every} is longer than the forecast (--hours {hours:g})")
    if ahead / row > FORECAST_MAX_ROWS:
        raise ValueError(
            f"--every {every} over {hours:g} h is {ahead // row:,} rows, more than "
            f"{FORECAST_MAX_ROWS:,}: give a longer --every"
        )
    return ahead, row


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
    """One row per `every` of the forecast: the nodes its upper band needs with the pool's
    spare nodes (as the daemon sizes), and the count the bounds would allow."""
    assert sizing.forecast is not None
    frame = pd.DataFrame(
        {"point": sizing.forecast.point, "upper": sizing.forecast.upper},
        index=sizing.forecast.times,
    )
    blocks = frame.resample(pd.Timedelta(every), origin="start", label="right").max().dropna()
    last = sizing.forecast.times[-1].to_pydatetime()
    rows = []
    for at, values in blocks.iterrows():
        when = min(at.to_pydatetime(), last)  # a last, shorter block ends where the forecast does
        upper = float(values["upper"])
        nodes = nodes_for(upper, per_node_rps, pool.target_utilization) + pool.spare_nodes
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


@dataclass
class PoolForecast:
    """What `forecast` shows of one pool; `problem` says why the rest is missing."""

    pool: Pool
    problem: str | None = None
    history: pd.Series | None = None
    long_view: Sizing | None = None
    """The forecast over the hours asked for (at least the pool's horizon)."""
    rows: list[ForecastRow] = field(default_factory=list)
    now: Sizing | None = None
    """The forecast over the pool's own horizon: what the daemon sizes with."""
    fleet: FleetState | None = None
    decision: Decision | None = None


def as_the_daemon_sizes(
    pool: Pool, per_node_rps: float, state: PoolState, now: datetime, weeks: StateStore | None
) -> Predictor:
    """The pool's forecaster, fitted once, wrapped as the daemon wraps it: under a
    calibrated margin (`widen`, the default, or `loop`) with the loop's saved calibration
    and the week of ticks it was calibrated on taken up (read only), so that the band is
    the followed member's at the daemon's margin, not the forecaster's as it made it."""
    inner = make_pool_predictor(pool, one_shot=True)
    predictor = with_margin(pool, inner, per_node_rps, limits_of(pool))
    if isinstance(predictor, LoopCalibrated):
        week = None if weeks is None else weeks.load_week(pool.name, now.tzinfo)
        predictor.restart_from(state.loop, week, now)
    return predictor


def forecast_pool(
    ticker: PoolTicker,
    metrics: MetricsSource,
    max_staleness: timedelta,
    now: datetime,
    state: PoolState,
    overrides: OverridesFile,
    hours: timedelta,
    every: timedelta,
) -> PoolForecast:
    """The forecast table's rows and what the daemon would decide this instant, from its
    saved memory (not changed): the daemon's own observe → size → plan steps, with its
    loop's margin and policy."""
    pool = ticker.pool
    result = PoolForecast(pool)
    # One query serves both the long view and the decision now (same demand window).
    observed = observe_demand(pool, metrics, now, max_staleness)
    history = observed if isinstance(observed, str) else observed.series
    result.history = None if isinstance(history, str) else history
    per_node_rps, capacity_note = ticker.per_node_rps, None
    if ticker.capacity is not None:  # sized as the daemon sizes (no Slack from here)
        ticker.capacity.resume(state.capacity)
        ticker.capacity.refresh(metrics, now)
        per_node_rps, capacity_note = ticker.capacity.sizing()
    # The loop replays its week at the rate the pool was built with, as the daemon's does
    # (its predictor is made once, at start or reload); only the sizing takes the measured.
    predictor = as_the_daemon_sizes(pool, ticker.per_node_rps, state, now, ticker.weeks)
    # The decision's sizing first, over the pool's horizon as the daemon's tick asks it:
    # a forecaster asked a longer horizon first learns its band over those leads. Without
    # a forecast (no data, a failed fit) the daemon still decides (a hold, a floor): so here.
    result.now = forecast_demand(pool, predictor, history, per_node_rps)
    if result.history is not None and result.now.forecast is not None:
        long_view = pool.model_copy(update={"horizon": max(hours, pool.horizon)})
        result.long_view = size_fleet(long_view, predictor, result.history, per_node_rps)
    ahead = result.long_view or result.now
    if ahead.forecast is None:
        result.problem = f"no forecast: {ahead.missing_reason}"
    else:
        result.rows = forecast_rows(pool, ahead, per_node_rps, overrides, every)
    try:
        result.fleet = ticker.backend.read()
    except BackendError as exc:
        unreadable = f"fleet unreadable ({exc}); no decision"
        result.problem = unreadable if result.problem is None else f"{result.problem}; {unreadable}"
        return result
    readings = observe_signals(
        pool, metrics, now, max_staleness, result.fleet, result.now, per_node_rps
    )
    result.now = replace(result.now, signals=readings, capacity_note=capacity_note)
    current = result.fleet.desired
    memory = noticing_change_by_hand(state.memory, ticker.last_count(state), current, now)
    result.decision, _ = plan(pool, result.now, now, current, overrides, memory)
    return result


COLUMNS = ("time (UTC)", "demand/s", "upper/s", "nodes", "floor", "override", "desired")


def forecast_view(
    pool: Pool, rows: list[ForecastRow], model: str, console: Console
) -> RenderableType:
    """The forecast table where the terminal holds it; else a block of lines a row (at 20
    columns the table cut every cell to nothing)."""
    table = forecast_table(pool, rows, model)
    unbounded = console.options.update_width(10_000)  # else the measure is cut to the width
    if console.measure(table, options=unbounded).maximum <= console.width:
        return table
    blocks = [
        (Text(cells[0], style="bold"), list(zip(COLUMNS[1:], cells[1:], strict=True)))
        for cells in map(_cells, rows)
    ]
    return field_blocks(_title(pool, model), blocks)


def forecast_table(pool: Pool, rows: list[ForecastRow], model: str) -> Table:
    table = Table(title=_title(pool, model))
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*_cells(row))
    return table


def _title(pool: Pool, model: str) -> str:
    return (
        f"{pool.name}: forecast ({model}), per-node capacity × "
        f"{pool.target_utilization:.0%} target utilization"
    )


def _cells(row: ForecastRow) -> tuple[str, ...]:
    return (
        f"{row.at:%a %m-%d %H:%M}",
        f"{row.point_rps:.2f}",
        f"{row.upper_rps:.2f}",
        str(row.nodes),
        "-" if row.schedule_floor is None else str(row.schedule_floor),
        row.override or "-",
        str(row.desired),
    )


def _describe(override: object) -> str:
    if override is None:
        return ""
    nodes = getattr(override, "nodes", None)
    if nodes is not None:
        return f"fixed {nodes}"
    low, high = getattr(override, "min_nodes", None), getattr(override, "max_nodes", None)
    return f"{'' if low is None else low}..{'' if high is None else high}"
