"""Demand history checks (pure) and PrometheusSource against malformed HTTP answers."""

from __future__ import annotations

import json
import math
import socket
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.config.schema import DemandQuery
from autoscaler.metrics import MetricsError, check_demand, fetch_demand, sample_times, step_floor
from autoscaler.metrics_auth import CredentialError
from autoscaler.metrics_prometheus import PrometheusSource
from tests.doubles.prometheus_server import (
    PrometheusApiDouble,
    Reply,
    error_reply,
    matrix_reply,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LIMIT = timedelta(minutes=5)
TOKEN = "s3cret-prom-token"
QUERY = 'sum(rate(http_requests_total{job="demo"}[5m]))'


def minutes(values: list[float], newest: datetime = NOW) -> pd.Series:
    index = pd.date_range(end=newest, periods=len(values), freq="1min", tz=UTC)
    return pd.Series(values, index=index, dtype=float, name=QUERY)


# ---- check_demand ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (minutes([]), "empty"),
        (minutes([3.0, 4.0], newest=NOW - timedelta(minutes=10)), "stale"),
        (minutes([3.0, 4.0, math.nan]), "nan"),
        (minutes([3.0, 4.0, math.inf]), "nan"),
        (minutes([3.0, 4.0, -math.inf]), "nan"),
        (minutes([math.nan, math.nan, math.nan]), "nan"),
        (minutes([3.0, -1.0, 4.0]), "bad_response"),
    ],
    ids=["empty", "stale", "nan-newest", "inf-newest", "minus-inf-newest", "all-nan", "negative"],
)
def test_untrustworthy_history_is_refused(series: pd.Series, kind: str) -> None:
    with pytest.raises(MetricsError) as caught:
        check_demand(series, NOW, LIMIT)
    assert caught.value.kind == kind
    assert QUERY in str(caught.value)


def test_stale_message_says_how_old_and_the_limit() -> None:
    with pytest.raises(MetricsError, match=r"is 10m old \(limit 5m\)"):
        check_demand(minutes([1.0], newest=NOW - timedelta(minutes=10)), NOW, LIMIT)


def test_newest_sample_exactly_at_the_limit_is_still_fresh() -> None:
    series = minutes([1.0, 2.0], newest=NOW - LIMIT)
    pd.testing.assert_series_equal(check_demand(series, NOW, LIMIT), series)


def test_interior_nan_and_inf_are_dropped_not_zeroed() -> None:
    series = minutes([1.0, math.nan, 2.0, math.inf, 3.0])
    checked = check_demand(series, NOW, LIMIT)
    assert checked.tolist() == [1.0, 2.0, 3.0]
    assert list(checked.index) == [series.index[0], series.index[2], series.index[4]]


def test_zero_demand_is_real_data() -> None:
    series = minutes([0.0, 0.0, 0.0])
    assert check_demand(series, NOW, LIMIT).tolist() == [0.0, 0.0, 0.0]


def test_unsorted_history_is_judged_by_its_newest_sample() -> None:
    series = minutes([1.0, 2.0, 3.0]).iloc[::-1]
    assert check_demand(series, NOW, LIMIT).index.is_monotonic_increasing


def test_a_time_given_twice_with_one_value_is_kept_once_and_with_two_is_refused() -> None:
    """Sorted or not: an answer that is not strictly increasing is sorted, then merged."""
    series = minutes([1.0, 2.0, 3.0])
    repeated = pd.concat([series.iloc[[2]], series, series.iloc[[1]]])
    assert check_demand(repeated, NOW, LIMIT).tolist() == [1.0, 2.0, 3.0]
    conflicting = pd.concat([series, pd.Series([5.0], index=series.index[[1]], name=QUERY)])
    with pytest.raises(MetricsError, match="twice"):
        check_demand(conflicting, NOW, LIMIT)


@settings(max_examples=300, deadline=None)
@given(
    microseconds=st.integers(0, 2**52),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
    step_seconds=st.sampled_from([1, 7, 15, 30, 60, 90, 300, 3600, 86_400]),
)
def test_step_floor_is_the_epochs_grid_in_utc(
    microseconds: int, offset_minutes: int, step_seconds: int
) -> None:
    """Whatever zone the moment is given in: the same grid as pandas' floor of the instant."""
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)).astimezone(
        zone
    )
    step = timedelta(seconds=step_seconds)
    floored = step_floor(moment, step)
    assert floored.tzinfo == UTC
    assert floored == pd.Timestamp(moment).tz_convert("UTC").floor(step).to_pydatetime()


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_demand(minutes([1.0]), NOW.replace(tzinfo=None), LIMIT)


# ---- PrometheusSource against the query_range double -----------------------------


def source(url: str, timeout: float = 2.0, env: dict[str, str] | None = None) -> PrometheusSource:
    config = PrometheusMetrics(
        url=url, timeout=timedelta(seconds=timeout), bearer_token_env="PROM_TOKEN"
    )
    return PrometheusSource(config, env={"PROM_TOKEN": TOKEN} if env is None else env)


def ask(prometheus: PrometheusSource) -> pd.Series:
    return prometheus.demand(QUERY, NOW - timedelta(minutes=2), NOW, timedelta(minutes=1))


def stamp(moment: datetime) -> float:
    return moment.timestamp()


@pytest.mark.parametrize("bypassed", [False, True])
def test_the_environments_proxy_carries_the_queries_unless_no_proxy_bypasses_it(
    monkeypatch: pytest.MonkeyPatch, bypassed: bool
) -> None:
    """requests' environment rules, read once when the source starts (not on every
    request): the double stands as the proxy, and is asked for Prometheus's absolute URL;
    with NO_PROXY naming the host, the query goes there directly (a name that does not
    resolve: unreachable)."""
    reply = matrix_reply(({}, [(stamp(NOW), "1")]))
    for name in ("http_proxy", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with PrometheusApiDouble([reply]) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        if bypassed:
            monkeypatch.setenv("NO_PROXY", "prometheus.invalid")
        with source("http://prometheus.invalid:9090") as prometheus:
            monkeypatch.delenv("HTTP_PROXY")  # read at the start: still the proxy
            if bypassed:
                with pytest.raises(MetricsError, match="cannot connect"):
                    ask(prometheus)
            else:
                assert ask(prometheus).tolist() == [1.0]
    hosts = [headers.get("Host") for _, _, headers in proxy.requests]
    assert hosts == ([] if bypassed else ["prometheus.invalid:9090"])


def test_a_few_new_samples_are_asked_for_uncompressed_and_a_window_compressed() -> None:
    """gzip only where it saves bytes worth its time: a steady tick's few new samples
    come plain; a first read of the window may come compressed."""
    reply = matrix_reply(({}, [(stamp(NOW), "1")]))
    with PrometheusApiDouble([reply]) as double, source(double.url) as prometheus:
        ask(prometheus)  # 3 points
        prometheus.demand(QUERY, NOW - timedelta(days=1), NOW, timedelta(minutes=1))
    encodings = [headers.get("Accept-Encoding") for _, _, headers in double.requests]
    assert encodings[0] == "identity"
    assert encodings[1] is not None and "gzip" in encodings[1]


def test_range_query_parses_values_and_sends_params_and_token() -> None:
    t0 = NOW - timedelta(minutes=2)
    reply = matrix_reply(
        ({}, [(stamp(t0), "1.5"), (stamp(t0) + 60, "NaN"), (stamp(NOW), "+Inf")]),
    )
    with PrometheusApiDouble([reply]) as double, source(double.url) as prometheus:
        series = ask(prometheus)
    assert str(series.index.tz) == "UTC"
    assert list(series.index) == list(pd.date_range(t0, NOW, freq="1min", tz=UTC))
    assert series.iloc[0] == 1.5
    assert np.isnan(series.iloc[1])
    assert series.iloc[2] == math.inf
    path, params, headers = double.requests[0]
    assert path == "/api/v1/query_range"
    assert params["query"] == [QUERY]
    assert params["start"] == [str(int(stamp(t0)))]
    assert params["end"] == [str(int(stamp(NOW)))]
    assert params["step"] == ["60"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("late", "step"),
    [
        (timedelta(seconds=0.6), timedelta(minutes=1)),  # a tick a little late
        (timedelta(seconds=30.4), timedelta(minutes=1)),  # a 90 s interval's every other tick
        (timedelta(minutes=7), timedelta(minutes=10)),
    ],
)
def test_fetch_demand_asks_for_the_steps_own_grid_whatever_the_ticks_time(
    late: timedelta, step: timedelta
) -> None:
    """Prometheus evaluates a range at start + k x step, the start rounded to the second by
    the client: a range ending at the tick's own time gave other sample times on every tick
    that came a little later or earlier, and the forecaster then rebuilt its history and
    refitted from scratch (test_tick: a week of jittered ticks)."""
    demand = DemandQuery(query=QUERY, window=timedelta(hours=1), step=step)
    reply = matrix_reply(({}, [(stamp(NOW - step), "1.0"), (stamp(NOW), "2.0")]))
    with PrometheusApiDouble([reply]) as double, source(double.url) as prometheus:
        series = fetch_demand(prometheus, demand, NOW + late, LIMIT).series
    _, params, _ = double.requests[0]
    assert params["end"] == [str(int(stamp(NOW)))]
    assert params["start"] == [str(int(stamp(NOW - timedelta(hours=1))))]
    assert series.iloc[-1] == 2.0


class MemorySource:
    """Demand from a series held in memory, as a source answers: the asked range, anew."""

    def __init__(self, series: pd.Series) -> None:
        self.series = series
        self.asked: list[tuple[datetime, datetime]] = []

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        self.asked.append((start, end))
        inside = (self.series.index >= start) & (self.series.index <= end)
        return self.series[inside].rename(query)


def day_of_minutes(seed: int = 0) -> pd.Series:
    index = pd.date_range(end=NOW, periods=24 * 60, freq="1min", tz=UTC)
    return pd.Series(np.random.default_rng(seed).uniform(1.0, 9.0, len(index)), index=index)


HOURS_3 = DemandQuery(query=QUERY, window=timedelta(hours=3))


def test_a_kept_history_asks_from_a_few_steps_back_and_answers_as_the_whole_window() -> None:
    """Ticks a minute apart, a sample revised in the overlap and one that is NaN: each answer
    is the one the whole window gives, from ranges of OVERLAP_STEPS + 1 steps."""
    truth = day_of_minutes()
    source = MemorySource(truth.copy())
    start = NOW - timedelta(hours=12)
    kept = fetch_demand(source, HOURS_3, start, LIMIT)
    for minute in range(1, 40):
        minute_start = start + timedelta(minutes=minute)
        if minute == 10:
            source.series[minute_start - timedelta(minutes=3)] = 0.5  # a late scrape's revision
        if minute == 20:
            source.series[minute_start - timedelta(minutes=2)] = math.nan
        now = minute_start + timedelta(seconds=2)
        kept = fetch_demand(source, HOURS_3, now, LIMIT, kept)
        whole = fetch_demand(source, HOURS_3, now, LIMIT).series
        pd.testing.assert_series_equal(kept.series, whole, check_freq=False)
        first, end = source.asked[-2]
        assert end - first == timedelta(minutes=6)  # OVERLAP_STEPS back, and the new one
    assert kept.series.index[0] == pd.Timestamp(step_floor(now, HOURS_3.step) - HOURS_3.window)


def test_a_kept_history_older_than_the_window_is_not_used() -> None:
    source = MemorySource(day_of_minutes())
    kept = fetch_demand(source, HOURS_3, NOW - timedelta(hours=12), LIMIT)
    answer = fetch_demand(source, HOURS_3, NOW, LIMIT, kept).series
    assert source.asked[-1] == (NOW - HOURS_3.window, NOW)
    whole = fetch_demand(source, HOURS_3, NOW, LIMIT).series
    pd.testing.assert_series_equal(answer, whole, check_freq=False)


def test_a_source_that_stopped_goes_stale_and_one_that_forgot_is_empty_as_for_the_window() -> None:
    truth = day_of_minutes()
    source = MemorySource(truth[truth.index <= NOW - timedelta(minutes=30)])
    kept = fetch_demand(source, HOURS_3, NOW - timedelta(minutes=30), LIMIT)
    still = fetch_demand(source, HOURS_3, NOW - timedelta(minutes=27), LIMIT, kept)
    assert still.series.index[-1] == kept.series.index[-1]
    with pytest.raises(MetricsError, match="old") as raised:
        fetch_demand(source, HOURS_3, NOW, LIMIT, kept)
    assert raised.value.kind == "stale"
    source.series = truth[truth.index < NOW - timedelta(hours=1)]  # the recent hour gone
    with pytest.raises(MetricsError, match="no samples") as raised:
        fetch_demand(source, HOURS_3, NOW - timedelta(minutes=27), LIMIT, kept)
    assert raised.value.kind == "empty"


def test_a_bad_new_sample_refuses_the_answer_and_an_answer_of_more_than_asked_is_whole() -> None:
    truth = day_of_minutes()
    kept = fetch_demand(MemorySource(truth), HOURS_3, NOW - timedelta(minutes=10), LIMIT)
    negative = truth.copy()
    negative.iloc[-3] = -1.0
    with pytest.raises(MetricsError, match="negative"):
        fetch_demand(MemorySource(negative), HOURS_3, NOW, LIMIT, kept)

    class Everything(MemorySource):  # ignores the range: the whole day every time
        def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
            return self.series.rename(query)

    answer = fetch_demand(Everything(truth), HOURS_3, NOW, LIMIT, kept).series
    assert answer.index.is_unique and answer.index.is_monotonic_increasing
    assert answer.index[-1] == pd.Timestamp(NOW)


def test_an_unset_bearer_token_variable_stops_the_start() -> None:
    """Before, an unset $PROM_TOKEN sent no token: every query met a 401 and the pool held
    on missing metrics, where README says an unset variable stops the start (exit 2)."""
    with pytest.raises(CredentialError, match="PROM_TOKEN is not set or empty"):
        source("http://127.0.0.1:9", env={})
    with pytest.raises(CredentialError, match="bearer_token_env"):
        source("http://127.0.0.1:9", env={"PROM_TOKEN": "  "})


def test_no_series_reads_as_empty_not_zero() -> None:
    demand = DemandQuery(query=QUERY)
    with (
        PrometheusApiDouble([matrix_reply()]) as double,
        source(double.url) as prometheus,
        pytest.raises(MetricsError) as caught,
    ):
        fetch_demand(prometheus, demand, NOW, LIMIT)
    assert caught.value.kind == "empty"


def test_two_series_are_ambiguous() -> None:
    reply = matrix_reply(({"job": "a"}, [(stamp(NOW), "1")]), ({"job": "b"}, [(stamp(NOW), "2")]))
    with (
        PrometheusApiDouble([reply]) as double,
        source(double.url) as prometheus,
        pytest.raises(MetricsError) as caught,
    ):
        ask(prometheus)
    assert caught.value.kind == "ambiguous"
    assert 'job="a"' in str(caught.value)
    assert "sum(" in str(caught.value)


def _vector_reply() -> Reply:
    result = [{"metric": {}, "value": [1, "1"]}]
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return Reply(body=json.dumps(body).encode())


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        (Reply(body=b"<html>proxy login</html>", content_type="text/html"), "not JSON"),
        (Reply(body=b'{"status":"success","data":'), "not JSON"),
        (error_reply(200, "execution", "query processing would load too many samples"),
         "too many samples"),
        (Reply(body=b'{"status":"success","data":{"resultType":"matrix"}}'), "not a successful"),
        (Reply(body=b'{"status":"success","data":{"resultType":"matrix","result":{}}}'),
         "no list of series"),
        (_vector_reply(), "not a matrix"),
        (Reply(body=b'{"status":"success","data":{"resultType":"matrix","result":'
                    b'[{"metric":{},"values":[[1,"lots"]]}]}}'), '"lots" is not a number'),
        (error_reply(400, "bad_data", 'parse error: unexpected "}"'),
         'HTTP 400 from http://127.0.0.1'),
        (error_reply(400, "bad_data", 'parse error: unexpected "}" in label matching'),
         ': parse error: unexpected "}" in label matching'),
        (error_reply(422, "execution", "can't 'read' ä\nline"), ": can't 'read' ä line"),
        (error_reply(422, "execution", "expanding series: too many"), "expanding series"),
        (Reply(status=500, body=b"internal error", content_type="text/plain"), "HTTP 500"),
        (Reply(status=401, body=b"Unauthorized", content_type="text/plain"), "$PROM_TOKEN"),
        (Reply(status=429, body=b"too many outstanding requests\n", content_type="text/plain"),
         ": too many outstanding requests"),
        (Reply(status=404, body=b"<html><h1>Not Found</h1></html>", content_type="text/html"),
         "HTTP 404 from http://127.0.0.1:"),
    ],
    ids=["html", "truncated-json", "status-error-200", "no-result", "result-not-list", "vector",
         "value-not-number", "http-400", "http-400-quoted", "http-422-escapes", "http-422",
         "http-500", "http-401", "mimir-429", "proxy-html"],
)  # fmt: skip
def test_malformed_answers_are_bad_responses(reply: Reply, needle: str) -> None:
    with (
        PrometheusApiDouble([reply]) as double,
        source(double.url) as prometheus,
        pytest.raises(MetricsError) as caught,
    ):
        ask(prometheus)
    assert caught.value.kind == "bad_response"
    assert needle in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert len(double.requests) == 1  # none of these is retried


def test_a_mimir_asking_for_its_tenant_says_so_not_the_credentials() -> None:
    """Mimir and Cortex answer a query without X-Scope-OrgID with 401 and the plain text
    'no org id' (grafana/mimir#2030): the reason quotes it and names the header."""
    reply = Reply(status=401, body=b"no org id\n", content_type="text/plain; charset=utf-8")
    with (
        PrometheusApiDouble([reply]) as double,
        source(double.url) as prometheus,
        pytest.raises(MetricsError) as caught,
    ):
        ask(prometheus)
    assert caught.value.reason == (
        f"HTTP 401 from {double.url}: no org id "
        "(a tenant is asked for: send it as metrics.headers X-Scope-OrgID)"
    )


def test_a_victoriametrics_answer_that_is_whole_reads_as_demand() -> None:
    """vmselect's envelope (VictoriaMetrics cluster docs, its query_range template) adds
    `isPartial` and `stats` to Prometheus's: only isPartial true holds (tests/faults)."""
    body = json.loads(matrix_reply(({}, [(stamp(NOW), "7.5")])).body)
    body |= {"isPartial": False, "stats": {"seriesFetched": "1", "executionTimeMsec": 2}}
    with (
        PrometheusApiDouble([Reply(body=json.dumps(body).encode())]) as double,
        source(double.url) as prometheus,
    ):
        assert ask(prometheus).tolist() == [7.5]


def test_a_range_refused_for_its_samples_even_when_short_says_so_after_a_few_asks() -> None:
    """Prometheus's query.max-samples refusal (422, errorType execution) for every range:
    halved down to 100 steps, then the refusal stands, saying how short it was asked."""
    refusal = "query processing would load too many samples into memory in query execution"
    with (
        PrometheusApiDouble([error_reply(422, "execution", refusal)]) as double,
        source(double.url) as prometheus,
        pytest.raises(MetricsError) as caught,
    ):
        prometheus.demand(QUERY, NOW - timedelta(days=14), NOW, timedelta(minutes=1))
    assert caught.value.kind == "bad_response"
    assert refusal in str(caught.value) and "(asked 100 steps at a time)" in str(caught.value)
    steps = [(float(q["end"][0]) - float(q["start"][0])) / 60 + 1 for _, q, _ in double.requests]
    assert steps == [10_000, 5_000, 2_500, 1_250, 625, 312, 156, 100]


def test_unavailable_is_retried_then_succeeds() -> None:
    replies = [error_reply(503, "timeout", "query timed out"), matrix_reply(({}, [(0, "1")]))]
    with PrometheusApiDouble(replies) as double, source(double.url) as prometheus:
        series = ask(prometheus)
    assert series.tolist() == [1.0]
    assert len(double.requests) == 2


def test_unavailable_every_time_is_a_bad_response() -> None:
    with (
        PrometheusApiDouble([error_reply(503, "timeout", "query timed out")]) as double,
        source(double.url) as prometheus,
        pytest.raises(MetricsError) as caught,
    ):
        ask(prometheus)
    assert caught.value.kind == "bad_response"
    assert "HTTP 503" in str(caught.value)
    assert "query timed out" in str(caught.value)


def test_a_server_slower_than_the_timeout_is_a_timeout() -> None:
    with (
        PrometheusApiDouble([Reply(delay=5.0, body=b"{}")]) as double,
        source(double.url, timeout=0.2) as prometheus,
        pytest.raises(MetricsError) as caught,
    ):
        ask(prometheus)
    assert caught.value.kind == "timeout"
    assert len(double.requests) == 1  # a read timeout is not retried


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_is_unreachable_and_credentials_stay_out() -> None:
    url = f"http://admin:hunter2@127.0.0.1:{_closed_port()}/prom"  # a query string is refused
    with source(url) as prometheus, pytest.raises(MetricsError) as caught:
        ask(prometheus)
    message = str(caught.value)
    assert caught.value.kind == "unreachable"
    assert "connection refused" in message
    assert "127.0.0.1" in message
    for secret in ("hunter2", "admin", TOKEN):
        assert secret not in message


@given(
    st.lists(
        st.integers(0, 4_000_000_000).map(float)
        | st.floats(0, 4_000_000_000, allow_nan=False, allow_infinity=False),
        max_size=6,
    )
)
def test_sample_times_are_pandas_reading_of_the_seconds(stamps: list[float]) -> None:
    """Whole seconds (a range query's grid) take the quick way; the index, its unit
    included, is the one pandas makes of the floats."""
    expected = pd.to_datetime(stamps, unit="s", utc=True)
    got = sample_times(stamps)
    assert got.dtype == expected.dtype
    assert got.equals(expected)
