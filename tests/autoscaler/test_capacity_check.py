"""Capacity that checks itself, against a REAL Prometheus with backfilled fleet series
(tests/doubles/prometheus_signals.py: 28 req/s served by 4 ready nodes at 95 % GPU
utilization, so one node serves 7 / 0.95 = 7.37 req/s on a full GPU, against a profile of
10): the drift is told once with both figures, and sized with only where the pool allows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from autoscaler.capacity_check import CapacityCheck, estimate
from autoscaler.capacity_watch import CapacityWatch
from autoscaler.cli.forecast import forecast_pool
from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.config.schema import Pool
from autoscaler.decision_log import DecisionLog
from autoscaler.kept_ticks import BAND_ARRIVAL, BAND_PEAK, USED_ARRIVAL, USED_PEAK, KeptTicks
from autoscaler.kept_ticks_file import KeptWeek
from autoscaler.loop_restarts import settings_digest
from autoscaler.metrics import MetricsError
from autoscaler.metrics_prometheus import PrometheusSource
from autoscaler.overrides import OverridesFile
from autoscaler.schedules import bounds_at
from autoscaler.state import PoolState, StateStore
from autoscaler.tick import PoolTicker
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from tests.autoscaler.signals.test_signals_prometheus import STALENESS, Tick, make_pool
from tests.doubles import prometheus_signals as series
from tests.doubles.prometheus_signals import SignalPrometheus, signal_prometheus  # noqa: F401
from tests.support import RecordingNotifier

pytestmark = pytest.mark.integration

MEASURED = 28 / 4 / 0.95
CHECK = {
    "served_query": series.SERVED,
    "nodes_query": series.READY,
    "utilization_query": series.GPU_UTIL,
    "window": "2h",
    "every": "1m",
}


def drift_alerts(tick: Tick) -> list[str]:
    return [m.text for m in tick.notifier.messages if "capacity drift" in m.text]


def test_a_drift_is_told_once_with_both_figures_and_the_profile_still_sizes(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    pool = make_pool([], capacity_check=CHECK)
    results = [tick.run(pool, minutes=m) for m in range(3)]
    (alert,) = drift_alerts(tick)
    assert f"one node serves {MEASURED:.2f} req/s under load" in alert
    assert "the profile says 10.00 (-26%)" in alert and "still sizing with the profile" in alert
    assert all(r.decision is not None and r.decision.desired == 3 for r in results)
    assert not any("capacity:" in reason for r in results for reason in r.decision.reasons)  # type: ignore[union-attr]
    assert tick.state.capacity_alerted
    store = StateStore(tmp_path / "state.json")  # a restart does not tell it again
    store.save({"face": tick.state})
    assert store.load()["face"].capacity_alerted


def test_where_the_pool_allows_it_the_measured_figure_sizes_and_the_reason_says_so(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    result = tick.run(make_pool([], capacity_check={**CHECK, "use_measured": True}))
    # 20 req/s / (7.37 × 0.8) = 3.4: 4 nodes, where the profile's 10 req/s gave 3
    assert result.decision is not None and result.decision.desired == 4
    assert result.decision.reasons[0].startswith("capacity: one node serves 7.37 req/s")
    assert f"sizing with the measured {MEASURED:.2f} req/s per node" in result.decision.reasons[0]
    assert "sizing with the measured figure" in drift_alerts(tick)[0]

    bounded = Tick(signal_prometheus, tmp_path, nodes=3)
    check = {**CHECK, "use_measured": True, "measured_min": 0.9}
    result = bounded.run(make_pool([], capacity_check=check))
    assert "bounded to 9.00" in result.decision.reasons[0]  # type: ignore[union-attr]
    assert result.decision.desired == 3  # type: ignore[union-attr]  # 20 / (9 × 0.8) = 2.8


def test_without_utilization_served_rates_are_only_a_floor(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    """7 req/s served per node cannot tell a slow node from an idle one: no alert."""
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    check: dict[str, Any] = {
        "per_node_query": f"{series.SERVED} / {series.READY}",
        "window": "2h",
    }
    result = tick.run(make_pool([], capacity_check=check))
    assert tick.ticker.capacity is not None and tick.ticker.capacity.found is not None
    assert tick.ticker.capacity.found.measured == pytest.approx(7.0)
    assert drift_alerts(tick) == [] and result.decision.desired == 3  # type: ignore[union-attr]


def test_back_within_tolerance_is_told_and_a_new_drift_alerts_again() -> None:
    check = CapacityCheck(per_node_query="q", utilization_query="u", min_samples=2)
    index = pd.date_range("2026-11-23", periods=3, freq="1min", tz="UTC")
    util = pd.Series([100.0, 50.0, 100.0], index=index)  # the idle sample does not count
    watch = CapacityWatch("face", check, 10.0)
    alerted = False
    told = []
    for rps in (7.0, 7.0, 9.5, 7.0):
        watch.found = estimate(pd.Series(rps, index=index), util, check, 10.0)
        message, alerted = watch.message(alerted)
        told.append(message.text if message else None)
    assert watch.found.samples == 2
    assert "drift" in told[0] and told[1] is None and "back within 20%" in told[2]
    assert "drift" in told[3]
    too_few = estimate(pd.Series(7.0, index=index[:1]), util, check, 10.0)
    assert too_few.measured is None and not too_few.drifted(0.2)


def test_without_utilization_an_idle_fleet_does_not_say_the_capacity_came_back() -> None:
    """Served rates alone are a floor: nodes that served 15 req/s against a profile of
    10 drifted, but a quiet night's 2 req/s says nothing of what they can serve. It was
    told as 'capacity back within 20% of the profile (2.00 req/s against 10.00)', and the
    drift alerted again the next morning, every day."""
    check = CapacityCheck(per_node_query="q", min_samples=2)
    index = pd.date_range("2026-11-23", periods=3, freq="1min", tz="UTC")
    watch = CapacityWatch("face", check, 10.0)
    alerted = False
    told = []
    for rps in (15.0, 2.0, 15.0, 10.5):  # busy, a quiet night, busy, back at the profile
        watch.found = estimate(pd.Series(rps, index=index), None, check, 10.0)
        message, alerted = watch.message(alerted)
        told.append(message.text if message else None)
    assert "drift" in told[0] and "15.00 req/s" in told[0]
    assert told[1] is None and told[2] is None
    assert "back within 20%" in told[3] and "10.50 req/s against 10.00" in told[3]


def test_a_utilization_over_100_percent_is_refused_not_filtered_out(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sum over DCGM's per-GPU series where avg was meant (380 % for four GPUs) is the
    unit mistake the gpu_utilization signal refuses: the check says so and sizes with the
    profile, rather than skip those samples as idle and measure only the quiet minutes
    whose sum happens to fall between busy_above and 100 (a node at 22 % read as 90 %)."""
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    check = {**CHECK, "utilization_query": series.GPU_UTIL_SUMMED, "use_measured": True}
    result = tick.run(make_pool([], capacity_check=check))
    assert tick.ticker.capacity is not None and tick.ticker.capacity.found is None
    assert result.decision is not None and result.decision.desired == 3  # the profile's
    (warning,) = [r.getMessage() for r in caplog.records if "capacity check" in r.getMessage()]
    assert "380 %" in warning and "outside 0-100 %" in warning and "sum" in warning

    pure = CapacityCheck(per_node_query="q", utilization_query="u", min_samples=2)
    index = pd.date_range("2026-11-23", periods=4, freq="1min", tz="UTC")
    summed = pd.Series([90.0, 95.0, 380.0, 360.0], index=index)  # quiet, quiet, busy, busy
    with pytest.raises(ValueError, match="380 %"):
        estimate(pd.Series([1.0, 1.0, 7.0, 7.0], index=index), summed, pure, 10.0)


@pytest.mark.parametrize(
    "fields",
    [{}, {"served_query": "s"}, {"per_node_query": "p", "nodes_query": "n"}],
)
def test_the_fleet_series_are_given_one_way(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="served_query with nodes_query, or per_node_query"):
        CapacityCheck(**fields)


def test_state_without_the_flag_loads_as_not_alerted(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save({"face": PoolState()})
    assert store.load()["face"].capacity_alerted is False
    text = (tmp_path / "state.json").read_text()
    edited = text.replace('"capacity": null', '"capacity": {"measured": "NaN"}')
    assert edited != text
    (tmp_path / "state.json").write_text(edited)  # a hand edit: measured afresh
    assert store.load()["face"].capacity is None


def test_forecast_sizes_as_the_daemon_does_with_the_measured_figure(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    tick.run(make_pool([], capacity_check={**CHECK, "use_measured": True}))
    seen = forecast_pool(
        tick.ticker,
        tick.metrics,
        timedelta(minutes=5),
        signal_prometheus.now,
        PoolState(),
        OverridesFile(),
        timedelta(hours=1),
        timedelta(minutes=15),
    )
    assert seen.decision is not None and seen.decision.desired == 4
    assert seen.decision.reasons[0].startswith("capacity: one node serves 7.37 req/s")
    assert {row.nodes for row in seen.rows} == {4}  # the table sizes with it too


class CountingSource:
    """Passes range queries through to the real Prometheus and counts them by query."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.queries: list[str] = []

    def demand(self, query: str, start: Any, end: Any, step: Any) -> pd.Series:
        self.queries.append(query)
        return self.inner.demand(query, start, end, step)


def test_measured_every_so_often_and_a_series_without_data_sizes_with_the_profile(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    pool = make_pool([], capacity_check={**CHECK, "every": "15m"})
    tick.run(pool)
    ticker, counting = tick.ticker, CountingSource(tick.metrics)
    ticker.metrics = counting
    for minute in (1, 2, 16):
        ticker.tick(signal_prometheus.now + timedelta(minutes=minute), tick.state, OverridesFile())
    assert counting.queries.count(series.SERVED) == 1  # at minute 16 only, not 1 and 2

    empty = Tick(signal_prometheus, tmp_path, nodes=3)
    result = empty.run(make_pool([], capacity_check={**CHECK, "served_query": series.NOTHING}))
    assert result.decision is not None and result.decision.desired == 3
    found = empty.ticker.capacity.found  # type: ignore[union-attr]
    assert found is not None and found.measured is None and "too few" in found.describe()
    assert drift_alerts(empty) == [] and not result.errors


class QuietNight(CountingSource):
    """The real Prometheus's series, with the GPUs at a third of their load (no busy
    sample), or with the capacity check's served query failing."""

    def __init__(self, inner: Any, fail: bool) -> None:
        super().__init__(inner)
        self.fail = fail

    def demand(self, query: str, start: Any, end: Any, step: Any) -> pd.Series:
        if self.fail and query == series.SERVED:
            self.queries.append(query)
            raise MetricsError("timeout", query, "no answer within 5s")
        found = super().demand(query, start, end, step)
        return found / 3 if query == series.GPU_UTIL else found


@pytest.mark.parametrize("fail", [False, True], ids=["quiet", "failing"])
def test_a_check_that_measures_nothing_keeps_the_measured_figure(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
    fail: bool,
) -> None:
    """Nodes measured at 7.37 req/s against a profile of 10 size at 4 nodes where the
    profile gives 3. A window without a busy sample (a quiet night) or a check whose
    query failed sized with the profile again, a node short when the load came back,
    while Slack still said the pool sized with the measured figure, and nothing told."""
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    pool = make_pool([], capacity_check={**CHECK, "use_measured": True})
    assert tick.run(pool).sizing.nodes == 4
    ticker = tick.ticker
    ticker.metrics = QuietNight(tick.metrics, fail)
    result = ticker.tick(signal_prometheus.now + timedelta(minutes=1), tick.state, OverridesFile())
    assert series.SERVED in ticker.metrics.queries  # type: ignore[attr-defined]
    assert result.sizing.nodes == 4
    assert result.sizing.capacity_note is not None
    assert f"sizing with the measured {MEASURED:.2f}" in result.sizing.capacity_note
    assert len(drift_alerts(tick)) == 1 and not result.errors


def test_a_reload_keeps_the_measured_figure(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A reload (SIGHUP, for any pool's edit) built the pool's ticker afresh and its check
    measured again at once: at night, with no busy sample, the pool went back to sizing
    with the profile, a node short. A pool configured the same now keeps the figure, as
    it keeps its predictor."""
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    pool = make_pool([], capacity_check={**CHECK, "use_measured": True})
    assert tick.run(pool).sizing.nodes == 4
    quiet = QuietNight(tick.metrics, fail=False)
    reloaded = PoolTicker(
        pool, tick.fleet, 10.0, quiet, STALENESS, tick.notifier, DecisionLog(tick.log), False
    )
    assert reloaded.carry_over(tick.ticker)
    at = signal_prometheus.now + timedelta(minutes=1)
    result = reloaded.tick(at, tick.state, OverridesFile())
    assert series.GPU_UTIL in quiet.queries  # measured again: the quiet window says nothing
    assert result.sizing.nodes == 4 and result.sizing.capacity_note is not None
    assert len(drift_alerts(tick)) == 1


def test_a_restart_and_forecast_size_with_the_figure_the_daemon_measured(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The measured figure lived in the daemon's memory alone: restarted at night (a
    deploy, `run --once` from cron) the check had no busy sample to measure it again
    from and the pool sized with the profile, a node short; `forecast` likewise showed
    3 nodes where the daemon's tick sized 4. It is now kept in the state file, with the
    profile it was measured against."""
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    pool = make_pool([], capacity_check={**CHECK, "use_measured": True})
    assert tick.run(pool).sizing.nodes == 4
    store = StateStore(tmp_path / "state.json")
    store.save({"face": tick.state})
    saved = store.load()["face"]
    quiet = QuietNight(tick.metrics, fail=False)
    at = signal_prometheus.now + timedelta(minutes=1)

    def fresh(per_node_rps: float = 10.0) -> PoolTicker:
        log = DecisionLog(tick.log)
        return PoolTicker(
            pool, tick.fleet, per_node_rps, quiet, STALENESS, tick.notifier, log, False
        )

    shown = forecast_pool(
        fresh(), quiet, STALENESS, at, saved, OverridesFile(), timedelta(hours=1),
        timedelta(minutes=15),
    )  # fmt: skip
    assert shown.now is not None and shown.now.capacity_note is not None
    assert shown.decision is not None and shown.decision.desired == 4
    result = fresh().tick(at, saved, OverridesFile())
    assert series.GPU_UTIL in quiet.queries  # measured again: the quiet window says nothing
    assert result.sizing.nodes == 4 and result.sizing.capacity_note is not None
    assert len(drift_alerts(tick)) == 1

    reprofiled = fresh(per_node_rps=20.0)  # a new profile: measured against it afresh
    assert reprofiled.tick(at, store.load()["face"], OverridesFile()).sizing.capacity_note is None


def kept_week(pool: Pool, now: datetime) -> KeptWeek:
    """30 h of 5-minute ticks before now at the fleet's 20 req/s, a burst to 35 every third
    hour over a band of 22, last replayed 7 h ago: the next fit replays them (every 6 h)."""
    ticks = KeptTicks()
    for k in range(30 * 12, 0, -1):
        at = now - k * timedelta(minutes=5)
        demand = 35.0 if k % 36 in (0, 1) else 20.0
        ticks.append(at, demand, bounds_at(pool.schedules, at))
        for column in (BAND_PEAK, BAND_ARRIVAL, USED_PEAK, USED_ARRIVAL):
            ticks.set_newest(column, 22.0)
    return KeptWeek(ticks, now - timedelta(hours=7), False, settings_digest(pool))


def test_forecast_calibrates_its_loop_at_the_rate_the_daemon_does(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A loop-calibrated pool (`margin: widen`) sizing with the measured 7.37 req/s while
    it drifts: the daemon's loop replays its week at the rate its predictor was built with
    (the profile's 10), but `forecast` built its loop at the measured one, so where a
    recalibration was due its margin (1.07 where the tick's is 1.09), band and decision's
    reasons now were not the tick's. Both now replay at the rate the pool was built
    with, and size with the measured one."""
    now = signal_prometheus.now
    pool = make_pool(
        [],
        capacity_check={**CHECK, "use_measured": True},
        predictor={"kind": "linear", "margin": "widen"},
    )
    store = StateStore(tmp_path / "state.json")
    store.save_week(pool.name, kept_week(pool, now))

    def ticker() -> PoolTicker:
        fleet = SimulatedFleet(SimulatedClock(now), initial_nodes=3, boot_delay=timedelta(0))
        metrics = PrometheusSource(
            PrometheusMetrics(url=signal_prometheus.url, timeout=timedelta(seconds=5))
        )
        log = DecisionLog(tmp_path / "decisions.jsonl")
        return PoolTicker(
            pool, fleet, 10.0, metrics, STALENESS, RecordingNotifier(), log, False, weeks=store
        )

    forecasting = ticker()
    shown = forecast_pool(
        forecasting,
        forecasting.metrics,
        STALENESS,
        now,
        PoolState(),
        OverridesFile(),
        timedelta(hours=1),
        timedelta(minutes=15),
    )
    ticked = ticker().tick(now, PoolState(), OverridesFile())
    assert shown.now is not None and shown.now.forecast is not None
    assert ticked.sizing.forecast is not None
    calibration = ticked.sizing.forecast.calibration
    assert shown.now.forecast.calibration == calibration
    np.testing.assert_array_equal(shown.now.forecast.upper, ticked.sizing.forecast.upper)
    assert shown.decision == ticked.decision
