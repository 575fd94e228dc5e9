"""Prometheus's answer read and checked before prometheus-api-client sees it.

Its own room because it is the part of the range-query call that reads what came back
rather than how it was asked: the body capped as it arrives, the JSON envelope's
`status`, `resultType`, partial-data warnings and `isPartial`, a refusal's own `error`
text, and what a login page or proxy sent instead. PrometheusSource (in
autoscaler.metrics_prometheus) hangs capped_body and require_success on its session and
words the exceptions they raise; what an answer's series must look like to count as
demand lives in autoscaler.metrics.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from autoscaler.metrics import shorten_query
from common.http_body import response_body_in_time
from common.secrets import shorten

MAX_ANSWER_BYTES = 64 * 2**20
"""The largest answer body read (after decompression): one series of 10,000 points is
about 0.4 MB. A body past it (thousands of series, a server gone wrong, a gzip bomb) is
refused as it arrives, never held whole: a 57 MB answer had been parsed in 9.5 s, and
one a hundred times that would have taken the daemon's memory."""


class Refused(Exception):
    """A non-200 answer, with Prometheus's own `error` text read from its JSON (None where
    it has none). prometheus-api-client quotes the body's repr instead, whose escapes cut
    a reading of it at the first quote ('unexpected \\' for 'unexpected "}"')."""

    def __init__(self, status: int, error: str | None, where: str = "") -> None:
        super().__init__(status, error)
        self.status, self.error, self.where = status, error, where


class UnsuccessfulAnswer(Exception):
    """A 200 answer that is not JSON, whose `status` is not "success", or that warns."""


def capped_body(response: requests.Response, *args: object, **kwargs: object) -> None:
    """Session hook, run before requests reads the body (it reads it after the hooks): the
    body read here instead, up to MAX_ANSWER_BYTES and within the call's deadline."""
    body = bytearray()
    for chunk in response_body_in_time(response):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            response.close()
            raise UnsuccessfulAnswer(
                f"the answer is over {MAX_ANSWER_BYTES / 2**20:g} MiB, more than a range "
                "query of one series gives; not read further"
            )
    response._content = bytes(body)


def require_success(response: requests.Response, *args: object, **kwargs: object) -> None:
    """Session hook: prometheus-api-client reads data.result without checking `status`, or
    `warnings`, which say the data is what could be collected (a Thanos store or a remote
    read that failed), or `isPartial`, which a VictoriaMetrics cluster's vmselect sets
    instead when a vmstorage node did not answer (its default): a sum over part of the
    series would read as less load."""
    if response.status_code != 200:
        if not response.is_redirect:  # a redirect is followed, then this hook sees its end
            raise Refused(response.status_code, _error_text(response), _redirected(response))
        return
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: nested past what json decodes
        raise UnsuccessfulAnswer(f"response is not JSON{_not_the_api(response)}") from None
    status = body.get("status") if isinstance(body, dict) else None
    if status != "success":
        error = body.get("error") if isinstance(body, dict) else None
        detail = f": {shorten(str(error), 200)}" if error else ""
        raise UnsuccessfulAnswer(f"response status is {status!r}, not 'success'{detail}")
    data = body.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind != "matrix":
        shown = "an answer with no resultType"
        if kind:
            shown = f"a {shorten_query(str(kind), 20)} result"
        raise UnsuccessfulAnswer(
            f"{shown} is not a matrix, which a range query gives; the answer cannot be demand"
        )
    if body.get("isPartial") is True:
        raise UnsuccessfulAnswer(
            "VictoriaMetrics marks the answer partial (isPartial: a vmstorage node did not "
            "answer); part of the data is not the whole"
        )
    warnings = body.get("warnings")
    partial = (
        [w for w in warnings if not _about_the_query(w)] if isinstance(warnings, list) else warnings
    )
    if partial:
        first = partial[0] if isinstance(partial, list) else partial
        raise UnsuccessfulAnswer(
            f"Prometheus warns the answer may be partial ({shorten(str(first), 200)}); "
            "part of the data is not the whole"
        )


def _redirected(response: requests.Response) -> str:
    """Where a redirect led (a login page), told by the path: a hook sees each hop before
    requests sets `history`. No query string (a login's state): not metrics.url's answer."""
    if urlsplit(response.url).path.endswith("/api/v1/query_range"):
        return ""
    return f" after a redirect to {shorten(redact_url(response.url), 120)}"


def _not_the_api(response: requests.Response) -> str:
    """What came instead of a JSON answer (an HTML login or proxy page), if it says."""
    kind, where = response.headers.get("Content-Type", ""), _redirected(response)
    if "json" in kind and not where:
        return ""  # Prometheus's own answer, cut short
    came = shorten(kind.split(";")[0].strip() or "no content type", 40)
    return f" but {came}{where}: not Prometheus's API (a login page, a proxy's?); check metrics.url"


def _error_text(response: requests.Response) -> str | None:
    """The `error` of Prometheus's error envelope, or a plain-text body whole (Mimir's and
    Cortex's 401 'no org id' for a missing X-Scope-OrgID, a 429 'too many outstanding
    requests'); None for anything else (a proxy's HTML page)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        plain = response.headers.get("Content-Type", "").startswith("text/plain")
        return response.text if plain else None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _about_the_query(warning: object) -> bool:
    """Prometheus 2.50+ annotates a query's own oddities ("PromQL warning: encountered a
    mix of histograms and floats"): the data is whole, so it reads as any answer would;
    holding on it would hold the pool until someone rewrote the query."""
    return isinstance(warning, str) and warning.startswith("PromQL ")


def redact_url(url: str) -> str:
    """The URL without user:password, query string or fragment, safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
