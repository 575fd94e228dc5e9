"""Each pool's gauges on /metrics, made when Prometheus scrapes them.

Set on every tick, a pool's dozen gauges (labels, a lock and a float each, and the last
forecast scored against demand) took ~40 ms of the daemon's ~1 s steady tick of 1,000
pools; a scrape comes every 15 s or so. So a tick keeps only what it saw (a few
references) and the scrape makes the samples: prometheus-client's custom collector, as for
data kept elsewhere. A gauge still shows the newest value a tick had (a tick that could
not read the fleet leaves its node counts as they were).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autoscaler.portfolio import MEMBERS
from autoscaler.sizing import span_in_unit
from autoscaler.tick_result import TickResult
from backends.base import FleetState
from predictors import Calibration, Forecast

SCORED_WITHIN = timedelta(seconds=120)
"""A previous forecast is scored only where one of its steps is this close to now."""

_POOL_GAUGES = (  # name, help: each labelled by pool
    ("autoscaler_pool_current_nodes", "Nodes the fleet is set to"),
    ("autoscaler_pool_desired_nodes", "Nodes the last decision wants"),
    ("autoscaler_pool_ready_nodes", "Nodes serving now"),
    ("autoscaler_pool_pending_nodes", "Nodes booting"),
    ("autoscaler_pool_demand_requests_per_second", "Demand seen now, req/s"),
    ("autoscaler_pool_forecast_requests_per_second", "Forecast peak over the horizon"),
    ("autoscaler_pool_forecast_upper_requests_per_second", "Upper-quantile forecast peak"),
    (
        "autoscaler_pool_forecast_abs_error_requests_per_second",
        "|demand now - what the previous tick forecast for now|",
    ),
    (
        "autoscaler_pool_loop_margin_ratio",
        "margin: loop: the multiple of the followed policy's band the fleet is sized for",
    ),
    (
        "autoscaler_pool_error_budget_spent_ratio",
        "margin: loop: late share over the kept ticks (replayed) / the service target",
    ),
)
_POLICY = (
    "autoscaler_pool_policy",
    "margin: loop: 1 for the policy the pool follows (policy: auto may switch)",
)


@dataclass
class _Seen:
    """A pool's newest values, as its ticks left them."""

    fleet: FleetState | None = None
    desired: int | None = None
    demand: float | None = None
    forecast: Forecast | None = None
    calibration: Calibration | None = None
    budget_spent: float | None = None
    forecast_error: float | None = None
    unscored: tuple[Forecast, datetime, float] | None = None
    """The previous forecast, the tick's time and its demand: scored at the next scrape."""


class PoolGauges(Collector):
    def __init__(self) -> None:
        self._pools: dict[str, _Seen] = {}
        self._lock = threading.Lock()  # ticks record on the daemon's thread, scrapes on theirs

    def record(self, result: TickResult) -> None:
        with self._lock:
            seen = self._pools.get(result.pool)
            if seen is None:
                seen = self._pools[result.pool] = _Seen()
            if result.fleet is not None:
                seen.fleet = result.fleet
            if result.decision is not None:
                seen.desired = result.decision.desired
            sizing = result.sizing
            if sizing.demand_now is not None:
                seen.demand = sizing.demand_now
                if seen.unscored is not None:  # ticks faster than scrapes: scored now
                    _score(seen)
                if seen.forecast is not None:
                    seen.unscored = (seen.forecast, result.at, sizing.demand_now)
            forecast = sizing.forecast
            if forecast is not None:
                seen.forecast = forecast
                if forecast.calibration is not None:
                    seen.calibration = forecast.calibration
                    if forecast.calibration.budget_spent is not None:
                        seen.budget_spent = forecast.calibration.budget_spent

    def keep(self, names: Collection[str]) -> None:
        """Forget every pool but these (a reload removed the others)."""
        with self._lock:
            self._pools = {name: seen for name, seen in self._pools.items() if name in names}

    def describe(self) -> Iterator[Metric]:
        """The families without samples: the registry checks their names once."""
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        families = _families()
        with self._lock:
            for pool, seen in self._pools.items():
                if seen.unscored is not None:
                    _score(seen)
                for name, value in _values(seen):
                    if value is not None:
                        families[name].add_metric([pool], value)
                if seen.calibration is not None:
                    for member in MEMBERS:
                        chosen = 1.0 if member == seen.calibration.member else 0.0
                        families[_POLICY[0]].add_metric([pool, member], chosen)
        yield from families.values()


def _families() -> dict[str, GaugeMetricFamily]:
    families = {name: GaugeMetricFamily(name, doc, labels=["pool"]) for name, doc in _POOL_GAUGES}
    families[_POLICY[0]] = GaugeMetricFamily(*_POLICY, labels=["pool", "policy"])
    return families


def _values(seen: _Seen) -> Iterator[tuple[str, float | None]]:
    """Each gauge's value in _POOL_GAUGES' order (None: no sample)."""
    fleet, forecast, calibration = seen.fleet, seen.forecast, seen.calibration
    counts = (None, None, None) if fleet is None else (fleet.desired, fleet.ready, fleet.pending)
    peaks = (None, None) if forecast is None else (forecast.peak_point(), forecast.peak_upper())
    yield "autoscaler_pool_current_nodes", counts[0]
    yield "autoscaler_pool_desired_nodes", seen.desired
    yield "autoscaler_pool_ready_nodes", counts[1]
    yield "autoscaler_pool_pending_nodes", counts[2]
    yield "autoscaler_pool_demand_requests_per_second", seen.demand
    yield "autoscaler_pool_forecast_requests_per_second", peaks[0]
    yield "autoscaler_pool_forecast_upper_requests_per_second", peaks[1]
    yield "autoscaler_pool_forecast_abs_error_requests_per_second", seen.forecast_error
    yield "autoscaler_pool_loop_margin_ratio", None if calibration is None else calibration.margin
    yield "autoscaler_pool_error_budget_spent_ratio", seen.budget_spent


def _score(seen: _Seen) -> None:
    """|demand - the previous forecast's step nearest the tick's time|, where it covered it
    (within SCORED_WITHIN); the error scored before stays otherwise."""
    assert seen.unscored is not None
    previous, at, demand = seen.unscored
    seen.unscored = None
    times = previous.times  # in integers: index arithmetic was ~0.2 ms a pool a tick
    if len(times) == 0:
        return
    stamp = pd.Timestamp(at).as_unit(times.unit).asm8.astype(np.int64)
    offsets = np.abs(times.asi8 - stamp)
    nearest = int(np.argmin(offsets))
    if offsets[nearest] <= span_in_unit(SCORED_WITHIN, times.unit):
        seen.forecast_error = abs(demand - float(previous.point[nearest]))
