"""Pure decisions of a Nomad cluster's safe scale-in: which nodes go, and what next.

backends.nomad_cluster does the I/O; this module only reads Nomad's answers and
the persisted record of a scale-in in progress, so each rule is tested alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

INSTANCE_ID_ATTRIBUTE = "unique.platform.aws.instance-id"
DRAIN_META_KEY = "gpu-autoscaler-drain"
"""Node meta set on a node we drain (value: the group name), so a lost record can be repaired."""
DEADLINE_GRACE = timedelta(seconds=30)
"""Nomad stops what is left at the drain deadline; give it this long before judging."""
RECORD_VERSION = 1
_ACTIVE_CLIENT_STATES = ("running", "pending")


# ---- reading nodes -------------------------------------------------------------------


def node_in_pool(
    stub: Mapping[str, Any],
    node_pool: str | None,
    node_class: str | None,
    datacenter: str | None,
) -> bool:
    """The pool's filter: every given field must match; a missing filter matches all."""
    wanted = {"NodePool": node_pool, "NodeClass": node_class, "Datacenter": datacenter}
    return all(value is None or stub.get(key) == value for key, value in wanted.items())


def node_serves(stub: Mapping[str, Any]) -> bool:
    """Ready, schedulable and not on its way out."""
    return (
        stub.get("Status") == "ready"
        and stub.get("SchedulingEligibility") == "eligible"
        and not stub.get("Drain")
    )


def instance_id_of(node: Mapping[str, Any]) -> str | None:
    """The node's AWS instance ID attribute; None where there is none (or the attributes
    are not an object): such a node is never chosen for a scale-in."""
    attributes = node.get("Attributes")
    value = attributes.get(INSTANCE_ID_ATTRIBUTE) if isinstance(attributes, Mapping) else None
    return str(value) if value else None


def active_allocations(allocations: Iterable[Mapping[str, Any]], *, count_system: bool) -> int:
    """Allocations still running (or about to) on a node; system jobs only if asked."""
    total = 0
    for allocation in allocations:
        if allocation.get("ClientStatus") not in _ACTIVE_CLIENT_STATES:
            continue
        job = allocation.get("Job")  # a job of unknown type counts: busy, never idle
        if not count_system and isinstance(job, Mapping) and job.get("Type") == "system":
            continue
        total += 1
    return total


# ---- choosing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    node_id: str
    name: str
    instance_id: str
    busy: int  # running non-system allocations


def choose_nodes_to_remove(candidates: Iterable[Candidate], count: int) -> list[Candidate]:
    """Empty nodes first, then the least busy; ties by name so the choice is repeatable."""
    if count <= 0:
        return []
    return sorted(candidates, key=lambda c: (c.busy, c.name, c.node_id))[:count]


# ---- the record of a scale-in in progress --------------------------------------------


@dataclass(frozen=True)
class DrainingNode:
    node_id: str
    instance_id: str
    name: str
    started_at: datetime
    deadline: datetime
    restoring: bool = False  # giving the node back failed once; try again next call


@dataclass(frozen=True)
class ScaleInRecord:
    group: str
    nodes: tuple[DrainingNode, ...] = ()

    @property
    def leaving(self) -> tuple[DrainingNode, ...]:
        """The nodes on their way out of the group: not one whose give-back failed (it is
        given back on a later call, never terminated), which counts as staying."""
        return tuple(n for n in self.nodes if not n.restoring)

    def without(self, node_ids: Iterable[str]) -> ScaleInRecord:
        gone = set(node_ids)
        return replace(self, nodes=tuple(n for n in self.nodes if n.node_id not in gone))

    def with_nodes(self, nodes: Iterable[DrainingNode]) -> ScaleInRecord:
        return replace(self, nodes=(*self.nodes, *nodes))

    def to_json(self) -> str:
        nodes = [
            {
                **asdict(node),
                "started_at": node.started_at.isoformat(),
                "deadline": node.deadline.isoformat(),
            }
            for node in self.nodes
        ]
        return json.dumps(
            {"version": RECORD_VERSION, "group": self.group, "nodes": nodes}, indent=2
        )


def record_from_json(text: str, group: str) -> ScaleInRecord:
    """The persisted record; ValueError when it is unreadable or for another group."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        raise ValueError("not a scale-in record of a known version")
    if data.get("group") != group:
        raise ValueError(f"record is for group {data.get('group')!r}, not {group!r}")
    nodes = []
    for entry in data.get("nodes") or []:
        try:
            nodes.append(
                DrainingNode(
                    node_id=str(entry["node_id"]),
                    instance_id=str(entry["instance_id"]),
                    name=str(entry["name"]),
                    started_at=_aware(entry["started_at"]),
                    deadline=_aware(entry["deadline"]),
                    restoring=bool(entry.get("restoring", False)),
                )
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"unusable node entry: {type(error).__name__}") from None
    return ScaleInRecord(group=group, nodes=tuple(nodes))


def _aware(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return moment


# ---- what to do next with a draining node --------------------------------------------


class Step(Enum):
    WAIT = "wait"  # still draining, deadline not reached
    TERMINATE = "terminate"  # drained (or allowed to go busy): terminate its instance
    RESTORE = "restore"  # give the node back: busy past the deadline, or drain stopped
    FORGET = "forget"  # someone else took over (instance gone, drain cancelled by hand)


@dataclass(frozen=True)
class NodeProgress:
    """What Nomad and the group say about one draining node now."""

    exists: bool  # Nomad still knows the node
    draining: bool
    eligible: bool
    active: int  # allocations the drain waits for
    instance_in_group: bool


def node_progress(
    node: Mapping[str, Any] | None,
    allocations: Iterable[Mapping[str, Any]],
    *,
    count_system: bool,
    instance_in_group: bool,
) -> NodeProgress:
    """What a draining node's Node (None: it left Nomad) and allocations say. ValueError
    where the Node does not say whether it drains and is eligible, as Nomad always does
    (DrainStrategy an object or null, Drain true or false, SchedulingEligibility one of
    two words): such a node is never taken for drained, stopped or given back by hand."""
    if node is None:
        return NodeProgress(False, False, False, 0, instance_in_group)
    strategy, drain = node.get("DrainStrategy", "(left out)"), node.get("Drain", False)
    eligibility = node.get("SchedulingEligibility")
    if (
        not (strategy is None or isinstance(strategy, Mapping))
        or not isinstance(drain, bool)
        or eligibility not in ("eligible", "ineligible")
    ):
        raise ValueError(
            f"its Node does not say whether it drains (DrainStrategy {strategy!r:.40}, "
            f"Drain {drain!r:.20}, SchedulingEligibility {eligibility!r:.20})"
        )
    return NodeProgress(
        exists=True,
        draining=drain or strategy is not None,
        eligible=eligibility == "eligible",
        active=active_allocations(allocations, count_system=count_system),
        instance_in_group=instance_in_group,
    )


def next_step(
    entry: DrainingNode, progress: NodeProgress, now: datetime, terminate_busy: bool
) -> tuple[Step, str]:
    """The next step for one node and a short reason for the log and reports."""
    if entry.restoring:
        return Step.RESTORE, "giving the node back failed before; trying again"
    if not progress.instance_in_group:
        return (
            Step.FORGET,
            "its instance left the group (replaced by AWS, or terminated by someone else)",
        )
    if not progress.exists:
        return Step.TERMINATE, "the node left Nomad; nothing runs there"
    if progress.eligible and not progress.draining:
        return Step.FORGET, "someone cancelled the drain and made the node eligible"
    if progress.active == 0 and not progress.draining:
        return Step.TERMINATE, "drained"
    if now < entry.deadline + DEADLINE_GRACE:
        if progress.draining:
            return Step.WAIT, f"draining, {progress.active} allocations left"
        return Step.RESTORE, f"the drain stopped with {progress.active} allocations still running"
    if terminate_busy:
        return Step.TERMINATE, (
            f"drain deadline passed with {progress.active} allocations running; "
            "terminate_busy_after_deadline is set"
        )
    return Step.RESTORE, (
        f"still running {progress.active} allocations past the drain deadline; not terminated"
    )
