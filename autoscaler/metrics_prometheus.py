"""PrometheusSource: the range-query call against Prometheus's HTTP API, and nothing else.

Its own room because it is the one adapter with a network, credentials, retries and a
deadline; what an answer must look like to count as demand (series shape, odd values,
staleness) lives in autoscaler.metrics, which the backtest and the trace replay share
without ever touching HTTP.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import requests
from prometheus_api_client import PrometheusConnect
from requests.auth import HTTPBasicAuth
from urllib3.util.retry import Retry

from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.metrics import MetricsError, as_utc, series_from_matrix, shorten_query
from autoscaler.metrics_auth import (
    CredentialError,
    CredentialSession,
    QueryCredentials,
    query_credentials,
)
from common.deadline import DeadlineExceeded, DeadlineRunner, whole_answer_s
from common.durations import format_duration
from common.http_body import response_body_in_time
from common.http_environment import read_environment_once
from common.retry_warnings import quiet_retry_warnings
from common.secrets import shorten
from common.tick_circuit import server_of, skipped, unanswered

MAX_POINTS_PER_QUERY = 10_000  # Prometheus refuses more than 11,000 points per series
_RETRY_WAITS_S = 1.0  # the quick retries' backoff (0.25 s, then 0.5 s), within the deadline
MAX_ANSWER_BYTES = 64 * 2**20
"""The largest answer body read (after decompression): one series of 10,000 points is
about 0.4 MB. A body past it (thousands of series, a server gone wrong, a gzip bomb) is
refused as it arrives, never held whole: a 57 MB answer had been parsed in 9.5 s, and
one a hundred times that would have taken the daemon's memory."""
SMALLEST_CHUNK_POINTS = 100
"""A range refused for the samples it would load is halved down to this many steps (the
refusals come at once, so at most 8 are asked from 10,000), then the refusal stands."""
_TOO_MANY_SAMPLES = re.compile(r"too many samples|maxSamplesPerQuery")
"""Prometheus's (and Thanos's, Mimir's) query.max-samples refusal, 'query processing would
load too many samples into memory', and VictoriaMetrics' -search.maxSamplesPerQuery one."""
SMALL_ANSWER_POINTS = 1_000
"""A range of fewer points (a steady tick's few new samples) is asked for uncompressed:
gzip cost Prometheus and us ~0.5 ms of a ~1.2 ms small answer over loopback, to save a
few hundred bytes. Bigger answers (a first read of the window) stay compressed."""


class PrometheusSource:
    """Range queries against Prometheus's HTTP API through prometheus-api-client."""

    def __init__(self, config: PrometheusMetrics, env: Mapping[str, str] = os.environ) -> None:
        self._config = config
        self._shown_url = redact_url(config.url)
        self._server = server_of(config.url)
        self._credential_hint = _credential_hint(config)
        self._env = env
        credentials = query_credentials(config, env)  # CredentialError: cannot start
        self._credentials = credentials
        session = CredentialSession()
        session.hooks["response"] += [_capped_body, _require_success]
        session.verify = config.verify_tls
        if config.verify_tls and config.ca_file is not None:
            session.verify = str(config.ca_file)
        session.auth = _basic_auth(credentials)
        self._session = session
        session.cert = credentials.client_cert
        read_environment_once(session, config.url)
        headers = credentials.headers
        # Retry a refused connection or a 502/503/504 once or twice, quickly; never a
        # read timeout (it already cost the full timeout) and never a Retry-After wait.
        quiet_retry_warnings()  # the query's error says how it ended
        retry = Retry(
            total=2,
            connect=1,
            read=False,
            status=2,
            backoff_factor=0.25,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        self._client, self._small_client = (
            PrometheusConnect(
                url=config.url.rstrip("/"),
                headers={**extra, **headers} or None,
                disable_ssl=not config.verify_tls,
                retry=retry,
                session=session,
                timeout=config.timeout.total_seconds(),
            )
            for extra in ({}, {"Accept-Encoding": "identity"})
        )
        self._calls = DeadlineRunner()  # each call's total deadline, on a kept thread

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        """Range query, split into chunks under Prometheus's 11,000-points-per-series limit
        (14 days at a 1-minute step is 20,160 points); a chunk refused for the samples it
        would load (query.max-samples) is asked again in halves, down to
        SMALLEST_CHUNK_POINTS: a query over many series that a day at a time passes was
        otherwise refused at every first read, its pool never given its window."""
        start, end = as_utc(start), as_utc(end)
        points = MAX_POINTS_PER_QUERY
        parts = []
        while True:
            chunk_end = min(end, start + step * (points - 1))
            try:
                parts.append(self._query_range(query, start, chunk_end, step))
            except _TooManySamples as exc:
                asked = (chunk_end - start) // step + 1
                if asked <= SMALLEST_CHUNK_POINTS:
                    raise MetricsError(
                        exc.kind, query, f"{exc.reason} (asked {asked} steps at a time)"
                    ) from None
                points = max(SMALLEST_CHUNK_POINTS, asked // 2)
                continue
            if chunk_end >= end:
                break
            start = chunk_end + step
        found = [p for p in parts if not p.empty]
        if not found:  # every chunk empty: the caller's check says "no data", not a crash
            return parts[-1]
        # Chunks do not overlap: a time given twice came so from Prometheus, and
        # check_demand decides whether the repeats agree.
        return (pd.concat(found) if len(found) > 1 else found[0]).sort_index()

    def _query_range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> pd.Series:
        why_not = skipped(self._server)  # another pool's call went unanswered this tick
        if why_not is not None:
            raise MetricsError("unreachable", query, why_not)
        try:
            return self._ask_range(query, start, end, step)
        except MetricsError as exc:
            if exc.kind in ("timeout", "unreachable"):
                unanswered(self._server)
            raise

    def _ask_range(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        total = whole_answer_s(self._config.timeout.total_seconds()) + _RETRY_WAITS_S
        small = (end - start) / step < SMALL_ANSWER_POINTS
        client = self._small_client if small else self._client
        try:
            result = self._calls.call_within(
                total,
                lambda: self._ask(
                    lambda: client.custom_query_range(
                        query, start_time=start, end_time=end, step=f"{step.total_seconds():g}"
                    )
                ),
                "Prometheus query_range",
            )
        except _UnsuccessfulAnswer as exc:
            raise MetricsError("bad_response", query, str(exc)) from None
        except DeadlineExceeded:  # a body sent a byte at a time: each read was in time
            raise MetricsError(
                "timeout", query, f"no whole answer from {self._shown_url} within {total:g}s"
            ) from None
        except requests.Timeout:
            raise MetricsError(
                "timeout",
                query,
                f"no answer from {self._shown_url} within {format_duration(self._config.timeout)}",
            ) from None
        except requests.ConnectionError as exc:
            raise MetricsError(
                "unreachable", query, f"cannot connect to {self._shown_url} ({_why(exc)})"
            ) from None
        except requests.RequestException as exc:
            raise MetricsError(
                "bad_response", query, f"HTTP request failed ({type(exc).__name__})"
            ) from None
        except _Refused as exc:
            reason = self._http_error(exc.status, exc.error, exc.where)
            error = _TooManySamples if _TOO_MANY_SAMPLES.search(reason) else MetricsError
            raise error("bad_response", query, reason) from None
        except (ValueError, KeyError, TypeError):
            # requests' JSONDecodeError is a ValueError; an error body has no data.result.
            raise MetricsError(
                "bad_response", query, "response is not a successful Prometheus JSON answer"
            ) from None
        return series_from_matrix(query, result)

    def _ask(self, call: Callable[[], Any]) -> Any:
        """The call; after a 401, once more where the credential files now hold another
        credential (rotated by an agent): read only at start, it was refused until a restart."""
        try:
            return call()
        except _Refused as exc:
            if exc.status != 401 or not self._credentials_read_again():
                raise
        return call()

    def _credentials_read_again(self) -> bool:
        """True where the files give credentials other than those in use, now used."""
        try:
            credentials = query_credentials(self._config, self._env)
        except CredentialError:  # mid-write, removed: the 401 stands
            return False
        if credentials == self._credentials:
            return False
        self._credentials = credentials
        self._session.auth = _basic_auth(credentials)
        for client in (self._client, self._small_client):
            client.headers = {**(client.headers or {}), **credentials.headers}
        return True

    def close(self) -> None:
        self._calls.close()
        self._client.close()  # the session both clients share

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _http_error(self, status: int, error: str | None, where: str = "") -> str:
        """Status and Prometheus's own `error` text."""
        reason = f"HTTP {status} from {self._shown_url}{where}"
        if error:
            reason += f": {shorten(' '.join(error.split()), 200)}"
        if status == 401 and error is not None and "no org id" in error:
            reason += " (a tenant is asked for: send it as metrics.headers X-Scope-OrgID)"
        elif status in (401, 403):
            reason += f" (check {self._credential_hint})"
        return reason


def _basic_auth(credentials: QueryCredentials) -> HTTPBasicAuth | None:
    """In UTF-8, as RFC 7617 and Prometheus's bcrypt check take it: requests sends a str in
    Latin-1 (a 401 for "ä") or not at all ("€" failed every query)."""
    if credentials.basic_auth is None:
        return None
    user, password = credentials.basic_auth
    return HTTPBasicAuth(user.encode(), password.encode())


def _credential_hint(config: PrometheusMetrics) -> str:
    """Where the credential Prometheus refused comes from (never the credential)."""
    if config.basic_auth is not None:
        auth = config.basic_auth
        source = f"${auth.password_env}" if auth.password_env else str(auth.password_file)
        return f"metrics.basic_auth: user {auth.username!r}, password from {source}"
    if config.bearer_token_file is not None:
        return f"the bearer token in metrics.bearer_token_file {config.bearer_token_file}"
    if config.bearer_token_env:
        return f"the bearer token in ${config.bearer_token_env}"
    return "metrics.bearer_token_env, bearer_token_file or basic_auth"


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


class _TooManySamples(MetricsError):
    """An HTTP refusal for the samples the range would load: a shorter range may pass."""


class _Refused(Exception):
    """A non-200 answer, with Prometheus's own `error` text read from its JSON (None where
    it has none). prometheus-api-client quotes the body's repr instead, whose escapes cut
    a reading of it at the first quote ('unexpected \\' for 'unexpected "}"')."""

    def __init__(self, status: int, error: str | None, where: str = "") -> None:
        super().__init__(status, error)
        self.status, self.error, self.where = status, error, where


class _UnsuccessfulAnswer(Exception):
    """A 200 answer that is not JSON, whose `status` is not "success", or that warns."""


def _capped_body(response: requests.Response, *args: object, **kwargs: object) -> None:
    """Session hook, run before requests reads the body (it reads it after the hooks): the
    body read here instead, up to MAX_ANSWER_BYTES and within the call's deadline."""
    body = bytearray()
    for chunk in response_body_in_time(response):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            response.close()
            raise _UnsuccessfulAnswer(
                f"the answer is over {MAX_ANSWER_BYTES / 2**20:g} MiB, more than a range "
                "query of one series gives; not read further"
            )
    response._content = bytes(body)


def _require_success(response: requests.Response, *args: object, **kwargs: object) -> None:
    """Session hook: prometheus-api-client reads data.result without checking `status`, or
    `warnings`, which say the data is what could be collected (a Thanos store or a remote
    read that failed), or `isPartial`, which a VictoriaMetrics cluster's vmselect sets
    instead when a vmstorage node did not answer (its default): a sum over part of the
    series would read as less load."""
    if response.status_code != 200:
        if not response.is_redirect:  # a redirect is followed, then this hook sees its end
            raise _Refused(response.status_code, _error_text(response), _redirected(response))
        return
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: nested past what json decodes
        raise _UnsuccessfulAnswer(f"response is not JSON{_not_the_api(response)}") from None
    status = body.get("status") if isinstance(body, dict) else None
    if status != "success":
        error = body.get("error") if isinstance(body, dict) else None
        detail = f": {shorten(str(error), 200)}" if error else ""
        raise _UnsuccessfulAnswer(f"response status is {status!r}, not 'success'{detail}")
    data = body.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind != "matrix":
        shown = "an answer with no resultType"
        if kind:
            shown = f"a {shorten_query(str(kind), 20)} result"
        raise _UnsuccessfulAnswer(
            f"{shown} is not a matrix, which a range query gives; the answer cannot be demand"
        )
    if body.get("isPartial") is True:
        raise _UnsuccessfulAnswer(
            "VictoriaMetrics marks the answer partial (isPartial: a vmstorage node did not "
            "answer); part of the data is not the whole"
        )
    warnings = body.get("warnings")
    partial = (
        [w for w in warnings if not _about_the_query(w)] if isinstance(warnings, list) else warnings
    )
    if partial:
        first = partial[0] if isinstance(partial, list) else partial
        raise _UnsuccessfulAnswer(
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


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (args, urllib3's .reason) and its causes, once each."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        todo += [item for item in linked if isinstance(item, BaseException)]


def _why(exc: BaseException) -> str:
    """A short cause without the URL or headers, which may carry credentials."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return "TLS error; check verify_tls, ca_file and client_cert"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host name not resolved"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
    return "connection failed"
