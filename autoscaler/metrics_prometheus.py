"""PrometheusSource: the range-query call against Prometheus's HTTP API, and nothing else.

Its own room because it is the one adapter with a network, credentials, retries and a
deadline; what an answer must look like to count as demand (series shape, odd values,
staleness) lives in autoscaler.metrics, which the backtest and the trace replay share
without ever touching HTTP; how an answer's body, envelope and errors are read, in
autoscaler.metrics_answer.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import requests
from prometheus_api_client import PrometheusConnect
from requests.auth import HTTPBasicAuth
from urllib3.util.retry import Retry

from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.metrics import MetricsError, as_utc, series_from_matrix
from autoscaler.metrics_answer import (
    Refused,
    UnsuccessfulAnswer,
    capped_body,
    redact_url,
    require_success,
)
from autoscaler.metrics_auth import (
    CredentialError,
    CredentialSession,
    QueryCredentials,
    query_credentials,
)
from common.deadline import DeadlineExceeded, DeadlineRunner, whole_answer_s
from common.durations import format_duration
from common.http_environment import read_environment_once
from common.retry_warnings import quiet_retry_warnings
from common.secrets import shorten
from common.tick_circuit import server_of, skipped, unanswered

MAX_POINTS_PER_QUERY = 10_000  # Prometheus refuses more than 11,000 points per series
_RETRY_WAITS_S = 1.0  # the quick retries' backoff (0.25 s, then 0.5 s), within the deadline
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
        session.hooks["response"] += [capped_body, require_success]
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
        except UnsuccessfulAnswer as exc:
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
        except Refused as exc:
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
        except Refused as exc:
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


class _TooManySamples(MetricsError):
    """An HTTP refusal for the samples the range would load: a shorter range may pass."""


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
