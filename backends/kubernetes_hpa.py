"""A HorizontalPodAutoscaler on the same workload: another autoscaler on the fleet.

An HPA (autoscaling/v2) whose scaleTargetRef is our Deployment or StatefulSet writes the
same scale subresource we write; the two then undo each other's counts, each taking the
other's for a change by hand. KubernetesWorkload lists the namespace's HPAs (RBAC `list`
on `horizontalpodautoscalers`, API group `autoscaling`) to say so before it acts. An HPA
whose behavior disables both directions (selectPolicy Disabled) does not act and is not
named. Kept apart from backends.kubernetes, which is full.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from backends.base import BackendError
from backends.retry import call_with_retries
from common.deadline import whole_answer_s
from common.secrets import shorten
from common.tick_circuit import server_of

if TYPE_CHECKING:
    from backends.kubernetes import KubernetesBackend
    from backends.kubernetes_credentials import KubernetesConnection
    from backends.kubernetes_wording import Target

KINDS = {"deployment": "Deployment", "statefulset": "StatefulSet"}
"""Our workload setting, as scaleTargetRef.kind names it."""


# ---- pure -----------------------------------------------------------------------------


def hpas_on(answer: Any, target: Target) -> list[str]:
    """A phrase for each HPA in a HorizontalPodAutoscalerList (its JSON as sent) that
    targets the workload and may act: its name, its range and how to turn it off."""
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise BackendError(
            f"the answer listing HorizontalPodAutoscalers in namespace {target.namespace!r} "
            "is not a HorizontalPodAutoscalerList"
        )
    found = []
    for item in items:
        metadata, spec = _object(item, "metadata"), _object(item, "spec")
        ref = _object(spec, "scaleTargetRef")
        if metadata is None or ref is None:
            continue
        if ref.get("kind") == KINDS[target.workload] and ref.get("name") == target.name:
            phrase = hpa_phrase(metadata, spec or {}, target.namespace)
            if phrase is not None:
                found.append(phrase)
    return found


def hpa_phrase(metadata: Mapping[str, Any], spec: Mapping[str, Any], namespace: str) -> str | None:
    """None for an HPA that cannot act (both directions Disabled in its behavior)."""
    behavior = _object(spec, "behavior") or {}
    disabled = {
        direction
        for direction in ("scaleUp", "scaleDown")
        if (_object(behavior, direction) or {}).get("selectPolicy") == "Disabled"
    }
    if len(disabled) == 2:
        return None
    name = str(metadata.get("name", ""))
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", "?")
    only = {"scaleUp": ", scales down only", "scaleDown": ", scales up only"}
    what = f"HorizontalPodAutoscaler {name!r} ({low} to {high} replicas"
    what += "".join(only[d] for d in disabled) + ")"
    owner = _controller(metadata)
    if owner is not None:  # e.g. KEDA's ScaledObject: a deleted HPA comes back
        return f"{what}, made by {owner}: remove that (an HPA deleted alone comes back)"
    return f"{what}: kubectl delete hpa {name} -n {namespace}"


def _controller(metadata: Mapping[str, Any]) -> str | None:
    owners = metadata.get("ownerReferences")
    for owner in owners if isinstance(owners, list) else []:
        if isinstance(owner, dict) and owner.get("controller") is True:
            return f"{owner.get('kind')} {str(owner.get('name'))!r}"
    return None


def _object(answer: Any, key: str) -> dict[str, Any] | None:
    value = answer.get(key) if isinstance(answer, dict) else None
    return value if isinstance(value, dict) else None


def describe_hpa_error(
    error: BaseException, connection: KubernetesConnection, target: Target, timeout_s: float
) -> str:
    """As backends.kubernetes_wording words failures, but for the HPA list: its own RBAC rule."""
    from kubernetes.client.exceptions import ApiException

    from backends.kubernetes_errors import status_message
    from backends.kubernetes_wording import describe_kubernetes_error

    if isinstance(error, ApiException) and error.status in (403, 404):
        if error.status == 404:
            text = "the API server serves no autoscaling/v2 HorizontalPodAutoscalers"
        else:
            text = (
                f"Kubernetes refused {connection.identity}: {status_message(error)} (it needs "
                f"RBAC list on horizontalpodautoscalers in API group autoscaling, namespace "
                f"{target.namespace!r})"
            )
        return connection.redact(shorten(text, 500))
    return describe_kubernetes_error(error, connection, target, writing=False, timeout_s=timeout_s)


# ---- the adapter: KubernetesWorkload takes this in ----------------------------------------


class WatchesHpas:
    """`other_autoscalers` for KubernetesWorkload (backends.base.SeesOtherAutoscalers)."""

    config: KubernetesBackend
    connection: KubernetesConnection
    target: Target
    _timeout: tuple[float, float]
    _sleep: Callable[[float], None]

    def other_autoscalers(self) -> list[str]:
        """The HPAs on this workload; one attempt, read-only (see backends.base)."""
        from backends.kubernetes_errors import is_retryable_kubernetes_error

        connection, target, timeout_s = self.connection, self.target, self._timeout[1]
        answer = call_with_retries(
            lambda: self._list_hpas(target),
            what=f"listing HorizontalPodAutoscalers in namespace {target.namespace!r}",
            retries=0,
            is_retryable=is_retryable_kubernetes_error,
            describe=lambda error: describe_hpa_error(error, connection, target, timeout_s),
            sleep=self._sleep,
            deadline_s=whole_answer_s(self.config.timeout.total_seconds()),
            server=server_of(connection.host),
        )
        return hpas_on(answer, target)

    def _list_hpas(self, target: Target) -> Any:
        """The list as the server wrote it (None where it is not JSON), as backends.kubernetes
        reads its answers: the client's model would coerce what it does not expect."""
        from kubernetes.client import AutoscalingV2Api

        api = AutoscalingV2Api(self.connection.api_client)
        answer = api.list_namespaced_horizontal_pod_autoscaler(
            target.namespace, _request_timeout=self._timeout, _preload_content=False
        )
        try:
            return json.loads(answer.data)
        except ValueError:
            return None
        finally:
            answer.release_conn()
