"""The pure rules: each kind's count from a value, and weighing the counts in decide()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.policy import Limits, Memory, Observation, decide, nodes_for
from autoscaler.reason_rules import rule_of
from autoscaler.signals.base import BadSignalInput, SignalContext
from autoscaler.signals.gpu_utilization import GpuUtilizationSignal
from autoscaler.signals.latency import LatencySignal
from autoscaler.signals.node_count import NodeCountSignal
from autoscaler.signals.observe import reading_of
from autoscaler.signals.queue_depth import QueueDepthSignal
from autoscaler.signals.weigh import SignalReading

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LIMITS = Limits(
    min_nodes=0,
    max_nodes=50,
    stabilization=timedelta(minutes=3),
    max_step_down=10,
    cooldown=timedelta(0),
)


def context(current: int = 4, ready: int = 4, demand: float | None = 20.0) -> SignalContext:
    return SignalContext(current, ready, demand, 10.0, 0.8, nodes_for)


def reading(name: str, nodes: int | None, *, bad: bool = False, hold: int = 10) -> SignalReading:
    return SignalReading(
        name, "node_count", nodes, "seen", bad=bad, hold_for=timedelta(minutes=hold)
    )


def test_queue_depth_without_demand_counts_the_backlog_alone_and_says_so() -> None:
    queue = QueueDepthSignal(kind="queue_depth", name="q", query="q", drain_within="2m")
    nodes, detail = queue.count(2400, context(demand=None))  # 20/s over 10/s nodes
    assert nodes == 2 and "arrivals unknown" in detail
    nodes, _ = queue.count(0, context(demand=20.0))  # an empty queue: arrivals only
    assert nodes == 3


def test_gpu_utilization_keeps_the_count_within_its_tolerance() -> None:
    gpu = GpuUtilizationSignal(kind="gpu_utilization", name="g", query="g", target=70)
    assert gpu.count(75, context(current=6, ready=5))[0] == 6  # 75/70 within 10 %
    assert gpu.count(35, context(current=6, ready=6))[0] == 3  # HPA: 6 × 35/70
    with pytest.raises(BadSignalInput, match=r"100\.5 %"):
        gpu.count(100.5, context())


def test_latency_guard_waits_for_nodes_already_on_the_way() -> None:
    guard = LatencySignal(kind="latency", name="p95", query="p", target="2s", add_nodes=2)
    nodes, detail = guard.count(3.0, context(current=8, ready=5))
    assert nodes == 8 and "already on the way" in detail  # 5 ready + 2 < 8 asked for
    assert guard.count(3.0, context(current=5, ready=5))[0] == 7


def test_a_missing_signal_holds_its_last_good_count_for_hold_for_then_the_fleet() -> None:
    memory = Memory()
    obs = Observation(at=T0, current=4, forecast_nodes=3, signals=(reading("q", 9),))
    decision, memory = decide(obs, LIMITS, memory)
    assert decision.desired == 9 and memory.signal_counts == (("q", T0, 9),)
    for minutes, desired in ((5, 9), (10, 9)):
        at = T0 + timedelta(minutes=minutes)
        obs = Observation(at=at, current=4, forecast_nodes=3, signals=(reading("q", None),))
        decision, memory = decide(obs, LIMITS, memory)
        assert decision.desired == desired
        assert memory.signal_counts == (("q", T0, 9),)  # the last good one stays
    at = T0 + timedelta(minutes=11)  # past hold_for: hold the fleet (4), not the forecast (3)
    obs = Observation(at=at, current=4, forecast_nodes=3, signals=(reading("q", None),))
    decision, memory = decide(obs, LIMITS, memory)
    assert decision.desired == 4 and memory.recommendations == ()
    assert "missing_data" in {rule_of(r) for r in decision.reasons}


def test_bad_input_holds_everything_even_a_scale_up_the_forecast_wants() -> None:
    obs = Observation(
        at=T0,
        current=2,
        forecast_nodes=12,
        signals=(reading("q", None, bad=True), reading("n", 20)),
    )
    decision, memory = decide(obs, LIMITS, Memory(recommendations=((T0, 2),)))
    assert (decision.desired, decision.target) == (2, 2)
    assert memory.recommendations == ()
    assert rule_of(decision.reasons[-1]) == "signal_bad_input"


def test_bad_input_does_not_keep_a_fleet_above_the_pools_max_nodes() -> None:
    """The pool's max_nodes holds whatever the data, as where demand is missing: a fleet
    above a lowered max_nodes came down at once, except while a signal's input was bad."""
    obs = Observation(at=T0, current=60, forecast_nodes=12, signals=(reading("q", None, bad=True),))
    decision, memory = decide(obs, LIMITS, Memory())
    assert (decision.desired, decision.target) == (50, 50)
    assert memory.last_action_at == T0
    assert rule_of(decision.reasons[-1]) == "signal_bad_input"
    assert "above pool max_nodes 50" in decision.reasons[-1]


def test_a_signal_removed_from_the_config_is_forgotten() -> None:
    memory = Memory(signal_counts=(("gone", T0, 9),))
    obs = Observation(at=T0, current=4, forecast_nodes=4)
    decision, memory = decide(obs, LIMITS, memory)
    assert memory.signal_counts == () and decision.desired == 4


def test_gpu_utilization_exactly_at_its_tolerance_keeps_the_count_either_side() -> None:
    """77 % and 63 % on a 70 % target are both exactly 10 % off: within, as the README
    says, though 77/70 - 1 comes out a hair above 0.1 in floating point."""
    gpu = GpuUtilizationSignal(kind="gpu_utilization", name="g", query="g", target=70)
    assert gpu.count(77, context(current=10, ready=10))[0] == 10
    assert gpu.count(63, context(current=10, ready=10))[0] == 10
    assert gpu.count(78, context(current=10, ready=10))[0] == 12  # past it: 10 × 78/70
    wide = GpuUtilizationSignal(
        kind="gpu_utilization", name="g", query="g", target=30, tolerance=0.3
    )
    assert wide.count(39, context(current=10, ready=10))[0] == 10
    assert wide.count(21, context(current=10, ready=10))[0] == 10


def test_node_count_reason_shows_the_value_that_was_rounded_up() -> None:
    """2.0000001 asks for 3 nodes (rounded up), so its reason must not read '2 nodes'."""
    signal = NodeCountSignal(kind="node_count", name="n", query="n")
    assert signal.count(2.0000001, context()) == (3, "query gives 2.0000001 nodes, rounded up to 3")
    assert signal.count(2.0000000000000004, context()) == (2, "query gives 2 nodes")
    assert signal.count(-0.0, context()) == (0, "query gives 0 nodes")


def test_a_queue_no_finite_fleet_drains_is_bad_input_not_a_crash() -> None:
    """1e306 queued within 1 ms (or 1e10 at 1e-300/s a node) is an infinite node count:
    the reading says so as bad input (nothing scaled), instead of raising out of the
    tick, `forecast` and the backtest alike."""
    fast = QueueDepthSignal(kind="queue_depth", name="q", query="q", drain_within="1ms")
    slow = QueueDepthSignal(
        kind="queue_depth", name="q", query="q", drain_within="1m", per_node_rate=1e-300
    )
    for signal, value in ((fast, 1e306), (slow, 1e300)):
        got = reading_of(signal, value, context())
        assert got.bad and got.nodes is None and "no node count" in got.detail
    decision, _ = decide(
        Observation(at=T0, current=4, forecast_nodes=9, signals=(got,)), LIMITS, Memory()
    )
    assert decision.desired == 4
