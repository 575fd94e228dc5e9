"""Object shapes of the Kubernetes API double (see kubernetes_api.py), from the
Kubernetes API reference: metav1.Status for errors, autoscaling/v1 Scale, apps/v1
Deployment and StatefulSet (spec, status; zero `omitempty` fields left out as
the API server leaves them out), and the kubeconfig and TLS files a client needs.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet"}
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class FakeWorkload:
    resource: str  # "deployments" | "statefulsets"
    namespace: str
    name: str
    replicas: int
    ready_replicas: int = 0
    status_replicas: int | None = None  # pods that exist; defaults to replicas
    generation: int = 1
    resource_version: int = 1000
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    annotations: dict[str, str] = field(default_factory=dict)
    conditions: list[dict[str, Any]] | None = None
    """A Deployment's status.conditions; None: Available and Progressing, both True."""
    progress_deadline_s: int = 600  # a Deployment's spec.progressDeadlineSeconds (defaulted)
    deleting: bool = False
    """Deleted with foreground propagation (`kubectl delete --cascade=foreground`, a
    GitOps prune): kept, with a deletionTimestamp, until its pods are gone."""

    @property
    def observed_replicas(self) -> int:
        return self.replicas if self.status_replicas is None else self.status_replicas


def status_object(code: int, message: str, **details: Any) -> dict[str, Any]:
    """A metav1.Status as the API server sends it with every error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def conflict_status(resource: str, name: str) -> dict[str, Any]:
    """The 409 an optimistic-concurrency failure gets (a stale resourceVersion)."""
    message = (
        f'Operation cannot be fulfilled on {resource}.apps "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return status_object(409, message, name=name, group="apps", kind=resource)


def admission_denial(webhook: str, reason: str) -> dict[str, Any]:
    """A validating admission webhook's refusal as the API server relays it
    (k8s.io/apiserver admission/plugin/webhook/errors ToStatusErr): the webhook's own
    code and reason (403 Forbidden, as controller-runtime's Denied sends), its message
    after 'admission webhook "NAME" denied the request: ', and no details."""
    return status_object(403, f'admission webhook "{webhook}" denied the request: {reason}')


def _without_zeros(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v not in (0, None)}


def metadata_json(workload: FakeWorkload, *, scale: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": workload.name,
        "namespace": workload.namespace,
        "uid": workload.uid,
        "resourceVersion": str(workload.resource_version),
        "creationTimestamp": "2025-03-01T09:00:00Z",
    }
    if not scale:  # a Scale's metadata has none of these (scaleFromDeployment)
        metadata["generation"] = workload.generation
        if workload.deleting:
            metadata["deletionTimestamp"] = "2025-03-02T10:00:00Z"
            metadata["deletionGracePeriodSeconds"] = 0
            metadata["finalizers"] = ["foregroundDeletion"]
        metadata["labels"] = {"app": workload.name}
        if workload.annotations:
            metadata["annotations"] = dict(workload.annotations)
    return metadata


def scale_json(workload: FakeWorkload) -> dict[str, Any]:
    """autoscaling/v1 Scale; spec.replicas is omitempty, status.replicas is not."""
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata_json(workload, scale=True),
        "spec": _without_zeros({"replicas": workload.replicas}),
        "status": {"replicas": workload.observed_replicas, "selector": f"app={workload.name}"},
    }


def workload_json(workload: FakeWorkload) -> dict[str, Any]:
    kind = KINDS[workload.resource]
    template = {
        "metadata": {"labels": {"app": workload.name}},
        "spec": {"containers": [{"name": "worker", "image": "registry.example/gpu-worker:1.4"}]},
    }
    spec: dict[str, Any] = {
        "replicas": workload.replicas,
        "selector": {"matchLabels": {"app": workload.name}},
        "template": template,
    }
    ready = min(workload.ready_replicas, workload.observed_replicas)
    if workload.resource == "deployments":
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
        }
        spec["progressDeadlineSeconds"] = workload.progress_deadline_s
        spec["revisionHistoryLimit"] = 10
        status = _without_zeros(
            {
                "observedGeneration": workload.generation,
                "replicas": workload.observed_replicas,
                "updatedReplicas": workload.observed_replicas,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "unavailableReplicas": workload.observed_replicas - ready,
            }
        )
        status["conditions"] = deployment_conditions(workload, ready)
    else:
        spec["serviceName"] = workload.name
        spec["podManagementPolicy"] = "OrderedReady"
        status = {
            "observedGeneration": workload.generation,
            "replicas": workload.observed_replicas,  # required in StatefulSetStatus
            "availableReplicas": ready,
            "currentReplicas": workload.observed_replicas,
            "updatedReplicas": workload.observed_replicas,
            "currentRevision": f"{workload.name}-7d9f8b6c5d",
            "updateRevision": f"{workload.name}-7d9f8b6c5d",
        }
        if ready:
            status["readyReplicas"] = ready
    return {
        "kind": kind,
        "apiVersion": "apps/v1",
        "metadata": metadata_json(workload),
        "spec": spec,
        "status": status,
    }


def deployment_condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    """A DeploymentCondition as the deployment controller writes it."""
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": "2025-03-01T09:05:00Z",
        "lastTransitionTime": "2025-03-01T09:05:00Z",
        "reason": reason,
        "message": message,
    }


def progress_deadline_exceeded(workload: FakeWorkload) -> dict[str, Any]:
    """Progressing False: the controller's verdict on a rollout stuck past its deadline."""
    return deployment_condition(
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
        f'ReplicaSet "{workload.name}-7d9f8b6c5d" has timed out progressing.',
    )


def deployment_conditions(workload: FakeWorkload, ready: int) -> list[dict[str, Any]]:
    """The Deployment's conditions: those set, else Available (minimum availability) and
    Progressing (NewReplicaSetAvailable), as on a Deployment that rolled out."""
    if workload.conditions is not None:
        return workload.conditions
    # maxUnavailable 25 %, rounded down: the minimum availability the controller requires
    available = "True" if ready >= workload.replicas - workload.replicas // 4 else "False"
    return [
        deployment_condition(
            "Available",
            available,
            "MinimumReplicasAvailable" if available == "True" else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available == "True"
            else "Deployment does not have minimum availability.",
        ),
        deployment_condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{workload.name}-7d9f8b6c5d" has successfully progressed.',
        ),
    ]


def kubeconfig_document(
    server: str,
    contexts: dict[str, dict[str, str]],
    current: str | None,
    ca_file: Path | None = None,
) -> dict[str, Any]:
    """A kubeconfig (clusters, users, contexts) for one cluster at `server`; `contexts`
    maps a context name to {"token": ..., "namespace": ...} (namespace optional)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "double-cluster", "cluster": cluster}],
        "users": [
            {"name": f"{name}-user", "user": {"token": c["token"]}} for name, c in contexts.items()
        ],
        "contexts": [
            {
                "name": name,
                "context": {
                    "cluster": "double-cluster",
                    "user": f"{name}-user",
                    **({"namespace": c["namespace"]} if c.get("namespace") else {}),
                },
            }
            for name, c in contexts.items()
        ],
    }
    if current is not None:
        document["current-context"] = current
    return document


def self_signed_server_context(directory: Path) -> ssl.SSLContext:
    """A throwaway self-signed certificate for 127.0.0.1 that is its own CA (EC: fast to make)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-double")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "ca.crt", directory / "server.key")
    return context
