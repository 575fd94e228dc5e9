"""The pure rules of a Nomad cluster's scale-in (backends.nomad_drain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backends.nomad_drain import (
    DEADLINE_GRACE,
    Candidate,
    DrainingNode,
    NodeProgress,
    ScaleInRecord,
    Step,
    active_allocations,
    choose_nodes_to_remove,
    next_step,
    node_in_pool,
    record_from_json,
)

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENTRY = DrainingNode("n1", "i-1", "gpu-1", START, START + timedelta(minutes=10))


def test_choice_prefers_empty_then_least_busy_with_stable_ties() -> None:
    candidates = [
        Candidate("c", "gpu-c", "i-c", busy=2),
        Candidate("a", "gpu-a", "i-a", busy=0),
        Candidate("b", "gpu-b", "i-b", busy=1),
        Candidate("d", "gpu-d", "i-d", busy=0),
    ]
    assert [c.node_id for c in choose_nodes_to_remove(candidates, 3)] == ["a", "d", "b"]
    assert choose_nodes_to_remove(candidates, 0) == []


def test_system_allocations_count_only_when_asked() -> None:
    allocations = [
        {"ClientStatus": "running", "Job": {"Type": "service"}},
        {"ClientStatus": "pending", "Job": {"Type": "batch"}},
        {"ClientStatus": "running", "Job": {"Type": "system"}},
        {"ClientStatus": "complete", "Job": {"Type": "service"}},
    ]
    assert active_allocations(allocations, count_system=False) == 2
    assert active_allocations(allocations, count_system=True) == 3


def test_pool_filter() -> None:
    stub = {"NodePool": "gpu", "NodeClass": "a100", "Datacenter": "dc1"}
    assert node_in_pool(stub, None, None, None)
    assert node_in_pool(stub, "gpu", "a100", "dc1")
    assert not node_in_pool(stub, "gpu", "h100", None)


def test_record_round_trip_and_refusals() -> None:
    record = ScaleInRecord("asg", (ENTRY,))
    assert record_from_json(record.to_json(), "asg") == record
    with pytest.raises(ValueError, match="for group 'asg'"):
        record_from_json(record.to_json(), "other-asg")
    with pytest.raises(ValueError):
        record_from_json("{ torn", "asg")
    with pytest.raises(ValueError):
        record_from_json('{"version": 1, "group": "asg", "nodes": [{"node_id": "x"}]}', "asg")


def progress(**kw: object) -> NodeProgress:
    values: dict = {
        "exists": True,
        "draining": True,
        "eligible": False,
        "active": 2,
        "instance_in_group": True,
    }
    values.update(kw)
    return NodeProgress(**values)


@pytest.mark.parametrize(
    ("state", "minutes", "busy_allowed", "step"),
    [
        (progress(), 5, False, Step.WAIT),
        (progress(draining=False, active=0), 5, False, Step.TERMINATE),
        (progress(active=0), 5, False, Step.WAIT),  # Nomad has not closed the drain yet
        (progress(draining=False), 5, False, Step.RESTORE),  # drain stopped, work left
        (progress(draining=False, eligible=True), 5, False, Step.FORGET),
        (progress(instance_in_group=False), 5, False, Step.FORGET),
        (progress(exists=False), 5, False, Step.TERMINATE),
        (progress(), 10, False, Step.WAIT),  # within the grace after the deadline
        (progress(), 11, False, Step.RESTORE),
        (progress(), 11, True, Step.TERMINATE),
    ],
)
def test_next_step(state: NodeProgress, minutes: int, busy_allowed: bool, step: Step) -> None:
    assert timedelta(minutes=1) > DEADLINE_GRACE
    now = START + timedelta(minutes=minutes)
    assert next_step(ENTRY, state, now, busy_allowed)[0] is step
