"""Demand history (requests/s per step) from Prometheus, and the checks that make it trustworthy.

Missing data must never read as zero load: a query that fails, selects nothing,
ends in NaN or stopped updating raises MetricsError with a `kind` the tick turns
into "hold the current count". `check_demand` is pure so the policy tests and the
backtest share it; `PrometheusSource` is the thin adapter around
prometheus-api-client's range query.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from autoscaler.config.schema import DemandQuery, PrometheusMetrics
from autoscaler.metrics_auth import query_credentials
from common.deadline import DeadlineExceeded, call_within, whole_answer_s
from common.durations import format_duration
from common.secrets import shorten

MetricsErrorKind = Literal[
    "unreachable", "timeout", "bad_response", "empty", "nan", "stale", "ambiguous"
]

MAX_POINTS_PER_QUERY = 10_000  # Prometheus refuses more than 11,000 points per series
_QUERY_SHOWN = 120  # characters of a PromQL query quoted in a message
_LATEST_UNIX_TIME = 2**33  # year 2242; later (or NaN, or before 1970) is a broken answer
_RETRY_WAITS_S = 1.0  # the quick retries' backoff (0.25 s, then 0.5 s), within the deadline
_CLOCK_SLACK = timedelta(seconds=1)  # the query's end is sent rounded to the millisecond
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|Inf|NaN)")


class MetricsError(Exception):
    """The demand history cannot be trusted; `kind` says why, the message says what to fix."""

    def __init__(self, kind: MetricsErrorKind, query: str, reason: str) -> None:
        self.kind: MetricsErrorKind = kind
        self.query = query
        self.reason = reason
        super().__init__(f"demand query {_shorten(query)!r}: {reason}")


class MetricsSource(Protocol):
    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        """Requests/s at each step in [start, end], indexed by a UTC DatetimeIndex."""
        ...


# ---- pure checks -----------------------------------------------------------------


def check_demand(series: pd.Series, now: datetime, max_staleness: timedelta) -> pd.Series:
    """Refuse history the policy must not act on; drop interior NaN/Inf samples.

    The newest sample decides: if it is missing, old or not a number, the tick
    has no idea of the current load and must hold rather than guess. A sample from
    after `now` or a time given twice with two values means the answer is not what
    was asked for, and none of it can be trusted.
    """
    query = str(series.name) if series.name is not None else "demand"
    series = _fresh(series, query, now, max_staleness)
    newest_at = series.index[-1]
    values = series.to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        raise MetricsError("nan", query, "every sample in the window is NaN or infinite")
    if not finite[-1]:
        raise MetricsError(
            "nan", query, f"newest sample at {newest_at:%Y-%m-%d %H:%M:%SZ} is {values[-1]}"
        )
    negative = finite & (values < 0)
    if negative.any():
        first = int(np.argmax(negative))
        raise MetricsError(
            "bad_response",
            query,
            f"negative demand {values[first]:g} at {series.index[first]:%Y-%m-%d %H:%M:%SZ}; "
            "the query must give requests per second",
        )
    return series[finite]


def _one_value_per_time(series: pd.Series, query: str) -> pd.Series:
    """Drop exact repeats; refuse a time given twice with two different values."""
    repeated = series.index.duplicated(keep=False)
    if not repeated.any():
        return series
    counts = series[repeated].groupby(level=0).nunique(dropna=False)
    if (counts > 1).any():
        at = counts[counts > 1].index[0]
        shown = ", ".join(f"{v:g}" for v in series[series.index == at].to_numpy(dtype=float))
        raise MetricsError(
            "bad_response",
            query,
            f"the same time {at:%Y-%m-%d %H:%M:%SZ} comes twice with different values "
            f"({shown}); the answer is not one series",
        )
    return series[~series.index.duplicated(keep="first")]


def _fresh(series: pd.Series, query: str, now: datetime, max_staleness: timedelta) -> pd.Series:
    """The series in time order, one value a time, if it has a sample within
    `max_staleness` of now and none after it."""
    if series.empty:
        raise MetricsError("empty", query, "no samples in the window (no data is not zero load)")
    series = _one_value_per_time(series.sort_index(), query)
    newest_at = series.index[-1]
    age = _as_utc(now) - newest_at.to_pydatetime(warn=False)  # sub-µs precision: irrelevant
    if age < -_CLOCK_SLACK:
        raise MetricsError(
            "bad_response",
            query,
            f"sample at {newest_at:%Y-%m-%d %H:%M:%SZ} is after the query's end "
            f"({_as_utc(now):%Y-%m-%d %H:%M:%SZ}); the source answered another question",
        )
    if age > max_staleness:
        raise MetricsError(
            "stale",
            query,
            f"newest sample at {newest_at:%Y-%m-%d %H:%M:%SZ} is {format_duration(age)} old "
            f"(limit {format_duration(max_staleness)})",
        )
    return series


def fetch_latest(
    source: MetricsSource, query: str, now: datetime, max_staleness: timedelta
) -> float:
    """The newest value of a query that gives one number now (a signal): several series,
    no data or only old data raise as for demand; the value itself, NaN included, is the
    caller's to judge (a NaN queue depth is a broken exporter, not an idle queue)."""
    step = min(max_staleness, timedelta(minutes=1))
    series = source.demand(query, now - max_staleness, now, step)
    return float(_fresh(series.rename(query), query, now, max_staleness).iloc[-1])


def fetch_series(
    source: MetricsSource, query: str, now: datetime, window: timedelta, step: timedelta
) -> pd.Series:
    """A query's samples over the window up to now, NaN and Inf dropped (may be empty)."""
    series = source.demand(query, now - window, now, step).rename(query)
    return series[np.isfinite(series.to_numpy(dtype=float))]


def fetch_demand(
    source: MetricsSource, demand: DemandQuery, now: datetime, max_staleness: timedelta
) -> pd.Series:
    """The checked history a pool's forecast is fitted on: the configured window up to now."""
    series = source.demand(demand.query, now - demand.window, now, demand.step)
    return check_demand(series.rename(demand.query), now, max_staleness)


def series_from_matrix(query: str, result: Any) -> pd.Series:
    """Turn a query_range `data.result` (a matrix) into one float series.

    Prometheus encodes sample values as strings ("1.5", "NaN", "+Inf"); anything else
    (JSON false, null, a list) is not a number, and float() would read false as 0 req/s.
    More than one series is an error: summing them silently would hide a query mistake.
    """
    if not isinstance(result, list):
        raise MetricsError("bad_response", query, "response has no list of series (data.result)")
    if not all(isinstance(item, dict) for item in result):
        raise MetricsError(
            "bad_response",
            query,
            "data.result is not a list of series objects (a scalar or string result?)",
        )
    if len(result) > 1:
        shown = ", ".join(_labels(item) for item in result[:3])
        raise MetricsError(
            "ambiguous",
            query,
            f"returned {len(result)} series ({shown}{', ...' if len(result) > 3 else ''}); "
            "wrap it in sum(...) so it gives one demand series",
        )
    if not result:
        return _empty_series(query)
    pairs = result[0].get("values")
    if not isinstance(pairs, list):
        raise MetricsError("bad_response", query, "series has no 'values' list (not a matrix)")
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        raise MetricsError("bad_response", query, "a sample is not a [time, value] pair")
    stamps = [_sample_number(pair[0]) for pair in pairs]
    values = [_sample_number(pair[1]) for pair in pairs]
    if None in values:
        bad = next(pair[1] for pair, value in zip(pairs, values, strict=True) if value is None)
        raise MetricsError(
            "bad_response", query, f"a sample value {_shorten(json_text(bad), 40)} is not a number"
        )
    if not all(stamp is not None and 0 <= stamp < _LATEST_UNIX_TIME for stamp in stamps):
        raise MetricsError("bad_response", query, "a sample time is not a plausible Unix time")
    index = pd.to_datetime(stamps, unit="s", utc=True)
    return pd.Series(values, index=index, name=query, dtype=float).sort_index()


def _sample_number(value: Any) -> float | None:
    """A JSON number or a Prometheus number string as a float; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def json_text(value: Any) -> str:
    """How a value was written in the JSON answer (false, null, [0]), for a message."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


# ---- Prometheus adapter ----------------------------------------------------------


class PrometheusSource:
    """Range queries against Prometheus's HTTP API through prometheus-api-client."""

    def __init__(self, config: PrometheusMetrics, env: Mapping[str, str] = os.environ) -> None:
        self._config = config
        self._shown_url = redact_url(config.url)
        self._credential_hint = _credential_hint(config)
        credentials = query_credentials(config, env)  # CredentialError: cannot start
        session = requests.Session()
        session.hooks["response"].append(_require_success)
        session.verify = config.verify_tls
        if config.verify_tls and config.ca_file is not None:
            session.verify = str(config.ca_file)
        session.auth = credentials.basic_auth
        session.cert = credentials.client_cert
        headers = credentials.headers
        # Retry a refused connection or a 502/503/504 once or twice, quickly; never a
        # read timeout (it already cost the full timeout) and never a Retry-After wait.
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
        self._client = PrometheusConnect(
            url=config.url.rstrip("/"),
            headers=headers or None,
            disable_ssl=not config.verify_tls,
            retry=retry,
            session=session,
            timeout=config.timeout.total_seconds(),
        )

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        """Range query, split into chunks under Prometheus's 11,000-points-per-series limit
        (14 days at a 1-minute step is 20,160 points)."""
        start, end = _as_utc(start), _as_utc(end)
        chunk = step * (MAX_POINTS_PER_QUERY - 1)
        parts = []
        while True:
            chunk_end = min(end, start + chunk)
            parts.append(self._query_range(query, start, chunk_end, step))
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
        total = whole_answer_s(self._config.timeout.total_seconds()) + _RETRY_WAITS_S
        try:
            result = call_within(
                total,
                lambda: self._client.custom_query_range(
                    query, start_time=start, end_time=end, step=f"{step.total_seconds():g}"
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
        except PrometheusApiClientException as exc:
            raise MetricsError("bad_response", query, self._http_error(str(exc))) from None
        except (ValueError, KeyError, TypeError):
            # requests' JSONDecodeError is a ValueError; an error body has no data.result.
            raise MetricsError(
                "bad_response", query, "response is not a successful Prometheus JSON answer"
            ) from None
        return series_from_matrix(query, result)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _http_error(self, text: str) -> str:
        """Status and Prometheus's own `error` text, from the library's exception message."""
        status = re.search(r"HTTP Status Code (\d+)", text)
        code = status.group(1) if status else "?"
        reason = f"HTTP {code} from {self._shown_url}"
        detail = re.search(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
        if detail:
            reason += f": {shorten(detail.group(1), 200)}"
        if code in ("401", "403"):
            reason += f" (check {self._credential_hint})"
        return reason


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


# ---- helpers ---------------------------------------------------------------------


class _UnsuccessfulAnswer(Exception):
    """A 200 answer that is not JSON or whose `status` is not "success"."""


def _require_success(response: requests.Response, *args: object, **kwargs: object) -> None:
    """Session hook: prometheus-api-client reads data.result without checking `status`."""
    if response.status_code != 200:
        return
    try:
        body = response.json()
    except ValueError:
        raise _UnsuccessfulAnswer("response is not JSON") from None
    status = body.get("status") if isinstance(body, dict) else None
    if status != "success":
        error = body.get("error") if isinstance(body, dict) else None
        detail = f": {shorten(str(error), 200)}" if error else ""
        raise _UnsuccessfulAnswer(f"response status is {status!r}, not 'success'{detail}")
    data = body.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind != "matrix":
        shown = f"a {_shorten(str(kind), 20)} result" if kind else "an answer with no resultType"
        raise _UnsuccessfulAnswer(
            f"{shown} is not a matrix, which a range query gives; the answer cannot be demand"
        )


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime (naive times are ambiguous)")
    return moment.astimezone(UTC)


def _empty_series(query: str) -> pd.Series:
    return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), name=query, dtype=float)


def _labels(item: Any) -> str:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict) or not metric:
        return "{}"
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()))
    return _shorten(f"{{{inner}}}", 80)


def _shorten(text: str, limit: int = _QUERY_SHOWN) -> str:
    return shorten(" ".join(text.split()), limit, "...")


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
