"""The forecast-and-size step of a tick: from a pool's checked demand history to node counts.

Its own room because sizing is shared: the daemon's tick, `autoscaler forecast` and the
backtest all size through the pure `size_fleet`, so its rules (the upper peak over the
horizon, the peak from boot_time on, the reactive floor, spare nodes) live apart from the
tick's acting, telling and remembering. `observe_demand` and `forecast_demand` put the
checked metrics read in front of it, where no data is a reason, never zero nodes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from autoscaler.config.schema import Pool
from autoscaler.history_masks import history_to_learn
from autoscaler.kept_demand import KeptDemand
from autoscaler.loop_replay import REACTIVE_UTILIZATION
from autoscaler.metrics import MetricsError, MetricsSource, fetch_demand
from autoscaler.policy import nodes_for
from autoscaler.signals.weigh import SignalReading
from predictors import Forecast, Predictor


@dataclass(frozen=True)
class Sizing:
    """What the forecast step produced, kept for the log, Slack and the CLI."""

    demand_now: float | None = None
    forecast: Forecast | None = None
    nodes: int | None = None
    missing_reason: str | None = None
    demand_nodes: int | None = None
    """Nodes the demand seen now needs: a reactive floor under the forecast."""
    arrival_nodes: int | None = None
    """Nodes the forecast needs from when nodes ordered now would be ready (boot_time on):
    what a scale-up buys. `nodes` (the whole horizon) is the floor for scaling down."""
    spare_nodes: int = 0
    """The pool's spare nodes, included in `nodes` and `arrival_nodes` (said in reasons)."""
    signals: tuple[SignalReading, ...] = ()
    """The pool's other signals as observed (see autoscaler/signals/), for decide()."""
    capacity_note: str | None = None
    """Why the per-node capacity sized with is the measured one, not the profile's."""
    notes: tuple[str, ...] = ()
    """What the decision should say about the forecast (history masked by demand.exclude)."""


def observe_demand(
    pool: Pool,
    metrics: MetricsSource,
    now: datetime,
    max_staleness: timedelta,
    kept: KeptDemand | None = None,
) -> KeptDemand | str:
    """The pool's checked demand history (`.series`, never empty), or why there is none;
    `kept`: its history from an earlier tick (metrics.fetch_demand)."""
    try:
        return fetch_demand(metrics, pool.demand, now, max_staleness, kept)
    except MetricsError as exc:
        return f"{exc.kind}: {exc}"


def size_fleet(pool: Pool, predictor: Predictor, history: pd.Series, per_node_rps: float) -> Sizing:
    """Forecast and size (pure): the nodes for the forecast's upper peak, and for demand now.

    Two counts from one forecast: `nodes` for the upper peak over the whole horizon (nodes
    removed now cannot be back before boot_time, so the fleet keeps those), and
    `arrival_nodes` for the upper peak from boot_time on (nodes ordered now serve only
    from then, so a scale-up for an earlier peak would arrive after it, and cost only).
    The daemon, `forecast` and the backtest all size through here.
    """
    demand_now = float(history.to_numpy()[-1])  # a third of .iloc[-1]'s cost, every tick
    history, notes, unusable = history_to_learn(history, pool.demand.exclude)
    if unusable:
        return Sizing(demand_now=demand_now, missing_reason=unusable, notes=notes)
    try:
        forecast = _fitted(predictor, history, demand_now).forecast(pool.horizon)
    except (ValueError, ArithmeticError) as exc:
        why = f"forecast failed: {exc}"
        return Sizing(demand_now=demand_now, missing_reason=why, notes=notes)
    if forecast.little_history:  # said in every decision until the model has enough
        notes = (*notes, forecast.little_history)
    if forecast.calibration is not None:  # the loop's margin, budget and policy: said too
        notes = (*notes, *forecast.calibration.notes)
    peak = forecast.peak_upper()
    if not math.isfinite(peak):
        return Sizing(demand_now, forecast, None, "forecast is not a finite number", notes=notes)
    utilization = pool.target_utilization
    arriving = arrival_peak(np.asarray(forecast.upper, dtype=float), forecast.times, pool.boot_time)
    spare = pool.spare_nodes
    try:
        counts = [
            nodes_for(peak, per_node_rps, utilization),
            nodes_for(demand_now, per_node_rps, _reactive_utilization(pool)),
            nodes_for(arriving, per_node_rps, utilization),
        ]
    except (ValueError, ArithmeticError) as exc:  # e.g. demand over a tiny capacity: infinite
        return Sizing(demand_now, forecast, None, f"cannot size the fleet: {exc}")
    return Sizing(
        demand_now,
        forecast,
        counts[0] + spare,
        demand_nodes=counts[1],
        arrival_nodes=counts[2] + spare,
        spare_nodes=spare,
        notes=notes,
    )


def _fitted(predictor: Predictor, learned: pd.Series, demand_now: float) -> Predictor:
    """The predictor fitted on the history as learned (demand.exclude masked); a loop
    calibration is handed the demand seen now too, which no mask hides from its reactive
    member (the fit workers' fit is fitted again here, on the same samples)."""
    if getattr(predictor, "sees_demand_now", False):
        return predictor.fit(learned, demand_now=demand_now)  # type: ignore[call-arg]
    return predictor.fit(learned)


def _reactive_utilization(pool: Pool) -> float:
    """The reactive floor's utilization: the pool's, or full use where the loop-calibrated
    margin is the headroom (autoscaler.calibration)."""
    return REACTIVE_UTILIZATION if pool.predictor.calibrated else pool.target_utilization


def arrival_peak(upper: np.ndarray, times: pd.DatetimeIndex, boot_time: timedelta) -> float:
    """The peak of a band over the forecast steps at least boot_time after its first step
    (the next sample, about now); the last step when the horizon ends sooner. The loop
    calibration keeps it for each tick's band (autoscaler.calibration)."""
    return arrival_peaks((upper,), times, boot_time)[0]


def arrival_peaks(
    bands: Sequence[np.ndarray], times: pd.DatetimeIndex, boot_time: timedelta
) -> list[float]:
    """arrival_peak of each band over the same forecast steps (where they are found once)."""
    if any(len(times) != len(band) or not len(band) for band in bands):
        return [float(band.max()) if len(band) else float("nan") for band in bands]
    stamps = times.asi8  # ascending integers in the index's unit: no Timestamp per tick
    start = int(stamps.searchsorted(stamps[0] + span_in_unit(boot_time, times.unit)))
    return [float(band[start:].max()) if start < len(band) else float(band[-1]) for band in bands]


@functools.lru_cache(maxsize=32)
def span_in_unit(span: timedelta, unit: str) -> np.int64:
    """`span` as an integer count of `unit` (a datetime64 unit): the same few every tick."""
    return np.timedelta64(span).astype(f"m8[{unit}]").astype(np.int64)


def forecast_demand(
    pool: Pool, predictor: Predictor, observed: pd.Series | str, per_node_rps: float
) -> Sizing:
    """Forecast and size what the tick observed (`observe_demand`): a reason there is no
    history yields `nodes=None`, never zero."""
    if isinstance(observed, str):
        return Sizing(missing_reason=observed)
    return size_fleet(pool, predictor, observed, per_node_rps)
