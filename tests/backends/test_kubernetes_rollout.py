"""Replicas that will not come up (backends.kubernetes_rollout), through the real
`kubernetes` client against the API double, which serves Deployment conditions and
core/v1 Pods as the API reference has them (tests/doubles/kubernetes_pods.py): a
rollout past its progress deadline, pods Unschedulable (no GPU node free), in
CrashLoopBackOff or ImagePullBackOff; and a workload being deleted, whose count nothing
carries out any more."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backends.base import BackendError, FleetState
from tests.backends.test_kubernetes import DEPLOY, NAME, SCALE, make_backend
from tests.doubles.kubernetes_api import Fault, KubernetesApiDouble, kubernetes_api
from tests.doubles.kubernetes_objects import progress_deadline_exceeded

__all__ = ["kubernetes_api"]  # the fixture, used by name below

PODS = "/api/v1/namespaces/default/pods"
LABELS = {"app": NAME}  # the double's workloads select their pods by app=NAME


def ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def add_pods(double: KubernetesApiDouble, state: str, count: int, minutes: float, **kw) -> None:
    for n in range(count):
        double.pods.add(
            f"{NAME}-7d9f8b6c5d-{state[:4].lower()}{n}", state, ago(minutes), LABELS, **kw
        )


def test_pods_unschedulable_past_the_deadline_say_why_in_one_list(kubernetes_api, tmp_path):
    kubernetes_api.add_deployment(NAME, replicas=8, ready=4)
    add_pods(kubernetes_api, "ready", 4, 90)
    add_pods(kubernetes_api, "unschedulable", 4, 14)
    kubernetes_api.pods.add("other-0", "unschedulable", ago(50), {"app": "other"})
    fleet = make_backend(kubernetes_api, tmp_path).read()
    assert (fleet.desired, fleet.ready, fleet.pending) == (8, 4, 4)
    assert fleet.stuck is not None
    assert fleet.stuck.startswith("4 pods Unschedulable for 14m: 0/4 nodes are available")
    assert "Insufficient nvidia.com/gpu" in fleet.stuck
    (listed,) = kubernetes_api.requests_to("GET", PODS)
    assert listed.query["labelSelector"] == f"app={NAME}"  # the Scale's status.selector
    assert listed.query["resourceVersion"] == "0"  # from the watch cache


def test_pods_on_their_way_are_not_stuck(kubernetes_api, tmp_path) -> None:
    """A cluster autoscaler adding a GPU node leaves pods Unschedulable for minutes."""
    kubernetes_api.add_deployment(NAME, replicas=8, ready=4)
    add_pods(kubernetes_api, "unschedulable", 4, 6)
    assert make_backend(kubernetes_api, tmp_path).read() == FleetState(8, 4, 4)


def test_the_deployments_own_progress_deadline_is_the_bar(kubernetes_api, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=8, ready=4, progress_deadline_s=1800)
    add_pods(kubernetes_api, "unschedulable", 4, 20)
    assert make_backend(kubernetes_api, tmp_path).read().stuck is None
    add_pods(kubernetes_api, "unschedulable", 1, 31)
    assert "1 pod Unschedulable for 31m" in str(make_backend(kubernetes_api, tmp_path).read().stuck)


def test_no_pending_replica_lists_no_pod(kubernetes_api, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=4, ready=4)
    add_pods(kubernetes_api, "CrashLoopBackOff", 1, 30)  # one being replaced: not ours to say
    assert make_backend(kubernetes_api, tmp_path).read() == FleetState(4, 4, 0)
    assert [r.path for r in kubernetes_api.requests] == [SCALE, DEPLOY]


def test_a_statefulset_whose_pod_keeps_crashing(kubernetes_api, tmp_path) -> None:
    """OrderedReady: pod 1 crash-looping, the pods after it are never made."""
    kubernetes_api.add_statefulset(NAME, replicas=4, ready=1)
    add_pods(kubernetes_api, "ready", 1, 60)
    add_pods(kubernetes_api, "CrashLoopBackOff", 1, 25)
    fleet = make_backend(kubernetes_api, tmp_path, workload="statefulset").read()
    assert fleet.stuck is not None
    assert fleet.stuck.startswith("1 pod in CrashLoopBackOff for 25m: back-off 5m0s restarting")


def test_an_image_that_cannot_be_pulled(kubernetes_api, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=3, ready=0)
    add_pods(kubernetes_api, "ImagePullBackOff", 3, 12)
    stuck = make_backend(kubernetes_api, tmp_path).read().stuck
    assert stuck == (
        "3 pods in ImagePullBackOff for 12m: "
        'Back-off pulling image "registry.example/gpu-worker:1.5"'
    )


def test_pods_being_deleted_are_not_stuck(kubernetes_api, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=3, ready=2)
    add_pods(kubernetes_api, "unschedulable", 2, 30, deleting=True)
    assert make_backend(kubernetes_api, tmp_path).read().stuck is None


def test_a_rollout_past_its_deadline_is_read_from_the_deployment(kubernetes_api, tmp_path):
    deployment = kubernetes_api.add_deployment(NAME, replicas=6, ready=3)
    deployment.conditions = [progress_deadline_exceeded(deployment)]
    stuck = make_backend(kubernetes_api, tmp_path).read().stuck
    assert stuck == (
        "its rollout passed its progress deadline (ProgressDeadlineExceeded: "
        f'ReplicaSet "{NAME}-7d9f8b6c5d" has timed out progressing.)'
    )
    assert kubernetes_api.requests_to("GET", PODS) == []  # said already: no list


def test_pods_not_listable_leave_the_read_whole_and_are_not_asked_again(
    kubernetes_api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubernetes_api.add_deployment(NAME, replicas=8, ready=4)
    add_pods(kubernetes_api, "unschedulable", 4, 30)
    kubernetes_api.deny("list", "pods")
    backend = make_backend(kubernetes_api, tmp_path)
    assert backend.read() == FleetState(8, 4, 4)
    assert backend.read() == FleetState(8, 4, 4)
    assert len(kubernetes_api.requests_to("GET", PODS)) == 1
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 'cannot list resource "pods"' in warning.getMessage()
    assert "it needs RBAC list on pods" in warning.getMessage()


def test_a_pod_list_that_fails_once_is_asked_again(kubernetes_api, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=8, ready=4)
    add_pods(kubernetes_api, "unschedulable", 4, 30)
    kubernetes_api.faults.append(Fault("status", status=503, path="/pods"))
    backend = make_backend(kubernetes_api, tmp_path)
    assert backend.read().stuck is None  # not known this time; the read stands
    assert backend.read().stuck is not None


def test_a_throttled_pod_list_keeps_the_last_verdict(kubernetes_api, tmp_path) -> None:
    """A 429 (API Priority and Fairness) on the list is no sign the pods came: read as
    such, it lifted the hold on scale-ups for a tick, and Slack was told the rollout had
    recovered, then failing again."""
    kubernetes_api.add_deployment(NAME, replicas=8, ready=4)
    add_pods(kubernetes_api, "unschedulable", 4, 30)
    backend = make_backend(kubernetes_api, tmp_path)
    stuck = backend.read().stuck
    assert stuck is not None
    kubernetes_api.faults.append(Fault("status", status=429, path="/pods"))
    assert backend.read().stuck == stuck
    assert len(kubernetes_api.requests_to("GET", PODS)) == 2


@pytest.mark.parametrize(
    "odd",
    [
        None,
        [],
        {"items": 5},
        {"items": [5, "pod", None]},
        {"items": [{"status": {"conditions": 5, "containerStatuses": "x"}}]},
        {"items": [{"metadata": 5, "status": {"conditions": [{"type": "Ready", "status": 1}]}}]},
        {
            "items": [
                {"status": {"conditions": [{"type": "PodScheduled", "lastTransitionTime": 7}]}}
            ]
        },
        {
            "items": [
                {"status": {"containerStatuses": [{"state": {"waiting": "CrashLoopBackOff"}}]}}
            ]
        },
    ],
)
def test_an_answer_that_is_no_pod_list_says_nothing_and_never_raises(odd) -> None:
    """What a proxy or a broken server might send instead of a PodList: the read stands."""
    from backends.kubernetes_rollout import pods_stuck, workload_stuck

    assert pods_stuck(odd, datetime.now(UTC), 600) is None
    assert workload_stuck({"status": {"conditions": odd}}) is None


def test_a_workload_being_deleted_is_no_fleet(kubernetes_api, tmp_path) -> None:
    """Deleted with foreground propagation it stays, with a deletionTimestamp, until its
    pods are gone (minutes for workers given a long grace to drain), and its controller
    acts on no scale meanwhile (syncStatusOnly): a write there scaled nothing, and was
    told as done."""
    deployment = kubernetes_api.add_deployment(NAME, replicas=8, ready=5, deleting=True)
    with pytest.raises(
        BackendError, match=r"is being deleted \(since 2025-03-02T10:00:00Z\); nothing is written"
    ):
        make_backend(kubernetes_api, tmp_path).read()
    assert kubernetes_api.requests_to("PATCH", SCALE) == [] and deployment.replicas == 8
