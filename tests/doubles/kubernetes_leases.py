"""coordination.k8s.io/v1 Leases for the Kubernetes API double (tests.doubles.kubernetes_api).

Follows the Kubernetes API reference "Lease v1 coordination.k8s.io": read (GET
/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}), create (POST
.../leases) and replace (PUT .../leases/{name}); LeaseSpec fields holderIdentity,
leaseDurationSeconds, acquireTime, renewTime (MicroTime) and leaseTransitions,
each omitted when unset. As the API server does: a create of an existing name is
409 AlreadyExists; a replace whose metadata.resourceVersion is not the stored one
is 409 Conflict ("the object has been modified"), one without a resourceVersion
is an unconditional update (Leases allow it); a missing lease is 404 NotFound;
every write bumps the resourceVersion; a create in a namespace being deleted is 403
with a NamespaceTerminating cause (the NamespaceLifecycle admission plugin). RBAC
denials come from the double's `denied` set with the verbs get, create and update on
resource "leases".

acquireTime and renewTime are MicroTime (k8s.io/apimachinery pkg/apis/meta/v1
micro_time.go): the API server parses them with the layout RFC3339Micro,
"2006-01-02T15:04:05.000000Z07:00", exactly six fractional digits and a Z or an offset,
and answers any other text 400 BadRequest ("... cannot be handled as a Lease: parsing
time ..."); it writes them back in UTC, six digits, "Z".
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.doubles.kubernetes_objects import status_object

MICRO_TIME_FIELDS = ("acquireTime", "renewTime")
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"
_MICRO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})(Z|[+-]\d\d:\d\d)")

GROUP = "coordination.k8s.io"
SPEC_FIELDS = (
    "holderIdentity",
    "leaseDurationSeconds",
    "acquireTime",
    "renewTime",
    "leaseTransitions",
)


@dataclass
class FakeLease:
    namespace: str
    name: str
    spec: dict[str, Any]
    resource_version: int
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


class KubernetesLeases:
    """The Lease store; the caller holds the double's lock."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], FakeLease] = {}
        self.next_version = 7000
        self.writes: list[tuple[str, str, dict[str, Any]]] = []  # (verb, name, spec)
        self.terminating: set[str] = set()  # namespaces being deleted: no create there

    def route(
        self, method: str, parts: list[str], body: Any, user: str, denied: set[tuple[str, str]]
    ) -> tuple[int, Any]:
        # apis / coordination.k8s.io / v1 / namespaces / {ns} / leases [/ {name}]
        if len(parts) not in (6, 7) or parts[3] != "namespaces" or parts[5] != "leases":
            return 404, status_object(404, "the server could not find the requested resource")
        namespace, name = parts[4], (parts[6] if len(parts) == 7 else None)
        verb = {"GET": "get", "POST": "create", "PUT": "update"}.get(method)
        if verb is None or (verb == "create") != (name is None):
            return 405, status_object(
                405, "the server does not allow this method on the requested resource"
            )
        if (verb, "leases") in denied:
            message = (
                f'leases.{GROUP} "{name or ""}" is forbidden: User "{user}" cannot {verb} '
                f'resource "leases" in API group "{GROUP}" in the namespace "{namespace}"'
            )
            return 403, status_object(403, message, name=name or "", group=GROUP, kind="leases")
        if not isinstance(body, dict) and verb != "get":
            return 400, status_object(400, "the body of the request could not be decoded")
        if verb != "get":
            refused = _unparsable_time(body)
            if refused is not None:
                return 400, status_object(400, refused)
        if verb == "create":
            return self.create(namespace, body)
        assert name is not None
        lease = self.leases.get((namespace, name))
        if lease is None:
            return 404, status_object(
                404, f'leases.{GROUP} "{name}" not found', name=name, group=GROUP, kind="leases"
            )
        if verb == "get":
            return 200, lease_json(lease)
        return self.replace(lease, body)

    def create(self, namespace: str, body: dict[str, Any]) -> tuple[int, Any]:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            return 422, status_object(422, "Lease.coordination.k8s.io is invalid: metadata.name")
        if namespace in self.terminating:
            return 403, namespace_terminating(namespace, name)
        if (namespace, name) in self.leases:
            status = status_object(
                409,
                f'leases.{GROUP} "{name}" already exists',
                name=name,
                group=GROUP,
                kind="leases",
            )
            status["reason"] = "AlreadyExists"
            return 409, status
        lease = FakeLease(namespace, name, _spec_of(body), self._version())
        self.leases[(namespace, name)] = lease
        self.writes.append(("create", name, dict(lease.spec)))
        return 201, lease_json(lease)

    def replace(self, lease: FakeLease, body: dict[str, Any]) -> tuple[int, Any]:
        precondition = (body.get("metadata") or {}).get("resourceVersion")
        if precondition and str(precondition) != str(lease.resource_version):
            message = (
                f'Operation cannot be fulfilled on leases.{GROUP} "{lease.name}": the object '
                "has been modified; please apply your changes to the latest version and try again"
            )
            return 409, status_object(409, message, name=lease.name, group=GROUP, kind="leases")
        lease.spec = _spec_of(body)
        lease.resource_version = self._version()
        self.writes.append(("update", lease.name, dict(lease.spec)))
        return 200, lease_json(lease)

    def _version(self) -> int:
        self.next_version += 1
        return self.next_version


def namespace_terminating(namespace: str, name: str) -> dict[str, Any]:
    """The NamespaceLifecycle admission plugin's refusal of a create in a namespace being
    deleted (k8s.io/apiserver admission/plugin/namespace/lifecycle): 403 Forbidden, with a
    NamespaceTerminating cause."""
    message = (
        f'leases.{GROUP} "{name}" is forbidden: unable to create new content in namespace '
        f"{namespace} because it is being terminated"
    )
    cause = {
        "reason": "NamespaceTerminating",
        "message": f"namespace {namespace} is being terminated",
        "field": "metadata.namespace",
    }
    return status_object(403, message, name=name, group=GROUP, kind="leases", causes=[cause])


def _spec_of(body: dict[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    kept = {k: spec[k] for k in SPEC_FIELDS if spec.get(k) not in (None, "")}
    for key in MICRO_TIME_FIELDS:
        if key in kept:
            kept[key] = _utc_micro(kept[key])
    return kept


def _unparsable_time(body: dict[str, Any]) -> str | None:
    """The API server's message for a MicroTime it cannot parse, else None."""
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    for key in MICRO_TIME_FIELDS:
        value = spec.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or _MICRO_TIME.fullmatch(value) is None:
            rest, expected = str(value)[19:], ".000000"  # Go names where the layout broke
            if len(str(value)) < 19:
                rest, expected = str(value), RFC3339_MICRO
            return (
                f'Lease in version "v1" cannot be handled as a Lease: parsing time '
                f'"{value}" as "{RFC3339_MICRO}": cannot parse "{rest}" as "{expected}"'
            )
    return None


def _utc_micro(value: str) -> str:
    """A parsed MicroTime as the API server writes it back: UTC, six digits, "Z"."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_json(lease: FakeLease) -> dict[str, Any]:
    return {
        "kind": "Lease",
        "apiVersion": f"{GROUP}/v1",
        "metadata": {
            "name": lease.name,
            "namespace": lease.namespace,
            "uid": lease.uid,
            "resourceVersion": str(lease.resource_version),
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": dict(lease.spec),
    }
