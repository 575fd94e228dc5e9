"""The simulated fleet behaves like a real one where the daemon can tell: boot delay,
cheapest nodes removed first, no write when nothing changes, failures on demand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.clock import SimulatedClock
from backends.base import BackendError, FleetState
from backends.simulated import SimulatedFleet

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
