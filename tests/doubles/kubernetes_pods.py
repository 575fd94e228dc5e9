"""core/v1 Pods for the Kubernetes API double (tests.doubles.kubernetes_api).

Follows the Kubernetes API reference "Pod v1 core", list (GET
/api/v1/namespaces/{namespace}/pods, a PodList: kind, apiVersion,
metadata.resourceVersion, items) with the `labelSelector` query parameter
(equality-based: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated, all must hold;
set-based `in`/`notin` are not served: 400, as a selector the server cannot parse).
`resourceVersion=0` (served from the watch cache) is accepted and recorded. Each
item has metadata (name, namespace, uid, resourceVersion, creationTimestamp, labels,
deletionTimestamp once being deleted), spec (containers, nodeName once scheduled) and
status as the kubelet and the scheduler write it for the states a GPU fleet meets:
- Unschedulable: phase Pending, one condition PodScheduled False, reason
  Unschedulable, the scheduler's message ("0/4 nodes are available: 4 Insufficient
  nvidia.com/gpu. ..."), no containerStatuses;
- a container waiting (CrashLoopBackOff: phase Running, restartCount > 0;
  ImagePullBackOff, ErrImagePull: phase Pending): conditions Initialized True, Ready
  and ContainersReady False (ContainersNotReady), PodScheduled True;
- ready: phase Running, every condition True.
RBAC denials come from the double's `denied` set, verb list on resource "pods" (the
core API group, ""), worded as the API server words them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.doubles.kubernetes_objects import status_object

UNSCHEDULABLE_GPU = (
    "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are "
    "available: 4 No preemption victims found for incoming pod."
)
WAITING_MESSAGES = {
    "CrashLoopBackOff": "back-off 5m0s restarting failed container=worker pod={pod}",
    "ImagePullBackOff": 'Back-off pulling image "registry.example/gpu-worker:1.5"',
    "ErrImagePull": 'failed to pull and unpack image "registry.example/gpu-worker:1.5": not found',
}


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # metav1.Time: seconds


@dataclass
class FakePod:
    namespace: str
    name: str
    labels: dict[str, str]
    state: str  # "ready" | "unschedulable" | a container's waiting reason
    since: datetime  # when it entered that state (the condition's lastTransitionTime)
    message: str | None = None  # the scheduler's or the kubelet's; a typical one if None
    deleting: bool = False
    resource_version: int = 3000
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


def _condition(kind: str, status: str, since: datetime, **why: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": _time(since),
        **why,
    }


def pod_json(pod: FakePod) -> dict[str, Any]:
    """A Pod as the API server serves it, its status as the scheduler and kubelet wrote it."""
    created = pod.since - timedelta(seconds=5)
    metadata: dict[str, Any] = {
        "name": pod.name,
        "generateName": pod.name.rsplit("-", 1)[0] + "-",
        "namespace": pod.namespace,
        "uid": pod.uid,
        "resourceVersion": str(pod.resource_version),
        "creationTimestamp": _time(created),
        "labels": dict(pod.labels),
    }
    if pod.deleting:
        metadata["deletionTimestamp"] = _time(pod.since + timedelta(minutes=1))
        metadata["deletionGracePeriodSeconds"] = 30
    spec: dict[str, Any] = {
        "containers": [{"name": "worker", "image": "registry.example/gpu-worker:1.5"}],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
    }
    if pod.state == "unschedulable":
        status: dict[str, Any] = {
            "phase": "Pending",
            "conditions": [
                _condition(
                    "PodScheduled",
                    "False",
                    pod.since,
                    reason="Unschedulable",
                    message=pod.message or UNSCHEDULABLE_GPU,
                )
            ],
            "qosClass": "Burstable",
        }
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        }
    spec["nodeName"] = "gpu-node-1"
    ready = pod.state == "ready"
    flag = "True" if ready else "False"
    not_ready = (
        {}
        if ready
        else {
            "reason": "ContainersNotReady",
            "message": "containers with unready status: [worker]",
        }
    )
    if ready:
        container_state: dict[str, Any] = {"running": {"startedAt": _time(pod.since)}}
    else:
        text = pod.message or WAITING_MESSAGES.get(pod.state, "").format(pod=pod.name)
        container_state = {"waiting": {"reason": pod.state, **({"message": text} if text else {})}}
    crashing = pod.state == "CrashLoopBackOff"
    status = {
        "phase": "Running" if ready or crashing else "Pending",
        "conditions": [
            _condition("Initialized", "True", created),
            _condition("Ready", flag, pod.since, **not_ready),
            _condition("ContainersReady", flag, pod.since, **not_ready),
            _condition("PodScheduled", "True", created),
        ],
        "hostIP": "10.0.3.17",
        "podIP": "10.244.3.41",
        "startTime": _time(created),
        "containerStatuses": [
            {
                "name": "worker",
                "ready": ready,
                "started": ready,
                "restartCount": 7 if crashing else 0,
                "image": "registry.example/gpu-worker:1.5",
                "imageID": "",
                "state": container_state,
            }
        ],
        "qosClass": "Burstable",
    }
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec, "status": status}


def selects(selector: str, labels: dict[str, str]) -> bool | None:
    """Whether an equality-based label selector matches `labels`; None: not parsed."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if " in " in term or " notin " in term or "(" in term:
            return None
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


class KubernetesPods:
    """The Pod store; the caller holds the double's lock."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], FakePod] = {}

    def add(
        self,
        name: str,
        state: str,
        since: datetime,
        labels: dict[str, str],
        namespace: str = "default",
        **kw: Any,
    ) -> FakePod:
        pod = FakePod(namespace, name, dict(labels), state, since, **kw)
        self.pods[(namespace, name)] = pod
        return pod

    def route(
        self,
        method: str,
        parts: list[str],
        query: dict[str, str],
        user: str,
        denied: set[tuple[str, str]],
    ) -> tuple[int, Any]:
        # api / v1 / namespaces / {ns} / pods
        if len(parts) != 5 or parts[2] != "namespaces" or parts[4] != "pods":
            return 404, status_object(404, "the server could not find the requested resource")
        if method != "GET":
            return 405, status_object(
                405, "the server does not allow this method on the requested resource"
            )
        namespace = parts[3]
        if ("list", "pods") in denied:
            message = (
                f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" '
                f'in the namespace "{namespace}"'
            )
            return 403, status_object(403, message, kind="pods")
        selector = query.get("labelSelector", "")
        items = []
        for (ns, _), pod in sorted(self.pods.items()):
            matched = selects(selector, pod.labels)
            if matched is None:
                return 400, status_object(400, f"unable to parse requirement: {selector!r}")
            if ns == namespace and matched:
                items.append(pod_json(pod))
        return 200, {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "3100"},
            "items": items,
        }
