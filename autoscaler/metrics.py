"""Demand history (requests/s per step) and the checks that make an answer trustworthy.

Missing data must never read as zero load: a query that fails, selects nothing,
ends in NaN or stopped updating raises MetricsError with a `kind` the tick turns
into "hold the current count". The checks here (series shape, odd values,
staleness) are pure, so the policy tests, the backtest and the trace replay share
them; the network call is autoscaler.metrics_prometheus.PrometheusSource, the thin
adapter around prometheus-api-client's range query.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from autoscaler.config.schema import DemandQuery
from autoscaler.kept_demand import KeptDemand
from common.durations import format_duration
from common.secrets import shorten
from predictors.history_grid import OVERLAP_STEPS, epoch_index

MetricsErrorKind = Literal[
    "unreachable", "timeout", "bad_response", "empty", "nan", "stale", "ambiguous"
]

_QUERY_SHOWN = 120  # characters of a PromQL query quoted in a message
_LATEST_UNIX_TIME = 2**33  # year 2242; later (or NaN, or before 1970) is a broken answer
_CLOCK_SLACK = timedelta(seconds=1)  # the query's end is sent rounded to the millisecond
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS_PER = {"s": 1_000_000, "ms": 1000, "us": 1}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|Inf|NaN)")


class MetricsError(Exception):
    """The demand history cannot be trusted; `kind` says why, the message says what to fix."""

    def __init__(self, kind: MetricsErrorKind, query: str, reason: str) -> None:
        self.kind: MetricsErrorKind = kind
        self.query = query
        self.reason = reason
        super().__init__(f"demand query {shorten_query(query)!r}: {reason}")


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
    values = series.to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        raise MetricsError("nan", query, "every sample in the window is NaN or infinite")
    if not finite[-1]:
        raise MetricsError(
            "nan", query, f"newest sample at {series.index[-1]:%Y-%m-%d %H:%M:%SZ} is {values[-1]}"
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
    return series if finite.all() else series[finite]


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
    stamps = series.index.asi8
    if not (stamps[1:] > stamps[:-1]).all():  # strictly increasing: nothing to sort or merge
        series = _one_value_per_time(series.sort_index(), query)
    newest_at = newest_time(series.index)
    age = as_utc(now) - newest_at
    if age < -_CLOCK_SLACK:
        raise MetricsError(
            "bad_response",
            query,
            f"sample at {newest_at:%Y-%m-%d %H:%M:%SZ} is after the query's end "
            f"({as_utc(now):%Y-%m-%d %H:%M:%SZ}); the source answered another question",
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
    source: MetricsSource,
    demand: DemandQuery,
    now: datetime,
    max_staleness: timedelta,
    kept: KeptDemand | None = None,
) -> KeptDemand:
    """The checked history a pool's forecast is fitted on (`.series`): the configured window
    up to now, on the step's own grid (`step_floor`); fresh if its newest sample is within
    `max_staleness` of the grid's last time (the newest a source can have on it).

    `kept`: this query's checked history from an earlier tick. Then only what came since
    is asked for, from OVERLAP_STEPS before its newest sample (where late samples and
    revisions land, as the forecaster's own history takes them), and the rest of the window
    is the kept one (autoscaler.kept_demand): a steady tick reads a few samples, not the
    window (14 days of minutes is 20,160 samples, three Prometheus queries, every pool
    every minute)."""
    end = step_floor(now, demand.step)
    # Whole steps back from the grid's end: Prometheus evaluates at start + k x step, so a
    # window that is no whole number of steps (1d at 25m) put every sample off the grid and
    # the newest (window mod step) before end, stale at every tick past max_staleness.
    start = end - (demand.window // demand.step) * demand.step
    ask_from = start
    if kept is not None:
        ask_from = max(start, newest_time(kept.series.index) - OVERLAP_STEPS * demand.step)
    series = source.demand(demand.query, ask_from, end, demand.step)
    if series.name != demand.query:  # a source that names it (Prometheus's) saves a copy
        series = series.rename(demand.query)
    # Judged alone, the kept part having been checked already. The range reaches back over
    # kept samples, so an empty answer is a series gone (as it is for the whole window),
    # and one that stopped is as stale as the whole window would show it.
    checked = check_demand(series, end, max_staleness)
    if kept is None or ask_from == start:
        return KeptDemand(checked)  # the next tick's join moves it into a room
    return kept.joined(checked, start, ask_from, demand.step)


def newest_time(index: pd.DatetimeIndex) -> datetime:
    """The index's newest time in UTC, to the microsecond (an earlier sub-µs time asks for
    no sample less): from its integers, without the pd.Timestamp that index[-1] builds
    (a few µs, every pool every tick)."""
    stamp, unit = int(index.asi8[-1]), index.unit
    micros = stamp // 1000 if unit == "ns" else stamp * _MICROS_PER[unit]
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError:  # past what a datetime holds: as pandas converts it
        return as_utc(index[-1].to_pydatetime(warn=False))


def step_floor(moment: datetime, step: timedelta) -> datetime:
    """`moment` down to a whole number of steps since the epoch.

    Prometheus evaluates a range at start + k x step, from a start the client rounds to the
    second: a range ending at the tick's own time (late by a few ms that vary, or an
    interval that is not a whole number of steps) gives samples at other times every tick,
    and the forecaster must rebuild its history and refit from scratch each time. Ends on
    this grid give every tick the same sample times, so it only appends the new ones.
    """
    utc = as_utc(moment)
    return utc - (utc - _EPOCH) % step  # timedelta arithmetic: exact, in whole microseconds


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
        shown = shorten_query(json_text(bad), 40)
        raise MetricsError("bad_response", query, f"a sample value {shown} is not a number")
    if not all(stamp is not None and 0 <= stamp < _LATEST_UNIX_TIME for stamp in stamps):
        raise MetricsError("bad_response", query, "a sample time is not a plausible Unix time")
    series = pd.Series(values, index=sample_times(stamps), name=query, dtype=float)
    return series if series.index.is_monotonic_increasing else series.sort_index()


def sample_times(stamps: list[float]) -> pd.DatetimeIndex:
    """`pd.to_datetime(stamps, unit="s", utc=True)`, built from integers where every time
    is a whole second, as on a range query's grid: pandas' own reading of floats was
    ~0.3 ms, a sixth of a pool's steady read."""
    seconds = np.asarray(stamps, dtype=float)
    if len(seconds) and (seconds == np.floor(seconds)).all():
        micros = seconds.astype(np.int64) * 1_000_000  # pandas' unit for whole seconds
        return epoch_index(micros, "us", UTC)
    return pd.to_datetime(stamps, unit="s", utc=True)


def _sample_number(value: Any) -> float | None:
    """A JSON number or a Prometheus number string as a float; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # a JSON integer past what a float holds
            return None
    if isinstance(value, str):
        text = value.strip()  # str.strip drops more than float() skips ("0\x1f")
        return float(text) if _NUMBER.fullmatch(text) else None
    return None


def json_text(value: Any) -> str:
    """How a value was written in the JSON answer (false, null, [0]), for a message."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


# ---- helpers shared with the Prometheus adapter ----------------------------------


def as_utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive time is refused, not guessed."""
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
    return shorten_query(f"{{{inner}}}", 80)


def shorten_query(text: str, limit: int = _QUERY_SHOWN) -> str:
    """A query (or label set) on one line, cut to `limit` characters for a message."""
    return shorten(" ".join(text.split()), limit, "...")
