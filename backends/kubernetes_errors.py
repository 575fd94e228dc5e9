"""Which Kubernetes API failures are worth another try, and what the server said.

Pure readings of the client's errors, shared by the workload backend, its HPA check
and the leader Lease: kept apart from backends.kubernetes so each reads them once.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import urllib3.exceptions

from backends.retry import is_transient_status
from common.retry_after import retry_after_header
from common.secrets import shorten

if TYPE_CHECKING:  # the [kubernetes] extra: imported when a workload is used, not on load
    from kubernetes.client.exceptions import ApiException

_BODY_LIMIT = 300


def is_retryable_kubernetes_error(error: BaseException) -> bool:
    """5xx, 429, 409 (re-read, re-apply), timeouts and lost connections; never other 4xx."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        status = error.status or 0
        return status == 409 or is_transient_status(status)
    if isinstance(error, urllib3.exceptions.SSLError):
        return False
    return isinstance(
        error,
        urllib3.exceptions.TimeoutError  # includes NewConnectionError (refused, DNS)
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.MaxRetryError
        | ConnectionError
        | TimeoutError,
    )


def status_message(error: ApiException) -> str:
    """The `message` of the Status object the API server sent, else a short body."""
    body = error.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return str(error.reason or "")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    # Redacted before the cut: a token cut in two no longer matches.
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return shorten(parsed["message"], _BODY_LIMIT)
    return shorten(" ".join(str(body).split()), _BODY_LIMIT)


def is_authorization_refusal(message: str) -> bool:
    """A 403 from the authorizer (RBAC), whose Status message says 'User "..." cannot
    VERB resource ...' (k8s.io/apiserver endpoints/handlers/responsewriters), rather than
    from admission (a webhook's denial, a namespace being deleted), which roles do not fix."""
    return re.search(r'\bUser "[^"]*" cannot \S+ ', message) is not None


def kubernetes_retry_after(error: BaseException) -> str | None:
    """The Retry-After of an API server's answer: its rate limits (max-in-flight, API
    Priority and Fairness) send one with a 429, and with a 503 or 504 it asks the same."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        return retry_after_header(error.headers)
    return None
