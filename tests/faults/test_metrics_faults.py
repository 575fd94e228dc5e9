"""Metrics faults through the whole tick: hold or scale up, never down on missing or
implausible data; one alert per episode and one on recovery; self-metrics count it.

The Prometheus path is the real PrometheusSource against the scripted query_range
double (tests.doubles.prometheus_server.PrometheusApiDouble) or a real Prometheus
that was stopped; the counter-reset and spike cases feed samples from memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.metrics import MetricsError
from autoscaler.metrics_prometheus import PrometheusSource
from autoscaler.notify_slack import SlackNotifier
from autoscaler.telemetry import Telemetry
from autoscaler.tick_result import TickResult
from tests.autoscaler.test_daemon import NOON
from tests.autoscaler.test_tick import FlatDemand, Harness
from tests.doubles.prometheus_server import (
    PrometheusApiDouble,
    Reply,
    error_reply,
    free_port,
    matrix_reply,
)
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble
from tests.support import read_decisions

STEADY_NODES = 13  # 10 req/s at 1 req/s per node and 80 % utilization
FAULT_TICKS = 12  # past the 10-minute stabilization and the 5-minute cooldown


def samples(now: datetime, values: list[str], end_offset: timedelta = timedelta(0)) -> Reply:
    """A one-series matrix whose last sample is at `now - end_offset`, one per minute."""
    end = pd.Timestamp(now - end_offset)
    count = len(values)
    stamps = [(end - pd.Timedelta(minutes=count - 1 - i)).timestamp() for i in range(count)]
    return matrix_reply(({}, list(zip(stamps, values, strict=True))))


def good(now: datetime, rps: float) -> Reply:
    return samples(now, [f"{rps:g}"] * 60)


FaultReply = Callable[[datetime], Reply]

PROMETHEUS_FAULTS: dict[str, tuple[FaultReply, str]] = {
    "slow": (lambda now: Reply(body=good(now, 0.0).body, delay=2.0), "timeout"),
    "empty_result": (lambda now: matrix_reply(), "empty"),
    "nan_newest": (lambda now: samples(now, ["10"] * 59 + ["NaN"]), "nan"),
    "inf_newest": (lambda now: samples(now, ["10"] * 59 + ["+Inf"]), "nan"),
    "all_nan": (lambda now: samples(now, ["NaN"] * 60), "nan"),
    "stale": (lambda now: samples(now, ["0"] * 60, timedelta(minutes=20)), "stale"),
    "http_503": (lambda now: error_reply(503, "timeout", "query timed out"), "bad_response"),
    "not_json": (lambda now: Reply(body=b"<html>proxy error</html>"), "bad_response"),
    "negative": (lambda now: samples(now, ["10"] * 59 + ["-5"]), "bad_response"),
}


class PrometheusHarness(Harness):
    """The tick harness with the real PrometheusSource and self-metrics recorded."""

    def __init__(self, tmp_path: Path, url: str, **kw: object) -> None:
        super().__init__(tmp_path, rps=10.0, **kw)
        self.ticker.metrics = PrometheusSource(
            # 1 s: a busy CI host once took longer than 0.25 s to answer a good reply
            PrometheusMetrics(url=url, timeout=timedelta(seconds=1))
        )
        self.telemetry = Telemetry()

    def tick(self) -> TickResult:
        result = super().tick()
        self.telemetry.record(result)
        self.telemetry.tick_finished([result], 0.01)
        return result

    def metric_errors(self) -> float:
        value = self.telemetry.registry.get_sample_value(
            "autoscaler_errors_total", {"pool": "ocr", "kind": "metrics"}
        )
        return value or 0.0


def run_episode(h: PrometheusHarness, double: PrometheusApiDouble, fault: FaultReply) -> list:
    """Good data (scale to 13), a fault that would read as ~zero load, then low good data."""
    double.replies = [good(h.clock.now(), 10.0)]
    first = h.tick()
    assert first.acted and h.fleet.read().desired == STEADY_NODES
    faulty = []
    for _ in range(FAULT_TICKS):
        double.replies = [fault(h.clock.now())]
        faulty.append(h.tick())
    return faulty


@pytest.mark.parametrize("case", sorted(PROMETHEUS_FAULTS))
def test_prometheus_fault_holds_alerts_once_and_recovers_once(tmp_path: Path, case: str) -> None:
    fault, kind = PROMETHEUS_FAULTS[case]
    with PrometheusApiDouble([matrix_reply()]) as double:
        h = PrometheusHarness(tmp_path, double.url)
        faulty = run_episode(h, double, fault)
        for result in faulty:
            assert result.errors["metrics"].startswith(f"{kind}:"), result.errors
            assert result.decision is not None and result.decision.desired == STEADY_NODES
            assert not result.acted
        assert h.fleet.read().desired == STEADY_NODES and h.fleet.writes == 1
        assert sum("metrics failing" in t for t in h.notifier.texts) == 1
        assert h.metric_errors() == FAULT_TICKS
        assert h.telemetry._last_success is not None  # only the first tick succeeded
        stamp_after_first = h.telemetry.last_success._value.get()

        # Recovery with genuinely low demand (2 req/s → 3 nodes): one message, and the
        # stabilization window starts over, so nothing shrinks for a whole window.
        recovered = []
        for _ in range(10):
            double.replies = [good(h.clock.now(), 2.0)]
            recovered.append(h.tick())
        assert sum("metrics recovered" in t for t in h.notifier.texts) == 1
        assert all(r.decision and r.decision.desired == STEADY_NODES for r in recovered)
        assert h.telemetry.last_success._value.get() >= stamp_after_first
        later = [h.tick() for _ in range(3)]
        assert later[-1].decision and later[-1].decision.desired < STEADY_NODES  # then it may
    records = read_decisions(h.log_path)
    missing = [r for r in records if r["errors"].get("metrics")]
    assert len(missing) == FAULT_TICKS
    assert all(any("missing" in reason for reason in r["reasons"]) for r in missing)


def test_prometheus_down_alerts_slack_once_and_recovery_once(
    tmp_path: Path, stopped_prometheus_url: str, slack_api: SlackApiDouble
) -> None:
    """A real Prometheus that was killed: connection refused every tick, for a quarter hour."""
    with PrometheusApiDouble([matrix_reply()]) as double:
        h = PrometheusHarness(tmp_path, double.url)
        h.ticker.notifier = SlackNotifier("#gpu-autoscaler", DEFAULT_TOKEN, slack_api.base_url)
        double.replies = [good(h.clock.now(), 10.0)]
        assert h.tick().acted
        live = h.ticker.metrics
        h.ticker.metrics = PrometheusSource(PrometheusMetrics(url=stopped_prometheus_url))
        for _ in range(FAULT_TICKS):
            result = h.tick()
            assert result.errors["metrics"].startswith("unreachable:")
            assert result.decision is not None and result.decision.desired == STEADY_NODES
        h.ticker.metrics = live
        double.replies = [good(h.clock.now(), 10.0)]
        assert not h.tick().errors
    texts = [m.text or "" for m in slack_api.messages]
    assert len(texts) == 3, texts  # the scale-up, the outage, the recovery
    assert "metrics failing" in texts[1] and "connection refused" in texts[1]
    assert "metrics recovered after 12m" in texts[2]
    assert h.fleet.read().desired == STEADY_NODES and h.metric_errors() == FAULT_TICKS


def test_a_refused_query_is_said_once_without_urllib3s_retry_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Prometheus down (a port where nothing listens; the real urllib3 retries the connect
    once): the query fails as unreachable, which the pool's decision line says. urllib3's
    own WARNING 'Retrying (Retry(total=1, connect=0 ...)) after connection broken by
    NewConnectionError(...)', logged beside it once a query a pool a tick, is not."""
    source = PrometheusSource(PrometheusMetrics(url=f"http://127.0.0.1:{free_port()}"))
    with caplog.at_level(logging.DEBUG), source, pytest.raises(MetricsError) as caught:
        source.demand("q", NOON - timedelta(hours=1), NOON, timedelta(minutes=1))
    assert caught.value.kind == "unreachable", caught.value
    noted = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert not [line for line in noted if "Retrying" in line], noted


class ScriptedDemand(FlatDemand):
    """Flat demand whose samples at chosen instants are replaced (a glitch in the data)."""

    def __init__(self, clock, rps: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(clock, rps)
        self.glitches: dict[datetime, float] = {}

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        series = super().demand(query, start, end, step)
        for at, value in self.glitches.items():
            if at in series.index:
                series[pd.Timestamp(at)] = value
        return series


def glitch_harness(tmp_path: Path) -> Harness:
    h = Harness(tmp_path, rps=10.0)
    h.metrics = ScriptedDemand(h.clock, 10.0)
    h.ticker.metrics = h.metrics
    for _ in range(15):  # settled at 13 for longer than a stabilization window
        h.tick()
    assert h.fleet.read().desired == STEADY_NODES
    return h


def test_counter_reset_dip_to_zero_for_a_minute_never_scales_down(tmp_path: Path) -> None:
    """A counter reset read through irate()/a scrape gap: ~0 req/s for one minute, then back.
    Zero is real data, so it is a recommendation like any other, and the stabilization
    window (highest recommendation in the last 10 minutes) keeps the fleet."""
    h = glitch_harness(tmp_path)
    h.metrics.glitches[h.clock.now()] = 0.0
    dip = h.tick()
    assert dip.sizing.demand_now == 0.0 and dip.decision is not None
    assert dip.decision.desired >= STEADY_NODES  # the wider spread may even add a node
    for _ in range(45):  # the zero stays in the fitted history for most of an hour
        result = h.tick()
        assert result.decision is not None and result.decision.desired >= STEADY_NODES
    assert h.fleet.read().desired >= STEADY_NODES


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy overflow on the 1e300 sample
@pytest.mark.parametrize("factor", [1000.0, 1e300])
def test_single_sample_spike_may_scale_up_never_down(tmp_path: Path, factor: float) -> None:
    """One sample 1000× the rest. The reactive floor may act on it (up to max_nodes: a real
    surge looks the same for its first minute); what it must never cause is a scale-down,
    neither on the spike tick nor while the spike sits in the fitted history."""
    h = glitch_harness(tmp_path)
    h.metrics.glitches[h.clock.now()] = 10.0 * factor
    spike = h.tick()
    assert spike.decision is not None and spike.decision.desired >= STEADY_NODES
    assert spike.decision.desired <= h.pool.max_nodes
    counts = [h.fleet.read().desired]
    for _ in range(30):
        result = h.tick()
        assert result.decision is not None
        assert result.decision.desired >= STEADY_NODES
        assert result.decision.current - result.decision.desired <= h.pool.scale_down.max_step
        counts.append(h.fleet.read().desired)
    assert min(counts) >= STEADY_NODES
    assert all(r["reasons"] for r in read_decisions(h.log_path))
