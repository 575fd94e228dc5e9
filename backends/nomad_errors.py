"""Which Nomad API failures are worth another try, and what the server said.

Pure readings of python-nomad's errors (which carry the whole response, or the requests
error behind them), shared by the job and node backends and the variable lock.
"""

from __future__ import annotations

import requests
from nomad.api.exceptions import BaseNomadException

from backends.retry import is_transient_status
from common.retry_after import retry_after_header


def response_of(error: BaseException) -> requests.Response | None:
    if isinstance(error, BaseNomadException) and isinstance(error.nomad_resp, requests.Response):
        return error.nomad_resp
    return None


def transport_error_of(error: BaseException) -> BaseException | None:
    """The requests-level error behind a python-nomad exception, if it was one."""
    if isinstance(error, BaseNomadException) and isinstance(
        error.nomad_resp, requests.RequestException
    ):
        return error.nomad_resp
    if isinstance(error, requests.RequestException):
        return error
    return None


def is_retryable_nomad_error(error: BaseException) -> bool:
    """429s, 5xx answers and lost connections or timeouts are worth another try; no other
    4xx (Kubernetes and AWS already rode over a rate limit; Nomad failed the tick)."""
    response = response_of(error)
    if response is not None:
        return is_transient_status(response.status_code)
    transport = transport_error_of(error)
    if isinstance(transport, requests.exceptions.SSLError):
        return False  # a certificate problem does not heal in a second
    return isinstance(transport, requests.ConnectionError | requests.Timeout)


def nomad_retry_after(error: BaseException) -> str | None:
    """The Retry-After of an error answer: Nomad itself sends none, but a proxy or load
    balancer in front of it answering 429 or 503 may."""
    response = response_of(error)
    return None if response is None else retry_after_header(response.headers)
