"""autoscaling/v2 HorizontalPodAutoscalers for the Kubernetes API double
(tests.doubles.kubernetes_api).

Follows the Kubernetes API reference "HorizontalPodAutoscaler v2 autoscaling": list
(GET /apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers, a
HorizontalPodAutoscalerList: kind, apiVersion, metadata.resourceVersion, items) and
read (GET .../horizontalpodautoscalers/{name}). Each item has metadata (name,
namespace, uid, resourceVersion, creationTimestamp, ownerReferences when an operator
such as KEDA made it), spec (scaleTargetRef: apiVersion, kind, name; minReplicas,
maxReplicas, metrics, and behavior only when set: scaleUp/scaleDown with
selectPolicy Max, Min or Disabled) and status (currentReplicas, desiredReplicas,
conditions), zero-valued `omitempty` fields left out. RBAC denials come from the
double's `denied` set, verbs list and get on resource "horizontalpodautoscalers" (API
group "autoscaling"), worded as the API server words them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.doubles.kubernetes_objects import KINDS, status_object

GROUP = "autoscaling"
RESOURCE = "horizontalpodautoscalers"


@dataclass
class FakeHpa:
    namespace: str
    name: str
    target_kind: str  # "Deployment" | "StatefulSet" (scaleTargetRef.kind)
    target_name: str
    min_replicas: int = 1
    max_replicas: int = 10
    scale_up_policy: str | None = None  # behavior.scaleUp.selectPolicy, when set
    scale_down_policy: str | None = None
    owner: tuple[str, str] | None = None  # (kind, name) of a controlling owner
    resource_version: int = 5100
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


def hpa_json(hpa: FakeHpa) -> dict[str, Any]:
    """A HorizontalPodAutoscaler as the API server serves it in autoscaling/v2."""
    metadata: dict[str, Any] = {
        "name": hpa.name,
        "namespace": hpa.namespace,
        "uid": hpa.uid,
        "resourceVersion": str(hpa.resource_version),
        "creationTimestamp": "2024-05-02T09:14:00Z",
    }
    if hpa.owner is not None:
        kind, name = hpa.owner
        metadata["ownerReferences"] = [
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": kind,
                "name": name,
                "uid": str(uuid.uuid4()),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": hpa.target_kind,
            "name": hpa.target_name,
        },
        "minReplicas": hpa.min_replicas,
        "maxReplicas": hpa.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            }
        ],
    }
    behavior = {
        direction: {
            "selectPolicy": policy,
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}],
        }
        for direction, policy in (
            ("scaleUp", hpa.scale_up_policy),
            ("scaleDown", hpa.scale_down_policy),
        )
        if policy is not None
    }
    if behavior:
        spec["behavior"] = behavior
    status: dict[str, Any] = {
        "currentReplicas": hpa.min_replicas,
        "desiredReplicas": hpa.min_replicas,
        "conditions": [
            {
                "type": "AbleToScale",
                "status": "True",
                "lastTransitionTime": "2024-05-02T09:15:00Z",
                "reason": "ReadyForNewScale",
                "message": "recommended size matches current size",
            }
        ],
    }
    return {
        "kind": "HorizontalPodAutoscaler",
        "apiVersion": f"{GROUP}/v2",
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }


class KubernetesHpas:
    """The HorizontalPodAutoscaler store; the caller holds the double's lock."""

    def __init__(self) -> None:
        self.hpas: dict[tuple[str, str], FakeHpa] = {}

    def add(self, namespace: str, name: str, target: tuple[str, str], **kw: Any) -> FakeHpa:
        """An HPA on `target`, (resource, name) as the double's workloads are keyed."""
        resource, target_name = target
        hpa = FakeHpa(namespace, name, KINDS.get(resource, resource), target_name, **kw)
        self.hpas[(namespace, name)] = hpa
        return hpa

    def route(
        self, method: str, parts: list[str], user: str, denied: set[tuple[str, str]]
    ) -> tuple[int, Any]:
        # apis / autoscaling / v2 / namespaces / {ns} / horizontalpodautoscalers [/ {name}]
        if len(parts) not in (6, 7) or parts[3] != "namespaces" or parts[5] != RESOURCE:
            return 404, status_object(404, "the server could not find the requested resource")
        if method != "GET":
            return 405, status_object(
                405, "the server does not allow this method on the requested resource"
            )
        namespace, name = parts[4], (parts[6] if len(parts) == 7 else None)
        verb = "list" if name is None else "get"
        if (verb, RESOURCE) in denied:
            quoted = f' "{name}"' if name else ""
            message = (
                f'{RESOURCE}.{GROUP}{quoted} is forbidden: User "{user}" cannot {verb} resource '
                f'"{RESOURCE}" in API group "{GROUP}" in the namespace "{namespace}"'
            )
            return 403, status_object(403, message, name=name or "", group=GROUP, kind=RESOURCE)
        if name is not None:
            hpa = self.hpas.get((namespace, name))
            if hpa is None:
                message = f'{RESOURCE}.{GROUP} "{name}" not found'
                return 404, status_object(404, message, name=name, group=GROUP, kind=RESOURCE)
            return 200, hpa_json(hpa)
        items = [hpa_json(h) for (ns, _), h in sorted(self.hpas.items()) if ns == namespace]
        return 200, {
            "kind": "HorizontalPodAutoscalerList",
            "apiVersion": f"{GROUP}/v2",
            "metadata": {"resourceVersion": "5200"},
            "items": items,
        }
