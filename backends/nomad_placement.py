"""A Nomad job group's allocations that Nomad cannot place: pending for ever, not booting.

A count raised past what the cluster holds (no GPU node with a free device, a constraint
no node meets, a namespace quota) gets no allocation for the rest: the scheduler's
evaluation records why in FailedTGAllocs (an AllocMetric per group) and leaves a
`blocked` evaluation waiting for room, carrying the same metrics (Nomad's
Evaluation.CreateBlockedEval; a later evaluation that places everything cancels it).
Read as pending only, they look like nodes on the way and nobody is told why the pool
waits. NomadJobGroup reads the job's evaluations
(GET /v1/job/:job_id/evaluations, ACL read-job, one call) only when fewer of the group's
allocations are meant to run than its count, and says why in the fleet's `stuck` (FleetState). A
scale-out is still written: the count is the demand's, not a step on the last one, and
what adds GPU nodes (a cluster autoscaler, Karpenter-like provisioners, the Nomad
Autoscaler's cluster policies) reacts to the queue, so holding the count would let the
fleet grow by one boot's worth at a time. Kept apart from backends.nomad_job, which is
full.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.base import BackendError, is_count
from common.secrets import redact

if TYPE_CHECKING:
    import nomad.api

    from backends.nomad_job import NomadJobBackend

log = logging.getLogger("backends.nomad_job")  # NomadJobGroup's logger

BLOCKED = "blocked"
LIVE_CLIENT_STATUSES = frozenset({"pending", "running"})


@dataclass(frozen=True)
class Unplaced:
    """Allocations of the group Nomad could not place, why, and the evaluation waiting."""

    count: int
    cause: str
    evaluation: str

    def note(self, target: str) -> str:
        """The sentence the team is told (once) while it lasts."""
        return (
            f"Nomad cannot place {self.count} allocation(s) of {target}: {self.cause}; "
            f"they wait for room in the cluster, not booting (`nomad eval status "
            f"{self.evaluation}`)"
        )


# ---- pure -----------------------------------------------------------------------------


def live_allocations(allocations: Sequence[Mapping[str, Any]], group: str) -> int:
    """The group's allocations placed and meant to run (starting or running)."""
    return sum(
        1
        for a in allocations
        if a.get("TaskGroup") == group
        and a.get("DesiredStatus") == "run"
        and a.get("ClientStatus") in LIVE_CLIENT_STATUSES
    )


def unplaced_of(evaluations: Any, group: str) -> Unplaced | None:
    """The group's unplaced allocations from GET /v1/job/:job_id/evaluations: the newest
    blocked evaluation whose failed placements (its own, or an older Nomad's on the
    evaluation that left it) name the group; None when none does."""
    if not isinstance(evaluations, list) or not all(isinstance(e, dict) for e in evaluations):
        raise BackendError("unexpected answer shape")
    by_id = {e.get("ID"): e for e in evaluations}
    blocked = [e for e in evaluations if e.get("Status") == BLOCKED]
    for evaluation in sorted(blocked, key=_create_index, reverse=True):
        metric = _failed(evaluation, group) or _failed(
            by_id.get(evaluation.get("PreviousEval")), group
        )
        if metric is not None:
            failures = metric.get("CoalescedFailures")
            count = 1 + (failures if is_count(failures) else 0)
            return Unplaced(count, redact(placement_failure(metric)), str(evaluation.get("ID")))
    return None


def placement_failure(metric: Mapping[str, Any]) -> str:
    """An AllocMetric in the words `nomad job status` prints under Placement Failure."""
    said: list[str] = []
    if metric.get("NodesEvaluated") == 0:
        said.append("No nodes were eligible for evaluation")
    said += [
        f'No nodes are available in datacenter "{dc}"'
        for dc, n in _counts(metric, "NodesAvailable")
        if n == 0
    ]
    said += [
        f'Class "{c}": {n} nodes excluded by filter' for c, n in _counts(metric, "ClassFiltered")
    ]
    said += [
        f'Constraint "{c}": {n} nodes excluded by filter'
        for c, n in _counts(metric, "ConstraintFiltered")
    ]
    exhausted = metric.get("NodesExhausted")
    if is_count(exhausted) and exhausted > 0:
        said.append(f"Resources exhausted on {exhausted} nodes")
    said += [f'Class "{c}" exhausted on {n} nodes' for c, n in _counts(metric, "ClassExhausted")]
    said += [
        f'Dimension "{d}" exhausted on {n} nodes' for d, n in _counts(metric, "DimensionExhausted")
    ]
    quota = metric.get("QuotaExhausted")
    if isinstance(quota, list):
        said += [f'Quota limit hit "{q}"' for q in quota if isinstance(q, str)]
    return "; ".join(said) or "Nomad gave no reason"


def _failed(evaluation: Any, group: str) -> Mapping[str, Any] | None:
    failed = evaluation.get("FailedTGAllocs") if isinstance(evaluation, dict) else None
    metric = failed.get(group) if isinstance(failed, dict) else None
    return metric if isinstance(metric, dict) else None


def _counts(metric: Mapping[str, Any], key: str) -> list[tuple[str, int]]:
    found = metric.get(key)
    if not isinstance(found, dict):
        return []
    return sorted((str(k), v) for k, v in found.items() if is_count(v))


def _create_index(evaluation: Mapping[str, Any]) -> int:
    index = evaluation.get("CreateIndex")
    return index if is_count(index) else 0


# ---- the adapter: NomadJobGroup takes this in ----------------------------------------


class WatchesPlacement:
    """What NomadJobGroup learns of unplaced allocations at each read."""

    config: NomadJobBackend
    target: str
    _jobs: nomad.api.Job
    _job_path: str
    _call: Callable[..., Any]
    unplaced: Unplaced | None = None
    """As the last read found it."""

    def placement(self, desired: int, allocations: Sequence[Mapping[str, Any]]) -> str | None:
        """FleetState.stuck for unplaced allocations; asks Nomad (one call) only when fewer of
        the group's allocations are placed to run than its count. Best effort, as the
        Kubernetes pod list is: a listing that fails is logged and the last verdict stands
        (it only says why; failing the read left the pool unscaled through the surge that
        outgrew the cluster, for want of an explanation)."""
        group = self.config.group
        if live_allocations(allocations, group) >= desired:
            self.unplaced = None
            return None
        what = f"listing evaluations of {self.target}"
        try:
            answer = self._call(lambda: self._jobs.get_evaluations(self._job_path), what=what)
            self.unplaced = unplaced_of(answer, group)
        except BackendError as error:
            said = str(error) if str(error).startswith(what) else f"{what}: {error}"
            log.warning("%s; the last verdict on unplaced allocations stands", said)
        return None if self.unplaced is None else self.unplaced.note(self.target)
