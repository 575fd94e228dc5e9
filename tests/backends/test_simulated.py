"""The simulated fleet behaves like a real one where the daemon can tell: boot delay,
cheapest nodes removed first, no write when nothing changes, failures on demand."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.base import BackendError, FleetState
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
BOOT = timedelta(minutes=8)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


def test_initial_nodes_are_ready(clock: SimulatedClock) -> None:
    assert SimulatedFleet(clock, 3, BOOT).read() == FleetState(desired=3, ready=3, pending=0)


def test_new_nodes_serve_only_after_the_boot_delay(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 2, BOOT)
    fleet.scale(5, "forecast")
    assert fleet.read() == FleetState(desired=5, ready=2, pending=3)
    clock.advance(BOOT - timedelta(seconds=1))
    assert fleet.read().ready == 2
    clock.advance(timedelta(seconds=1))
    assert fleet.read() == FleetState(desired=5, ready=5, pending=0)


def test_scale_down_removes_booting_nodes_first(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 2, BOOT)
    fleet.scale(4, "first wave")
    clock.advance(timedelta(minutes=3))
    fleet.scale(6, "second wave")  # two booting since 12:00, two since 12:03
    fleet.scale(5, "forecast fell")
    assert fleet.read() == FleetState(desired=5, ready=2, pending=3)
    clock.advance(timedelta(minutes=5))  # 12:08: the first wave is up; the 12:03 one is not
    assert fleet.read() == FleetState(desired=5, ready=4, pending=1)
    fleet.scale(3, "forecast fell again")
    assert fleet.read() == FleetState(desired=3, ready=3, pending=0)
    fleet.scale(1, "night")
    assert fleet.read() == FleetState(desired=1, ready=1, pending=0)


def test_no_write_when_the_count_is_already_right(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 4, BOOT)
    fleet.scale(4, "steady")
    assert fleet.writes == 0
    fleet.scale(6, "up")
    fleet.scale(6, "steady")
    fleet.scale(2, "down")
    assert fleet.writes == 2  # once per change, never for "steady"


def test_scale_to_zero_and_back(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 2, BOOT)
    fleet.scale(0, "idle")
    assert fleet.read() == FleetState(desired=0, ready=0, pending=0)
    fleet.scale(1, "first request")
    assert fleet.read() == FleetState(desired=1, ready=0, pending=1)


def test_injected_read_failures_then_recovery(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 3, BOOT)
    fleet.fail_reads = 2
    for _ in range(2):
        with pytest.raises(BackendError, match="read failed"):
            fleet.read()
    assert fleet.read().desired == 3


def test_injected_scale_failure_changes_nothing(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 3, BOOT)
    fleet.fail_scales = 1
    with pytest.raises(BackendError, match="scale failed"):
        fleet.scale(7, "forecast")
    assert fleet.read() == FleetState(desired=3, ready=3, pending=0)
    assert fleet.writes == 0
    fleet.scale(7, "forecast")  # the next try goes through
    assert (fleet.read().desired, fleet.writes) == (7, 1)


def test_no_change_does_not_use_up_an_injected_failure(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 3, BOOT)
    fleet.fail_scales = 1
    fleet.scale(3, "steady")  # nothing to write, so nothing to fail
    with pytest.raises(BackendError):
        fleet.scale(4, "up")


class ListFleet:
    """The fleet as first written: a list of ready times walked on every read."""

    def __init__(self, clock: SimulatedClock, nodes: int, boot: timedelta, rate: float) -> None:
        self.clock, self.boot, self.rate = clock, boot, rate
        self.random = random.Random(0)
        self.ready_at: list[datetime | None] = [clock.now() - boot] * nodes

    def read(self) -> FleetState:
        now = self.clock.now()
        ready = sum(1 for t in self.ready_at if t is not None and t <= now)
        return FleetState(len(self.ready_at), ready, len(self.ready_at) - ready)

    def scale(self, desired: int) -> None:
        if desired > len(self.ready_at):
            done = self.clock.now() + self.boot
            for _ in range(desired - len(self.ready_at)):
                self.ready_at.append(None if self.random.random() < self.rate else done)
        else:
            order = sorted(self.ready_at, key=lambda t: (t is None, t.timestamp() if t else 0.0))
            self.ready_at = order[:desired]


steps = st.lists(
    st.one_of(
        st.tuples(st.just("scale"), st.integers(0, 12)),
        st.tuples(st.just("advance"), st.integers(-6, 12)),  # the clock may jump back
        st.tuples(st.just("by hand"), st.integers(0, 12)),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(initial=st.integers(0, 5), rate=st.sampled_from([0.0, 0.3, 1.0]), moves=steps)
def test_counts_match_a_walk_over_every_node(
    initial: int, rate: float, moves: list[tuple[str, int]]
) -> None:
    """Scale-ups (some boots failing), scale-downs, clock jumps and counts set by hand:
    the same desired/ready/pending as counting node by node, and the same nodes kept."""
    clock, reference_clock = SimulatedClock(T0), SimulatedClock(T0)
    fleet = SimulatedFleet(clock, initial, BOOT, boot_failure_rate=rate, seed=0)
    reference = ListFleet(reference_clock, initial, BOOT, rate)
    for move, amount in moves:
        if move == "scale":
            fleet.scale(amount, "test")
            reference.scale(amount)
        elif move == "advance":
            clock.advance(timedelta(minutes=amount))
            reference_clock.advance(timedelta(minutes=amount))
        else:
            nodes = (reference.ready_at + [clock.now()] * amount)[:amount]
            fleet.ready_at, reference.ready_at = nodes, nodes
        assert fleet.read() == reference.read()
        assert sorted(fleet.ready_at, key=str) == sorted(reference.ready_at, key=str)


def test_ready_at_is_earliest_first_with_failed_boots_last(clock: SimulatedClock) -> None:
    fleet = SimulatedFleet(clock, 0, BOOT)
    later, sooner = T0 + timedelta(minutes=5), T0 - timedelta(minutes=1)
    fleet.ready_at = [later, None, sooner, T0]
    assert fleet.ready_at == [sooner, T0, later, None]
    assert fleet.read() == FleetState(desired=4, ready=2, pending=2)
    fleet.ready_at.append(T0)  # a copy: the fleet changes only by assignment
    assert fleet.read().desired == 4
    fleet.scale(3, "down")  # the failed node goes first
    assert fleet.ready_at == [sooner, T0, later]
    fleet.scale(1, "down")  # then the newest: the oldest ready node is kept
    assert fleet.ready_at == [sooner]
