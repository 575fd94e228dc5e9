"""PrometheusSource against a REAL Prometheus holding 14 days of the NASA trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import urlopen

import numpy as np
import pandas as pd
import pytest

from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.config.schema import DemandQuery
from autoscaler.metrics import MetricsError, check_demand, fetch_demand, step_floor
from autoscaler.metrics_prometheus import PrometheusSource
from tests.doubles.prometheus_server import (
    DEMAND_QUERY,
    NOTHING_QUERY,
    TWO_SERIES_QUERY,
    PrometheusWithHistory,
    build_history,
    prometheus_history,  # noqa: F401  (fixture)
    stopped_prometheus_url,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.integration

STALENESS = timedelta(minutes=5)


def _minute_now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _source(url: str) -> PrometheusSource:
    return PrometheusSource(PrometheusMetrics(url=url, timeout=timedelta(seconds=5)))


@pytest.mark.parametrize("step", [timedelta(minutes=1), timedelta(minutes=5)])
def test_last_two_hours_are_one_series_of_the_traces_rates(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
    step: timedelta,
) -> None:
    now = _minute_now()
    with _source(prometheus_history.url) as source:
        series = source.demand(DEMAND_QUERY, now - timedelta(hours=2), now, step)

    expected_index = pd.date_range(now - timedelta(hours=2), now, freq=step, tz=UTC)
    assert list(series.index) == list(expected_index)
    expected = prometheus_history.expected_rate(series.index)
    np.testing.assert_allclose(series.to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert series.std() > 0  # real traffic, not a constant that any bug could match
    checked = check_demand(series, now, STALENESS)
    pd.testing.assert_series_equal(checked, series)


def test_rates_between_samples_follow_prometheus_extrapolation(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    """A tick's `now` is not on a sample: rate() then extrapolates 4 minutes to 5."""
    end = _minute_now() - timedelta(seconds=37)
    with _source(prometheus_history.url) as source:
        series = source.demand(DEMAND_QUERY, end - timedelta(hours=1), end, timedelta(minutes=1))
    assert len(series) == 61
    assert series.index[-1] == pd.Timestamp(end)
    expected = prometheus_history.expected_rate(series.index)
    np.testing.assert_allclose(series.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_fetch_demand_uses_the_pools_window_and_step(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    now = _minute_now()
    demand = DemandQuery(query=DEMAND_QUERY, window=timedelta(hours=6), step=timedelta(minutes=10))
    with _source(prometheus_history.url) as source:
        series = fetch_demand(source, demand, now, STALENESS).series
    assert len(series) == 37
    # on the step's grid (whole 10 minutes), ending at the last one before now
    assert series.index[-1] == pd.Timestamp(step_floor(now, demand.step))
    on_grid = (series.index.minute % 10 == 0) & (series.index.second == 0)
    assert on_grid.all() and series.index[-1] > now - demand.step
    expected = prometheus_history.expected_rate(series.index)
    np.testing.assert_allclose(series.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_a_window_of_no_whole_number_of_steps_still_ends_on_the_grid(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    """A day at a 25-minute step (57.6 steps): Prometheus evaluates at start + k x step, so
    a start a day before the grid's end put every sample 10 minutes off the grid and the
    newest 15 minutes before the end, stale at every tick (limit 5 minutes)."""
    now = _minute_now()
    demand = DemandQuery(query=DEMAND_QUERY, window=timedelta(days=1), step=timedelta(minutes=25))
    with _source(prometheus_history.url) as source:
        series = fetch_demand(source, demand, now, STALENESS).series
    end = pd.Timestamp(step_floor(now, demand.step))
    assert series.index[-1] == end
    assert len(series) == 58 and series.index[0] >= end - demand.window  # within the window
    minutes = (series.index - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(minutes=1)
    assert (minutes % 25 == 0).all()
    expected = prometheus_history.expected_rate(series.index)
    np.testing.assert_allclose(series.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_two_series_is_ambiguous_and_says_to_sum(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    now = _minute_now()
    with _source(prometheus_history.url) as source, pytest.raises(MetricsError) as caught:
        source.demand(TWO_SERIES_QUERY, now - timedelta(hours=1), now, timedelta(minutes=1))
    assert caught.value.kind == "ambiguous"
    assert "2 series" in str(caught.value)
    assert "sum(" in str(caught.value)


def test_a_query_selecting_nothing_is_empty_not_zero(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    now = _minute_now()
    demand = DemandQuery(query=NOTHING_QUERY)
    with _source(prometheus_history.url) as source, pytest.raises(MetricsError) as caught:
        fetch_demand(source, demand, now, STALENESS)
    assert caught.value.kind == "empty"


@pytest.mark.parametrize(
    ("offset", "kind"),
    [
        (timedelta(days=3), "empty"),  # a window after all data
        (timedelta(days=-20), "empty"),  # a window before the backfilled history
        (timedelta(minutes=90), "stale"),  # the data stopped an hour before "now"
    ],
)
def test_a_window_without_recent_data_is_refused(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
    offset: timedelta,
    kind: str,
) -> None:
    now = prometheus_history.last_sample + offset
    demand = DemandQuery(query=DEMAND_QUERY, window=timedelta(hours=2))
    with _source(prometheus_history.url) as source, pytest.raises(MetricsError) as caught:
        fetch_demand(source, demand, now, STALENESS)
    assert caught.value.kind == kind


def test_invalid_promql_is_a_bad_response_with_prometheus_reason(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    now = _minute_now()
    with _source(prometheus_history.url) as source, pytest.raises(MetricsError) as caught:
        source.demand("sum(rate(http_requests_total[5m]", now - timedelta(hours=1), now,
                      timedelta(minutes=1))  # fmt: skip
    assert caught.value.kind == "bad_response"
    assert "HTTP 400" in str(caught.value)
    assert "parse error" in str(caught.value)


def test_an_error_quoting_label_values_is_given_whole(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    """Prometheus's 422 for a many-to-many match quotes the series' labels."""
    now = _minute_now()
    query = 'http_requests_total{job="demo"} + on() group_left http_requests_total'
    with _source(prometheus_history.url) as source, pytest.raises(MetricsError) as caught:
        source.demand(query, now - timedelta(hours=1), now, timedelta(minutes=1))
    assert "HTTP 422" in str(caught.value)
    assert '{__name__="http_requests_total", job="demo-canary"}' in str(caught.value)


def test_stopped_prometheus_is_unreachable(
    stopped_prometheus_url: str,  # noqa: F811
) -> None:
    now = _minute_now()
    with _source(stopped_prometheus_url) as source, pytest.raises(MetricsError) as caught:
        source.demand(DEMAND_QUERY, now - timedelta(hours=1), now, timedelta(minutes=1))
    assert caught.value.kind == "unreachable"
    assert "connection refused" in str(caught.value)


def test_fourteen_days_at_one_minute_is_fetched_in_chunks_under_the_point_limit(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    """Prometheus refuses a range query of more than 11,000 points per series."""
    now = _minute_now()
    start = now - timedelta(days=13, hours=23)
    with _source(prometheus_history.url) as source:
        series = source.demand(DEMAND_QUERY, start, now, timedelta(minutes=1))
    expected_index = pd.date_range(start, now, freq="1min", tz=UTC)
    assert len(series) == len(expected_index) > 11_000
    assert list(series.index) == list(expected_index)
    sample = series.iloc[:: len(series) // 50]
    expected = prometheus_history.expected_rate(sample.index)
    np.testing.assert_allclose(sample.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_a_window_refused_for_its_samples_is_read_in_shorter_ranges(tmp_path: Path) -> None:
    """A Prometheus whose --query.max-samples refuses two days of minutes in one range
    query (HTTP 422, 'query processing would load too many samples') but takes one."""
    history, server = build_history(
        tmp_path, history=timedelta(days=2), flags=["--query.max-samples=4000"]
    )
    try:
        now = _minute_now()
        start = now - timedelta(days=2) + timedelta(minutes=10)
        whole = urlencode({"query": DEMAND_QUERY, "start": start.timestamp(),
                           "end": now.timestamp(), "step": 60})  # fmt: skip
        with pytest.raises(HTTPError) as refused:
            urlopen(f"{history.url}/api/v1/query_range?{whole}", timeout=10)
        assert refused.value.code == 422 and b"too many samples" in refused.value.read()
        with _source(history.url) as source:
            series = source.demand(DEMAND_QUERY, start, now, timedelta(minutes=1))
    finally:
        server.stop()
    assert list(series.index) == list(pd.date_range(start, now, freq="1min", tz=UTC))
    expected = history.expected_rate(series.index)
    np.testing.assert_allclose(series.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_a_kept_window_asks_only_for_the_new_minutes_and_answers_as_the_whole_window(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
) -> None:
    """Ticks a minute apart, each given the last one's history: the same samples as asking
    for the whole 14 days each time, from a range query of a few minutes."""
    demand = DemandQuery(query=DEMAND_QUERY, window=timedelta(days=14))
    start = _minute_now() - timedelta(minutes=20)
    asked: list[tuple[datetime, datetime]] = []
    with _source(prometheus_history.url) as source:
        kept = fetch_demand(source, demand, start, STALENESS)
        recording = _Recording(source, asked)
        for minute in range(1, 6):
            now = start + timedelta(minutes=minute, seconds=7)
            kept = fetch_demand(recording, demand, now, STALENESS, kept)
            whole = fetch_demand(source, demand, now, STALENESS)
            pd.testing.assert_series_equal(kept.series, whole.series)
            assert kept.room is not None  # regular: grown in place after the first join
    assert all(end - first <= 6 * demand.step for first, end in asked)


class _Recording:
    def __init__(self, source: PrometheusSource, asked: list[tuple[datetime, datetime]]) -> None:
        self.source, self.asked = source, asked

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        self.asked.append((start, end))
        return self.source.demand(query, start, end, step)
