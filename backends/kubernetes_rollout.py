"""Why a Kubernetes workload's pending replicas do not come up: a rollout past its
progress deadline, pods that cannot be created, scheduled or started.

Without it such replicas showed only as pending, for ever, and each scale-up added
more of them. A Deployment's own conditions say so for free (they come with the
workload the backend reads anyway); the pods are listed (one call, by the Scale's label
selector, from the API server's watch cache) only while replicas are pending. A pod
counts only once it has not been ready for longer than the workload's progress deadline
(a Deployment's progressDeadlineSeconds; 600 s, its default, for a StatefulSet): a
cluster autoscaler adding a GPU node leaves pods Unschedulable for minutes, and that is
capacity on its way, not stuck.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from common.durations import format_span
from common.secrets import shorten

DEFAULT_DEADLINE_S = 600.0
"""A Deployment's progressDeadlineSeconds unless set; StatefulSets have none."""
WAITING_FAILURES = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""A container's waiting reasons (kubelet) that mean it will not start by itself."""
_MESSAGE_LIMIT = 200


# ---- pure: reading the answers ---------------------------------------------------------


def workload_stuck(workload: Any) -> str | None:
    """What a Deployment's conditions say of replicas that will not come: its rollout past
    the progress deadline (Progressing False, ProgressDeadlineExceeded), or pods its
    ReplicaSet cannot create (ReplicaFailure True: a quota, an admission refusal)."""
    status = workload.get("status") if isinstance(workload, dict) else None
    for condition in _list(status, "conditions") if isinstance(status, dict) else []:
        kind, state, reason = (condition.get(k) for k in ("type", "status", "reason"))
        message = shorten(str(condition.get("message") or ""), _MESSAGE_LIMIT)
        if (kind, state, reason) == ("Progressing", "False", "ProgressDeadlineExceeded"):
            return f"its rollout passed its progress deadline (ProgressDeadlineExceeded: {message})"
        if (kind, state) == ("ReplicaFailure", "True"):
            return f"its pods cannot be created ({reason}: {message})"
    return None


def progress_deadline_s(workload: Any) -> float:
    """The workload's spec.progressDeadlineSeconds, else DEFAULT_DEADLINE_S."""
    spec = workload.get("spec") if isinstance(workload, dict) else None
    value = spec.get("progressDeadlineSeconds") if isinstance(spec, dict) else None
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31  # int32
    return float(value) if ok else DEFAULT_DEADLINE_S


def pods_stuck(pods: Any, now: datetime, deadline_s: float) -> str | None:
    """The commonest cause among the pods not ready for longer than `deadline_s`, with how
    many and for how long; None where none is (or the answer is no PodList)."""
    items = pods.get("items") if isinstance(pods, dict) else None
    causes: Counter[str] = Counter()
    since: dict[str, datetime] = {}
    examples: dict[str, str] = {}
    for pod in items if isinstance(items, list) else []:
        found = pod_stuck(pod, now, deadline_s)
        if found is None:
            continue
        cause, began, message = found
        causes[cause] += 1
        since[cause] = min(began, since.get(cause, began))
        examples.setdefault(cause, message)
    if not causes:
        return None
    cause, count = causes.most_common(1)[0]
    pods_in = f"{count} pod{'s' if count > 1 else ''}{'' if cause == 'Unschedulable' else ' in'}"
    text = f"{pods_in} {cause} for {format_span(now - since[cause])}"
    return f"{text}: {examples[cause]}" if examples[cause] else text


def pod_stuck(pod: Any, now: datetime, deadline_s: float) -> tuple[str, datetime, str] | None:
    """(cause, since when, the scheduler's or kubelet's message) of a pod that has not been
    ready for longer than `deadline_s` for a cause that does not pass by itself; None for
    any other pod (ready, being deleted, on its way, or not a pod)."""
    if not isinstance(pod, dict) or not isinstance(pod.get("status"), dict):
        return None
    metadata = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    if metadata.get("deletionTimestamp"):
        return None
    conditions = {c.get("type"): c for c in _list(pod["status"], "conditions")}
    ready, scheduled = conditions.get("Ready"), conditions.get("PodScheduled")
    if ready is not None and ready.get("status") == "True":
        return None
    began = _time((ready or scheduled or {}).get("lastTransitionTime"))
    began = began or _time(metadata.get("creationTimestamp"))
    if began is None or now - began <= timedelta(seconds=deadline_s):
        return None
    if scheduled is not None and scheduled.get("status") == "False":
        if scheduled.get("reason") == "Unschedulable":
            return "Unschedulable", began, _message(scheduled)
        return None
    for container in _list(pod["status"], "containerStatuses"):
        state = container.get("state")
        waiting = state.get("waiting") if isinstance(state, dict) else None
        if isinstance(waiting, dict) and waiting.get("reason") in WAITING_FAILURES:
            return str(waiting["reason"]), began, _message(waiting)
    return None


def _list(part: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """part[key]'s objects, where it is a list (a broken answer's other shapes: none)."""
    value = part.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _message(part: dict[str, Any]) -> str:
    return shorten(" ".join(str(part.get("message") or "").split()), _MESSAGE_LIMIT)


def _time(text: Any) -> datetime | None:
    """A metav1.Time (RFC 3339, UTC "Z"); None where it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def server_time(date: str | None) -> datetime:
    """The API server's clock (its answer's Date header), which set the pods' times: a
    daemon's clock off by minutes must not make fresh pods look stuck. The local clock
    where the header is missing or unreadable."""
    try:
        moment = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        moment = None
    return moment if moment is not None and moment.tzinfo else datetime.now(UTC)


# ---- the call --------------------------------------------------------------------------


def list_pods(
    api_client: Any, namespace: str, selector: str, timeout: tuple[float, float]
) -> tuple[Any, datetime]:
    """The workload's pods (one list, from the watch cache: resourceVersion 0) as the API
    server wrote them, and its time then."""
    from kubernetes.client import CoreV1Api

    answer = CoreV1Api(api_client).list_namespaced_pod(
        namespace,
        label_selector=selector,
        resource_version="0",
        _request_timeout=timeout,
        _preload_content=False,
    )
    try:
        return json.loads(answer.data), server_time(answer.headers.get("Date"))
    except ValueError:  # not JSON: nothing to read in it
        return None, server_time(answer.headers.get("Date"))
    finally:
        answer.release_conn()
