"""The workload a Kubernetes call is about, and a failure of that call worded for people.

Its own room because the workload backend, its HPA check and the readings of its answers
all name the workload the same way (Target: the kind words for messages and the RBAC
resources), and every failure they meet is said from status codes and Status messages,
with credentials removed: the client's ApiException prints headers and bodies, which may
carry the bearer token or client key. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import urllib3.exceptions

from backends.base import BackendError
from backends.kubernetes_errors import is_authorization_refusal, status_message

if TYPE_CHECKING:
    from backends.kubernetes_credentials import KubernetesConnection


@dataclass(frozen=True)
class Target:
    """The workload: kind words for messages and RBAC resources."""

    workload: str  # "deployment" | "statefulset"
    name: str
    namespace: str

    @property
    def resource(self) -> str:
        return "deployments" if self.workload == "deployment" else "statefulsets"

    def __str__(self) -> str:
        return f"{self.workload} {self.name!r} in namespace {self.namespace!r}"


def describe_kubernetes_error(
    error: BaseException,
    connection: KubernetesConnection,
    target: Target,
    *,
    writing: bool,
    timeout_s: float = 0.0,
) -> str:
    """A sentence for people about what went wrong, with credentials removed."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        status, message = error.status or 0, status_message(error)
        if status == 404:
            text = f"{target.workload} {target.name!r} not found in namespace {target.namespace!r}"
            text += f" at {connection.host} ({message})"
        elif status == 403:
            needs = (
                f"patch on {target.resource}/scale"
                if writing
                else f"get on {target.resource}/scale and {target.resource}"
            )
            text = f"Kubernetes refused {connection.identity}: {message}"
            if is_authorization_refusal(message):
                text += (
                    f" (it needs RBAC {needs} in API group apps, namespace {target.namespace!r})"
                )
        elif status == 401:
            text = (
                f"Kubernetes did not accept the credentials of {connection.identity} "
                f"(expired or wrong token?): HTTP 401 {message}"
            )
        elif status == 0:
            text = (
                f"TLS failed talking to {connection.host} "
                "(check the cluster's certificate-authority or verify_tls)"
            )
        else:
            text = f"Kubernetes answered HTTP {status}: {message}"
    elif isinstance(error, urllib3.exceptions.SSLError):
        text = f"TLS failed talking to {connection.host}"
    elif isinstance(error, urllib3.exceptions.NewConnectionError):
        text = f"connection to {connection.host} failed ({_cause_name(error)})"
    elif isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
        text = f"no answer from {connection.host} within {timeout_s:g}s"
    elif isinstance(error, urllib3.exceptions.ProtocolError | ConnectionError):
        text = f"connection to {connection.host} was lost ({_cause_name(error)})"
    elif isinstance(error, BackendError):
        text = str(error)
    elif isinstance(error, ValueError):
        text = f"{connection.host} answered with something that is not a valid {target.workload}"
    else:
        text = type(error).__name__
    return connection.redact(text)


def _cause_name(error: BaseException) -> str:
    """The type behind a urllib3 error (e.g. ConnectionRefusedError), never its text."""
    inner = error.__cause__ or next((a for a in error.args if isinstance(a, BaseException)), None)
    return type(inner or error).__name__
