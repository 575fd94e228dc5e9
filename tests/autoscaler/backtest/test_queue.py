"""The backtest's fleet and queue models, on cases worked out by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from autoscaler.backtest.queue import queue_lateness, ready_nodes, score_fleet
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock


def test_capacity_exactly_enough_is_never_late() -> None:
    arrivals = np.array([60.0, 60.0, 60.0])  # 1 req/s
    result = queue_lateness(arrivals, np.array([1.0, 1.0, 1.0]), latency_target_s=3.0)
    assert result.late.tolist() == [0.0, 0.0, 0.0]
    assert result.backlog.tolist() == [0.0, 0.0, 0.0]


def test_a_burst_beyond_capacity_is_late_once_the_queue_passes_the_target() -> None:
    # 2 req/s against 1 req/s: the queue grows by 1 request a second and a request is
    # late once 3 requests (3 s at 1 req/s) wait ahead of it, after 3 s: 57 s × 2 req/s.
    # Then 60 requests are left over; the next minute (0.5 req/s) drains them too slowly
    # to be under 3 queued all minute (60 → 30): all 30 late; the third (30 → 0 at
    # 0.5 req/s net) is late until the queue is 3: t < 54 s, so 27 late.
    arrivals = np.array([120.0, 30.0, 30.0, 30.0])
    result = queue_lateness(arrivals, np.ones(4), latency_target_s=3.0)
    assert result.late == pytest.approx([114.0, 30.0, 27.0, 0.0])
    assert result.backlog == pytest.approx([0.0, 60.0, 30.0, 0.0])
    assert float(result.late.sum() / arrivals.sum()) == pytest.approx(171 / 210)


def test_a_moderate_overload_is_late_after_the_queue_builds() -> None:
    # 1.5 req/s against 1 req/s: the queue reaches 3 after 6 s; 54 s × 1.5 req/s late.
    result = queue_lateness(np.array([90.0]), np.array([1.0]), latency_target_s=3.0)
    assert result.late == pytest.approx([81.0])


def test_with_no_ready_node_every_request_is_late() -> None:
    result = queue_lateness(np.array([0.0, 5.0, 1.0]), np.zeros(3), latency_target_s=3.0)
    assert result.late.tolist() == [0.0, 5.0, 1.0]


def test_a_longer_latency_target_forgives_a_short_queue() -> None:
    arrivals = np.array([90.0])
    strict = queue_lateness(arrivals, np.array([1.0]), latency_target_s=1.0).late[0]
    lenient = queue_lateness(arrivals, np.array([1.0]), latency_target_s=60.0).late[0]
    assert strict == pytest.approx(1.5 * 58)
    assert lenient == 0.0


def test_ready_nodes_follow_the_boot_delay_and_removals_are_immediate() -> None:
    desired = np.array([2, 5, 5, 5, 5, 3, 3, 6, 6, 6])
    ready = ready_nodes(desired, boot_minutes=3, initial_ready=2)
    # 3 ordered at minute 1 are ready at minute 4; removal at 5 is at once; the 3 added at
    # minute 7 (ordered while 3 were kept) would be ready at minute 10, after the end.
    assert ready.tolist() == [2, 2, 2, 2, 5, 3, 3, 3, 3, 3]


def test_ready_nodes_match_the_simulated_fleet() -> None:
    rng = random.Random(7)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    for boot in (0, 1, 4, 10):
        clock = SimulatedClock(start)
        fleet = SimulatedFleet(clock, 3, timedelta(minutes=boot))
        desired, ready = [], []
        for _ in range(200):
            fleet.scale(max(0, fleet.read().desired + rng.randint(-3, 3)), "test")
            state = fleet.read()
            desired.append(state.desired)
            ready.append(state.ready)
            clock.advance(timedelta(minutes=1))
        assert ready_nodes(np.array(desired), boot, 3).tolist() == ready


def test_score_counts_paid_nodes_late_minutes_and_actions_in_the_scored_part() -> None:
    arrivals = np.array([60.0, 60.0, 120.0, 60.0])
    desired = np.array([9, 1, 1, 2])
    score = score_fleet(arrivals, desired, desired, 1.0, 3.0, scored_from=1)
    assert score.node_hours == pytest.approx(4 / 60)
    assert score.late_minutes == 2  # the burst, and the backlog it leaves
    assert score.scale_actions == 2  # 9 → 1 at the first scored minute, 1 → 2
    assert score.requests == 240.0
    assert 0 < score.late_share < 1
