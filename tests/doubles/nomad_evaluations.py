"""Evaluations as Nomad's "List Job Evaluations" (GET /v1/job/:job_id/evaluations) shows
them, for the Nomad API double (tests.doubles.nomad_api).

Shapes follow Nomad's HTTP API documents ("Jobs - HTTP API") and nomad/structs: an
Evaluation with Status, PreviousEval, BlockedEval, FailedTGAllocs (an AllocMetric per
task group: NodesEvaluated, NodesFiltered, NodesAvailable by datacenter, ClassFiltered,
ConstraintFiltered, NodesExhausted, ClassExhausted, DimensionExhausted, QuotaExhausted,
CoalescedFailures: one fewer than the allocations that failed) and QueuedAllocations.
A scheduler run that cannot place everything completes with FailedTGAllocs set and
leaves a `blocked` evaluation (TriggeredBy "queued-allocs", StatusDescription "created
to place remaining allocations") that carries the same FailedTGAllocs
(Evaluation.CreateBlockedEval); a later evaluation that places everything cancels it.
"""

from __future__ import annotations

import uuid
from typing import Any


def alloc_metric(
    *,
    failed: int = 1,
    nodes: int = 3,
    exhausted: dict[str, int] | None = None,
    constraint_filtered: dict[str, int] | None = None,
    datacenters: dict[str, int] | None = None,
    quota: list[str] | None = None,
) -> dict[str, Any]:
    """An AllocMetric for `failed` allocations that could not be placed on `nodes`."""
    filtered = sum((constraint_filtered or {}).values())
    return {
        "NodesEvaluated": nodes,
        "NodesFiltered": filtered,
        "NodesInPool": nodes,
        "NodesAvailable": datacenters or {"dc1": nodes},
        "ClassFiltered": None,
        "ConstraintFiltered": constraint_filtered,
        "NodesExhausted": nodes - filtered if exhausted else 0,
        "ClassExhausted": None,
        "DimensionExhausted": exhausted,
        "QuotaExhausted": quota,
        "ResourcesExhausted": None,
        "Scores": None,
        "AllocationTime": 51200,
        "CoalescedFailures": failed - 1,
    }


def evaluation(
    job_id: str,
    *,
    status: str = "complete",
    namespace: str = "default",
    index: int = 50,
    failed: dict[str, dict[str, Any]] | None = None,
    queued: dict[str, int] | None = None,
    previous: str = "",
    blocked: str = "",
) -> dict[str, Any]:
    return {
        "ID": str(uuid.uuid4()),
        "Namespace": namespace,
        "Priority": 50,
        "Type": "service",
        "TriggeredBy": "queued-allocs" if status == "blocked" else "job-scaling",
        "JobID": job_id,
        "JobModifyIndex": index - 1,
        "NodeID": "",
        "NodeModifyIndex": 0,
        "Status": status,
        "StatusDescription": (
            "created to place remaining allocations" if status == "blocked" else ""
        ),
        "Wait": 0,
        "NextEval": "",
        "PreviousEval": previous,
        "BlockedEval": blocked,
        "FailedTGAllocs": failed,
        "ClassEligibility": None,
        "EscapedComputedClass": False,
        "QuotaLimitReached": "",
        "AnnotatePlan": False,
        "QueuedAllocations": queued,
        "SnapshotIndex": index,
        "CreateIndex": index,
        "ModifyIndex": index + 1,
        "CreateTime": 1495755675944527600 + index,
        "ModifyTime": 1495755675944527600 + index,
    }


def placement_failed(
    job_id: str, group: str, metric: dict[str, Any], *, index: int = 50, carried: bool = True
) -> list[dict[str, Any]]:
    """A scale's evaluation that could not place some of `group`, and the blocked
    evaluation it left, newest first; `carried`: the blocked one carries the metrics
    (Nomad 1.2 on), else only its parent does (older servers)."""
    failed = {group: metric}
    queued = {group: metric["CoalescedFailures"] + 1}
    parent = evaluation(job_id, index=index, failed=failed, queued=queued)
    blocked = evaluation(
        job_id,
        status="blocked",
        index=index + 2,
        failed=failed if carried else None,
        queued=queued,
        previous=parent["ID"],
    )
    parent["BlockedEval"] = blocked["ID"]
    return [blocked, parent]
