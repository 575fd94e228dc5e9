"""An HTTP double of the Kubernetes apps/v1 endpoints the backend uses, on 127.0.0.1.

Follows the Kubernetes API reference (kubernetes.io/docs/reference/kubernetes-api):
"Deployment" and "StatefulSet" (apps/v1; read, patch, and the scale subresource
read/patch), "Scale" (autoscaling/v1: metadata, spec.replicas, status.replicas
and status.selector) and "Status" (the body of every error: kind Status,
apiVersion v1, status Failure, message, reason, details, code). Like the API
server it omits zero-valued `omitempty` fields (ScaleSpec.replicas, and the
Deployment status counters), accepts JSON merge, strategic merge and JSON
patches (anything else is 415), treats a resourceVersion in a patch as a
precondition (409 Conflict, "the object has been modified"), answers 401 for a
missing or unknown bearer token (the scheme is case-insensitive) and 403 with
the RBAC wording ("User ... cannot patch resource "deployments/scale" in API
group "apps" in the namespace ...") for verbs it is told to deny. A mutating
admission webhook can be set to change the replicas of a scale write (the API
server keeps, and answers with, what admission made of it), and a validating one to
refuse it (403 with the webhook's reason, as the API server relays a denial).

Every request is recorded for assertions; faults can be queued: an error
status for the next N requests (optionally of one method; a 429 as the API server's
rate limits send it, plain text with Retry-After, 1 s unless told; a 503 or 504 with a
Retry-After where told, as the API server's own Status answers carry one), a stall longer
than the client's timeout, a dropped connection, an action run just before
a request is served (someone else scaling by hand), an answer's body sent a
byte at a time, or (beyond the reference: a proxy or broken server in front)
a raw body such as an HTML page; a fault can be limited to paths ending with
a given text. With tls=True it serves
HTTPS with a throwaway CA, for the in-cluster path, which is https-only.
Object shapes live in kubernetes_objects.py; coordination.k8s.io/v1 Leases (the
leader lock) in kubernetes_leases.py; autoscaling/v2 HorizontalPodAutoscalers (another
autoscaler on a workload) in kubernetes_hpas.py; core/v1 Pods (listed by label selector, to
see why replicas stay pending) in kubernetes_pods.py.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble
from tests.doubles.http_base import IncomingRequest as RecordedRequest
from tests.doubles.kubernetes_hpas import KubernetesHpas
from tests.doubles.kubernetes_leases import KubernetesLeases
from tests.doubles.kubernetes_objects import (
    KINDS,
    FakeWorkload,
    admission_denial,
    conflict_status,
    kubeconfig_document,
    scale_json,
    self_signed_server_context,
    status_object,
    workload_json,
)
from tests.doubles.kubernetes_pods import KubernetesPods

DOUBLE_TOKEN = "kube-double-7f3a9c1e-bearer-secret-42"
DOUBLE_USER = "system:serviceaccount:ml:gpu-autoscaler"
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
)


@dataclass
class Fault:
    kind: str  # "status" | "delay" | "drop" | "before" | "answer" | "drip"
    status: int = 503
    seconds: float = 0.0
    method: str | None = None
    action: Callable[[], None] | None = None
    body: bytes = b""  # "answer": sent as is, with `content_type`
    content_type: str = "application/json"
    path: str | None = None  # only requests whose path ends with this meet the fault
    retry_after: str | None = None  # "status": the Retry-After header sent (a 429: "1")


class KubernetesApiDouble(LoopbackDouble[RecordedRequest]):
    def __init__(self, tokens: dict[str, str] | None = None, *, tls: bool = False) -> None:
        super().__init__(_Handler)
        self.tokens = {DOUBLE_TOKEN: DOUBLE_USER} if tokens is None else tokens
        self.workloads: dict[tuple[str, str, str], FakeWorkload] = {}
        self.denied: set[tuple[str, str]] = set()  # e.g. ("patch", "deployments/scale")
        self.leases = KubernetesLeases()
        self.hpas = KubernetesHpas()
        self.pods = KubernetesPods()
        self.faults: list[Fault] = []
        self.next_version = 2000
        self.admit_replicas: Callable[[int], int] | None = None
        """A mutating admission webhook on scale writes: the replicas it lets through."""
        self.deny_admission: tuple[str, str] | None = None
        """A validating admission webhook refusing scale writes: (its name, its reason)."""
        self.tls_dir: Path | None = None
        self.ssl_context: ssl.SSLContext | None = None
        if tls:
            self.tls_dir = Path(tempfile.mkdtemp(prefix="kube-double-tls-"))
            self.ssl_context = self_signed_server_context(self.tls_dir)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ca_file(self) -> Path:
        assert self.tls_dir is not None, "only a tls=True double has a CA"
        return self.tls_dir / "ca.crt"

    # ---- arranging ---------------------------------------------------------------

    def add_deployment(
        self, name: str, replicas: int, ready: int = 0, namespace: str = "default", **kw: Any
    ) -> FakeWorkload:
        return self._add("deployments", name, replicas, ready, namespace, **kw)

    def add_statefulset(
        self, name: str, replicas: int, ready: int = 0, namespace: str = "default", **kw: Any
    ) -> FakeWorkload:
        return self._add("statefulsets", name, replicas, ready, namespace, **kw)

    def _add(
        self, resource: str, name: str, replicas: int, ready: int, namespace: str, **kw: Any
    ) -> FakeWorkload:
        workload = FakeWorkload(resource, namespace, name, replicas, ready_replicas=ready, **kw)
        self.workloads[(resource, namespace, name)] = workload
        return workload

    def deny(self, verb: str, resource: str) -> None:
        """RBAC: the double's users may not `verb` on `resource` (e.g. "deployments/scale")."""
        self.denied.add((verb, resource))

    def fail_next(
        self,
        count: int,
        status: int = 503,
        method: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """The next `count` requests (of `method`) answer `status`, with Retry-After
        `retry_after` where given (a 429 always carries one: "1" unless given)."""
        self.faults.extend(
            Fault("status", status=status, method=method, retry_after=retry_after)
            for _ in range(count)
        )

    def conflict_next(self, count: int, method: str = "PATCH") -> None:
        """The next `count` requests of `method` answer 409, as after a concurrent write."""
        self.fail_next(count, status=409, method=method)

    def delay_next(self, count: int, seconds: float, method: str | None = None) -> None:
        self.faults.extend(Fault("delay", seconds=seconds, method=method) for _ in range(count))

    def drop_next(self, count: int, method: str | None = None) -> None:
        self.faults.extend(Fault("drop", method=method) for _ in range(count))

    def answer_next(
        self,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next request (of `method`, to a path ending with `path`) gets `body` as is,
        before any authentication: what a proxy or a broken server in front of the API
        server might send (an HTML login page, `{}`), never what the API reference allows."""
        self.faults.append(
            Fault(
                "answer",
                status=status,
                method=method,
                body=body,
                content_type=content_type,
                path=path,
            )
        )

    def drip_next(
        self, seconds_per_byte: float, method: str | None = None, path: str | None = None
    ) -> None:
        """The next request (of `method`, to a path ending with `path`) is served as usual,
        but its answer's body goes out one byte every `seconds_per_byte`: each read is in
        time, the whole answer is not."""
        self.faults.append(Fault("drip", seconds=seconds_per_byte, method=method, path=path))

    def before_next(self, method: str, action: Callable[[], None]) -> None:
        """Run `action` (e.g. someone else scaling) just before the next `method` is served."""
        self.faults.append(Fault("before", method=method, action=action))

    def scale_by_hand(self, workload: FakeWorkload, replicas: int) -> None:
        """What `kubectl scale` does: a new count and a new resourceVersion."""
        with self.lock:
            workload.replicas = replicas
            self._bump(workload, generation=True)

    # ---- asserting ---------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # ---- answering (called from handler threads) ---------------------------------

    def next_fault(self, method: str, path: str = "") -> Fault | None:
        with self.lock:
            for position, fault in enumerate(self.faults):
                if fault.method in (None, method) and path.endswith(fault.path or ""):
                    return self.faults.pop(position)
            return None

    def user_of(self, headers: dict[str, str]) -> str | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.tokens.get(token.strip())

    def route(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any,
        user: str,
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "v1"]:
            with self.lock:
                return self.pods.route(method, parts, query or {}, user, self.denied)
        if parts[:3] == ["apis", "coordination.k8s.io", "v1"]:
            with self.lock:
                return self.leases.route(method, parts, body, user, self.denied)
        if parts[:3] == ["apis", "autoscaling", "v2"]:
            with self.lock:
                return self.hpas.route(method, parts, user, self.denied)
        prefix_ok = parts[:4] == ["apis", "apps", "v1", "namespaces"]
        if len(parts) not in (6, 7, 8) or not prefix_ok or parts[5] not in KINDS:
            return 404, status_object(404, "the server could not find the requested resource")
        return self._route_workload(method, parts, headers, body, user)

    def _route_workload(
        self, method: str, parts: list[str], headers: dict[str, str], body: Any, user: str
    ) -> tuple[int, Any]:
        _, _, _, _, namespace, resource, *rest = parts
        if not rest:
            return 405, status_object(
                405, "the server does not allow this method on the requested resource"
            )
        name, subresource = rest[0], (rest[1] if len(rest) > 1 else None)
        if subresource not in (None, "scale"):
            return 404, status_object(404, "the server could not find the requested resource")
        verb = {"GET": "get", "PATCH": "patch"}.get(method)
        if verb is None:
            return 405, status_object(
                405, "the server does not allow this method on the requested resource"
            )
        rbac_resource = resource + ("/scale" if subresource else "")
        if (verb, rbac_resource) in self.denied:
            message = (
                f'{resource}.apps "{name}" is forbidden: User "{user}" cannot {verb} resource '
                f'"{rbac_resource}" in API group "apps" in the namespace "{namespace}"'
            )
            return 403, status_object(403, message, name=name, group="apps", kind=rbac_resource)
        with self.lock:
            workload = self.workloads.get((resource, namespace, name))
            if workload is None:
                return 404, status_object(
                    404,
                    f'{resource}.apps "{name}" not found',
                    name=name,
                    group="apps",
                    kind=resource,
                )
            if method == "PATCH":
                refused = self._patch(workload, subresource, headers, body)
                if refused is not None:
                    return refused
            return 200, (scale_json(workload) if subresource else workload_json(workload))

    def _patch(
        self, workload: FakeWorkload, subresource: str | None, headers: dict[str, str], body: Any
    ) -> tuple[int, Any] | None:
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in PATCH_TYPES:
            message = (
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(PATCH_TYPES)
            )
            return 415, status_object(415, message)
        if content_type == "application/json-patch+json":
            body = _json_patch_as_merge(body)
        if not isinstance(body, dict):
            return 400, status_object(400, "error decoding patch: expected a JSON object")
        kind = "Scale.autoscaling" if subresource else f"{KINDS[workload.resource]}.apps"
        precondition = (body.get("metadata") or {}).get("resourceVersion")
        if precondition is not None and str(precondition) != str(workload.resource_version):
            return 409, conflict_status(workload.resource, workload.name)
        replicas = (body.get("spec") or {}).get("replicas", workload.replicas)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            message = (
                f'{kind} "{workload.name}" is invalid: spec.replicas: Invalid value: '
                f"{replicas!r}: must be greater than or equal to 0"
            )
            return 422, status_object(422, message, name=workload.name, kind=kind)
        if subresource and self.admit_replicas is not None:
            replicas = self.admit_replicas(replicas)  # admission runs before the object is kept
        if subresource and self.deny_admission is not None:
            return 403, admission_denial(*self.deny_admission)
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        if subresource is None:
            for key, value in annotations.items():
                if value is None:
                    workload.annotations.pop(key, None)
                else:
                    workload.annotations[key] = str(value)
        changed_spec = replicas != workload.replicas
        workload.replicas = replicas
        self._bump(workload, generation=changed_spec)
        return None

    def _bump(self, workload: FakeWorkload, *, generation: bool) -> None:
        self.next_version += 1
        workload.resource_version = self.next_version
        if generation:
            workload.generation += 1

    def write_kubeconfig(
        self,
        path: Path,
        *,
        contexts: dict[str, dict[str, str]] | None = None,
        current: str | None = "double",
        with_ca: bool = True,
        skip_tls_verify: bool = False,
    ) -> Path:
        """A kubeconfig pointing here, for the real client to load the normal way;
        `skip_tls_verify` sets the cluster's insecure-skip-tls-verify."""
        contexts = contexts or {"double": {"token": DOUBLE_TOKEN}}
        ca_file = self.ca_file if self.ssl_context is not None and with_ca else None
        document = kubeconfig_document(self.url, contexts, current, ca_file)
        if skip_tls_verify:
            for cluster in document["clusters"]:
                cluster["cluster"]["insecure-skip-tls-verify"] = True
        path.write_text(yaml.safe_dump(document))
        return path


def _json_patch_as_merge(operations: Any) -> Any:
    """The one JSON patch shape clients send to a scale: replace /spec/replicas."""
    if not isinstance(operations, list):
        return None
    merged: dict[str, Any] = {}
    for operation in operations:
        if (
            isinstance(operation, dict)
            and operation.get("op") in ("replace", "add")
            and operation.get("path") == "/spec/replicas"
        ):
            merged["spec"] = {"replicas": operation.get("value")}
    return merged


class _Handler(JsonApiHandler):
    def setup(self) -> None:
        double: KubernetesApiDouble = self.server.double
        self.handshake_failed = False
        if double.ssl_context is not None:  # handshake here, in the request's own thread
            try:
                self.request = double.ssl_context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                self.handshake_failed = True  # e.g. the client did not trust the certificate
        super().setup()

    def handle(self) -> None:
        if self.handshake_failed:
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            self.close_connection = True

    def serve(self, request: IncomingRequest) -> None:
        double: KubernetesApiDouble = self.server.double
        method, path, headers, body = request.method, request.path, request.headers, request.body
        double.record(RecordedRequest(method, path, request.query, headers, body))

        fault = double.next_fault(method, path)
        if fault is not None and fault.kind == "answer":
            self.send_bytes(fault.status, fault.body, fault.content_type)
            return
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "delay" and self.server.stopping.wait(fault.seconds):
            return
        if fault is not None and fault.kind == "before" and fault.action is not None:
            fault.action()

        user = double.user_of(headers)
        if user is None:
            self._reply(401, status_object(401, "Unauthorized"))
            return
        if fault is not None and fault.kind == "status" and fault.status == 429:
            # The API server's rate limits (max-in-flight and API Priority and Fairness,
            # k8s.io/apiserver pkg/server/filters) answer before any handler, with Go's
            # http.Error: plain text, not a Status, and a Retry-After header.
            self.send_bytes(
                429,
                b"Too many requests, please try again later.\n",
                "text/plain; charset=utf-8",
                {"Retry-After": fault.retry_after or "1", "X-Content-Type-Options": "nosniff"},
            )
            return
        if fault is not None and fault.kind == "status":
            wait = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            self._reply(fault.status, self._fault_body(fault.status, path), wait)
            return
        status, payload = double.route(method, path, headers, body, user, request.query)
        if fault is not None and fault.kind == "drip":
            self._drip(status, json.dumps(payload).encode(), fault.seconds)
            return
        self._reply(status, payload)

    def _drip(self, status: int, data: bytes, seconds_per_byte: float) -> None:
        """Status and headers at once, then the body a byte at a time (tests.doubles.drip)."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for byte in data:
                if self.server.stopping.wait(seconds_per_byte):
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass
        self.close_connection = True

    @staticmethod
    def _fault_body(status: int, path: str) -> dict[str, Any]:
        if status == 409:
            parts = path.strip("/").split("/")
            resource, name = (parts[5], parts[6]) if len(parts) > 6 else ("deployments", "")
            return conflict_status(resource, name)
        if status == 504:
            return status_object(
                504,
                "Timeout: request did not complete within requested timeout - "
                "context deadline exceeded",
            )
        if status == 503:
            return status_object(503, "the server is currently unable to handle the request")
        return status_object(status, "Internal error occurred: injected fault")

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_payload(status, payload, {"Audit-Id": str(uuid.uuid4()), **(headers or {})})


@pytest.fixture
def kubernetes_api() -> Iterator[KubernetesApiDouble]:
    """A started plain-HTTP Kubernetes API double (token DOUBLE_TOKEN); stopped after."""
    with KubernetesApiDouble() as double:
        yield double
