"""The workload's answers read as counts: a Scale's replicas, resourceVersion and label
selector, a Deployment's or StatefulSet's ready replicas. Pure; read from the JSON the
API server sent, never the client's model. Kept apart from backends.kubernetes, which
is full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backends.base import BackendError, is_count
from common.secrets import shorten

if TYPE_CHECKING:
    from backends.kubernetes_wording import Target


@dataclass(frozen=True)
class ScaleReading:
    replicas: int
    resource_version: str | None
    selector: str | None = None
    """status.selector: the workload's pods' label selector, as text."""


def scale_reading(scale: Any, target: Target) -> ScaleReading:
    """The count of a Scale as the API server sent it (its JSON, not the client's model:
    the client makes an empty model of any answer that is not one, an HTML page or `{}`,
    and reads `replicas: 5.7` as 5, `true` as 1, `"5"` as 5). Anything but a whole,
    non-negative number is an error, never a count. Every Scale has metadata and a spec;
    ScaleSpec.replicas alone is omitted when it is 0."""
    spec, metadata = _object(scale, "spec"), _object(scale, "metadata")
    if spec is None or metadata is None:
        raise BackendError(
            f"the answer for the scale of {target} is not a Scale (no spec or metadata); "
            "its replica count is unknown"
        )
    replicas = spec.get("replicas", 0)
    if not is_count(replicas):
        raise BackendError(
            f"the answer for the scale of {target} is not a Scale: {shorten(repr(replicas), 40)} "
            "replicas"
        )
    version = metadata.get("resourceVersion")
    status = _object(scale, "status") or {}
    selector = status.get("selector") if isinstance(status.get("selector"), str) else None
    return ScaleReading(replicas, version if version else None, selector or None)


def ready_replicas(workload: Any, target: Target) -> int:
    """status.readyReplicas of a Deployment or StatefulSet as sent (omitted when 0); one
    being deleted is no fleet."""
    status, metadata = _object(workload, "status"), _object(workload, "metadata")
    if status is None or metadata is None:
        raise BackendError(
            f"the answer for {target} is not a {target.workload} (no metadata or status)"
        )
    deleted = metadata.get("deletionTimestamp")
    if deleted:
        # Its controller acts on no scale once it is being deleted (foreground propagation
        # keeps it until its pods are gone): a count written there scales nothing.
        raise BackendError(
            f"{target} is being deleted (since {shorten(str(deleted), 40)}); nothing is "
            "written to it"
        )
    ready = status.get("readyReplicas", 0)
    if not is_count(ready):
        raise BackendError(
            f"the answer for {target} is not a {target.workload}: "
            f"{shorten(repr(ready), 40)} ready replicas"
        )
    return ready


def _object(answer: Any, key: str) -> dict[str, Any] | None:
    """answer[key] where the answer is a JSON object and that is one too."""
    value = answer.get(key) if isinstance(answer, dict) else None
    return value if isinstance(value, dict) else None
