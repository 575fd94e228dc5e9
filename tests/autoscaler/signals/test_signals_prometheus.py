"""Signals read from a REAL Prometheus with backfilled series for each kind (see
tests/doubles/prometheus_signals.py): the count each implies, the highest wins, a
missing signal holds then holds the fleet, scale-down needs every signal to agree, and
bad input (several series, a negative or NaN queue, a utilization over 100 %) scales
nothing. Ticks run the daemon's PoolTicker on the simulated fleet."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.config.schema import Pool
from autoscaler.decision_log import DecisionLog
from autoscaler.metrics_prometheus import PrometheusSource
from autoscaler.overrides import OverridesFile
from autoscaler.policy import nodes_for
from autoscaler.signals.base import SignalContext
from autoscaler.signals.observe import read_signal
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from autoscaler.tick_result import TickResult
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from tests.doubles import prometheus_signals as series
from tests.doubles.prometheus_signals import SignalPrometheus, signal_prometheus  # noqa: F401
from tests.support import RecordingNotifier, read_decisions

pytestmark = pytest.mark.integration
runner = CliRunner()

STALENESS = timedelta(minutes=5)
QUEUE = {"name": "backlog", "kind": "queue_depth", "query": series.QUEUE, "drain_within": "60s"}
GPU = {"name": "gpu", "kind": "gpu_utilization", "query": series.GPU_UTIL, "target": 70}
SLOW = {"name": "p95", "kind": "latency", "query": series.LATENCY, "target": "2s"}
FAST = {"name": "p95", "kind": "latency", "query": series.LATENCY_FAST, "target": "2s"}
WANTED = {"name": "planner", "kind": "node_count", "query": series.NODES_WANTED}


def make_pool(signals: list[dict[str, Any]], **changes: Any) -> Pool:
    data: dict[str, Any] = {
        "name": "face",
        "backend": {"kind": "simulated"},
        "demand": {"query": series.DEMAND, "window": "1h"},
        "capacity": {"per_node_rps": 10.0},  # 20 req/s at 80 %: 3 nodes
        "target_utilization": 0.8,
        "predictor": {"kind": "linear"},
        "max_nodes": 40,
        "scale_down": {"stabilization": "3m", "max_step": 10},
        "cooldown": "0s",
        "signals": signals,
    }
    data.update(changes)
    return Pool.model_validate(data)


class Tick:
    """The daemon's ticker for one pool on a real Prometheus and a simulated fleet."""

    def __init__(self, prom: SignalPrometheus, tmp_path: Path, nodes: int = 4) -> None:
        self.prom = prom
        self.clock = SimulatedClock(prom.now)
        self.fleet = SimulatedFleet(self.clock, initial_nodes=nodes, boot_delay=timedelta(0))
        self.metrics = PrometheusSource(
            PrometheusMetrics(url=prom.url, timeout=timedelta(seconds=5))
        )
        self.notifier = RecordingNotifier()
        self.log = tmp_path / "decisions.jsonl"
        self.state = PoolState()

    def run(self, pool: Pool, minutes: float = 0) -> TickResult:
        now = self.prom.now + timedelta(minutes=minutes)
        self.clock.advance(now - self.clock.now())
        ticker = PoolTicker(
            pool, self.fleet, 10.0, self.metrics, STALENESS, self.notifier,
            DecisionLog(self.log), False,
        )  # fmt: skip
        self.ticker = ticker
        return ticker.tick(now, self.state, OverridesFile())


def _context(ready: int = 4, demand: float | None = 20.0) -> SignalContext:
    return SignalContext(
        current=ready, ready=ready, demand_rps=demand, per_node_rps=10.0,
        target_utilization=0.8, nodes_for=nodes_for,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("signal", "nodes", "value"),
    [
        # 20 req/s arrivals: 3 nodes; 1,200 queued / 60 s = 20/s at 10/s: 2 more
        (QUEUE, 5, 1200.0),
        # HPA: ceil(4 ready × 95 / 70) = 6
        (GPU, 6, 95.0),
        # p95 3.5 s > 2 s: 4 ready + 1
        (SLOW, 5, 3.5),
        # p95 0.475 s within target: asks for none
        (FAST, 0, 0.475),
        (WANTED, 7, 6.3),
    ],
)
def test_the_count_each_signal_implies(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    signal: dict[str, Any],
    nodes: int,
    value: float,
) -> None:
    config = make_pool([signal]).signals[0]
    with PrometheusSource(PrometheusMetrics(url=signal_prometheus.url)) as source:
        reading = read_signal(config, source, signal_prometheus.now, STALENESS, _context())
    assert not reading.bad and reading.value == pytest.approx(value)
    assert reading.nodes == nodes, reading.detail


def test_the_highest_count_wins_and_every_signal_is_told(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path)
    result = tick.run(make_pool([QUEUE, GPU, SLOW, WANTED]))
    assert result.sizing.nodes == 3  # the forecast alone would keep 4 (the fleet's)
    assert result.decision is not None and result.decision.desired == 7
    assert tick.fleet.read().desired == 7
    reasons = " | ".join(result.decision.reasons)
    for name, nodes in (("backlog", 5), ("gpu", 6), ("p95", 5), ("planner", 7)):
        assert f"signal {name} (" in reasons and f"needs {nodes} nodes" in reasons
    assert "signal planner asks for 7 nodes, more than 3: the highest count wins" in reasons
    (record,) = read_decisions(tick.log)
    assert {s["name"]: s["nodes"] for s in record["signals"]} == {
        "backlog": 5, "gpu": 6, "p95": 5, "planner": 7,
    }  # fmt: skip
    assert any("1,200 queued" in r for r in record["reasons"])
    (message,) = tick.notifier.messages
    assert "4 → 7" in message.text and "signal gpu (gpu_utilization) needs 6" in message.text


def test_a_missing_signal_holds_its_last_good_count_then_holds_the_fleet(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=3)
    good = make_pool([{**WANTED, "hold_for": "5m"}])
    assert tick.run(good).decision.desired == 7  # type: ignore[union-attr]
    gone = make_pool([{**WANTED, "query": series.NOTHING, "hold_for": "5m"}])
    tick.fleet.scale(3, "someone else set it back")
    tick.state.last_known_desired = 3  # not a change by hand: this test's setup

    held = tick.run(gone, minutes=2)
    assert held.decision is not None and held.decision.desired == 7
    assert "holding its last good count 7" in " | ".join(held.decision.reasons)
    assert "no data: empty: no samples" in held.errors["signals"]

    past = tick.run(gone, minutes=6)  # past hold_for: the fleet (now 7) is held, not zeroed
    assert past.decision is not None and past.decision.desired == 7
    assert "past its hold of 5m: hold the fleet at 7 (never zero)" in " | ".join(
        past.decision.reasons
    )
    alerts = [m.text for m in tick.notifier.messages if "signals failing" in m.text]
    assert len(alerts) == 1  # one alert for the episode, not one a tick


def test_a_signal_that_stopped_long_ago_holds_the_fleet_at_once(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=9)
    result = tick.run(make_pool([{"name": "old", "kind": "node_count", "query": series.STALE}]))
    assert result.decision is not None and result.decision.desired == 9  # forecast says 3
    reasons = " | ".join(result.decision.reasons)
    assert "no data (empty" in reasons and "hold the fleet at 9 (never zero)" in reasons
    assert "signal old (no data) holds the fleet at 9 nodes, more than 3" in reasons
    assert tick.state.memory.recommendations == ()  # the stabilization window restarts


def test_scale_down_needs_every_signal_to_agree_through_the_window(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=12)
    pool = make_pool([QUEUE, WANTED, FAST])  # forecast 3, queue 5, planner 7, p95 fine
    desired = [tick.run(pool, minutes=m).decision.desired for m in range(5)]  # type: ignore[union-attr]
    # held through the 3-minute window, then down to the highest signal, not the forecast
    assert desired == [12, 12, 12, 7, 7]

    slow = Tick(signal_prometheus, tmp_path / "slow", nodes=12)
    (tmp_path / "slow").mkdir()
    pool = make_pool([QUEUE, WANTED, SLOW])  # slower than promised: the guard only adds
    desired = [slow.run(pool, minutes=m).decision.desired for m in range(5)]  # type: ignore[union-attr]
    assert desired == [13, 14, 15, 16, 17]  # one above ready a tick (nodes boot at once here)


def test_a_latency_quantile_over_a_quiet_window_is_no_slowness_not_bad_input(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    """No request in the window: Prometheus's histogram_quantile gives NaN (0/0). Nothing
    was slow, so the guard asks for none; it neither stops all scaling as bad input nor
    adds nodes as if the service were infinitely slow."""
    tick = Tick(signal_prometheus, tmp_path, nodes=1)
    idle = {**SLOW, "query": series.LATENCY_IDLE}
    result = tick.run(make_pool([idle, WANTED]))
    assert "signals" not in result.errors, result.errors
    assert result.decision is not None and result.decision.desired == 7  # the planner's
    (record,) = read_decisions(tick.log)
    (p95,) = [s for s in record["signals"] if s["name"] == "p95"]
    assert p95["nodes"] == 0 and not p95["bad_input"]
    assert "no requests" in p95["detail"]


@pytest.mark.parametrize(
    ("signal", "says"),
    [
        ({**QUEUE, "query": series.QUEUE_TWO_SERIES}, "returned 2 series"),
        ({**QUEUE, "query": series.QUEUE_NEGATIVE}, "queue depth is negative (-5)"),
        ({**QUEUE, "query": series.QUEUE_NAN}, "queue depth is nan (not a number)"),
        ({**GPU, "query": series.GPU_UTIL_SUMMED}, "GPU utilization is 380 %, outside 0-100 %"),
    ],
)
def test_bad_input_is_a_clear_error_and_scales_nothing(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
    signal: dict[str, Any],
    says: str,
) -> None:
    tick = Tick(signal_prometheus, tmp_path, nodes=1)  # the forecast alone wants 3
    result = tick.run(make_pool([signal, WANTED]))
    assert result.decision is not None and result.decision.desired == 1
    assert tick.fleet.read().desired == 1 and not result.acted
    assert says in result.errors["signals"] and "bad input" in result.errors["signals"]
    assert "nothing is scaled while a signal's input is bad" in result.decision.reasons[-1]
    assert any(says in m.text for m in tick.notifier.messages)  # told on Slack, once


def test_run_forecast_and_status_show_every_signal(
    signal_prometheus: SignalPrometheus,  # noqa: F811
    tmp_path: Path,
) -> None:
    """End to end through the CLI: `run --once` decides on the signals, `forecast` shows
    them in the decision it would take now, `status` in the last decision and its column."""
    pool = {
        "name": "face",
        "backend": {"kind": "simulated", "initial_nodes": 4, "boot_delay": "0s"},
        "demand": {"query": series.DEMAND, "window": "1h"},
        "capacity": {"per_node_rps": 10.0},
        "predictor": {"kind": "linear"},
        "max_nodes": 40,
        "signals": [QUEUE, GPU, SLOW, {**WANTED, "query": series.NOTHING}],
    }
    config = {
        "state_dir": str(tmp_path / "state"),
        "decision_log": str(tmp_path / "decisions.jsonl"),
        "metrics": {"kind": "prometheus", "url": signal_prometheus.url},
        "pools": [pool],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))

    ran = runner.invoke(app, ["run", "--config", str(path), "--once"])
    assert ran.exit_code == 1, ran.output  # a tick with a failing signal is not all well
    (record,) = read_decisions(tmp_path / "decisions.jsonl")
    assert record["desired"] == 6  # gpu: ceil(4 × 95 / 70)
    assert "signal planner (node_count): no data" in " | ".join(record["reasons"])

    seen = runner.invoke(app, ["forecast", "--config", str(path)])
    assert seen.exit_code == 0, seen.output
    for line in ("signal backlog (queue_depth) needs 5 nodes", "signal gpu (gpu_utilization)"):
        assert line in seen.output

    shown = runner.invoke(app, ["status", "--config", str(path)], env={"COLUMNS": "400"})
    assert shown.exit_code == 1, shown.output  # the planner signal's error is still there
    flat = " ".join(shown.output.split())
    assert "backlog 5, gpu 6, p95 5, planner no data" in flat
