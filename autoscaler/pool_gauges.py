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
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autoscaler.portfolio import MEMBERS
from autoscaler.sizing import span_in_unit
from autoscaler.tick_result import TickResult, peak_of
from backends.base import FleetState
from predictors import Calibration, Forecast
from predictors.history_grid import epoch_stamp

SCORED_WITHIN = timedelta(seconds=120)
"""A previous forecast is scored only where one of its steps is this close to now."""


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


_POOL_GAUGES: tuple[tuple[str, str, Callable[[_Seen], float | None]], ...] = (
    # name, help, its value from what the pool's ticks left (None: no sample); by pool
    ("autoscaler_pool_current_nodes", "Nodes the fleet is set to", lambda s: _fleet(s, "desired")),
    ("autoscaler_pool_desired_nodes", "Nodes the last decision wants", lambda s: s.desired),
    ("autoscaler_pool_ready_nodes", "Nodes serving now", lambda s: _fleet(s, "ready")),
    ("autoscaler_pool_pending_nodes", "Nodes booting", lambda s: _fleet(s, "pending")),
    ("autoscaler_pool_demand_requests_per_second", "Demand seen now, req/s", lambda s: s.demand),
    (
        "autoscaler_pool_forecast_requests_per_second",
        "Forecast peak over the horizon",
        lambda s: peak_of(s.forecast, "point"),
    ),
    (
        "autoscaler_pool_forecast_upper_requests_per_second",
        "Upper-quantile forecast peak",
        lambda s: peak_of(s.forecast, "upper"),
    ),
    (
        "autoscaler_pool_forecast_abs_error_requests_per_second",
        "|demand now - what the previous tick forecast for now|",
        lambda s: s.forecast_error,
    ),
    (
        "autoscaler_pool_loop_margin_ratio",
        "margin: loop: the multiple of the followed policy's band the fleet is sized for",
        lambda s: None if s.calibration is None else s.calibration.margin,
    ),
    (
        "autoscaler_pool_loop_margin_floor_ratio",
        "margin: widen: the narrowest margin the loop could choose (under 1: an unspent "
        "budget earned it)",
        lambda s: None if s.calibration is None else s.calibration.floor,
    ),
    (
        "autoscaler_pool_error_budget_spent_ratio",
        "margin: loop: late share over the kept ticks (replayed) / the service target",
        lambda s: s.budget_spent,
    ),
)
_POLICY = (
    "autoscaler_pool_policy",
    "margin: loop: 1 for the policy the pool follows (policy: auto may switch)",
)


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
                for name, _, value_of in _POOL_GAUGES:
                    value = value_of(seen)
                    if value is not None:
                        families[name].add_metric([pool], value)
                if seen.calibration is not None:
                    for member in MEMBERS:
                        chosen = 1.0 if member == seen.calibration.member else 0.0
                        families[_POLICY[0]].add_metric([pool, member], chosen)
        yield from families.values()


def _families() -> dict[str, GaugeMetricFamily]:
    families = {
        name: GaugeMetricFamily(name, doc, labels=["pool"]) for name, doc, _ in _POOL_GAUGES
    }
    families[_POLICY[0]] = GaugeMetricFamily(*_POLICY, labels=["pool", "policy"])
    return families


def _fleet(seen: _Seen, count: str) -> int | None:
    return None if seen.fleet is None else getattr(seen.fleet, count)


def _score(seen: _Seen) -> None:
    """|demand - the previous forecast's step nearest the tick's time|, where it covered it
    (within SCORED_WITHIN); the error scored before stays otherwise."""
    assert seen.unscored is not None
    previous, at, demand = seen.unscored
    seen.unscored = None
    times = previous.times  # in integers: index arithmetic was ~0.2 ms a pool a tick
    if len(times) == 0:
        return
    stamp = epoch_stamp(at, times.unit)
    offsets = np.abs(times.asi8 - stamp)
    nearest = int(np.argmin(offsets))
    if offsets[nearest] <= span_in_unit(SCORED_WITHIN, times.unit):
        seen.forecast_error = abs(demand - float(previous.point[nearest]))
