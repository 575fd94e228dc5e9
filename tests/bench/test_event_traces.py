"""bench/event_traces.py: a season of scheduled events, the same at every run, read as a trace."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from autoscaler.backtest.runner import load_trace
from tests.bench.test_smooth_traces import _bench_module

events = _bench_module("event_traces")


def test_the_season_is_written_alike_at_every_run_and_read_back_whole(tmp_path: Path) -> None:
    written = []
    for run in ("first", "again"):
        (tmp_path / run).mkdir()
        written += events.write_event_traces(tmp_path / run)
    names = ["synthetic_sports.csv", "synthetic_office.csv"]
    assert [p.name for p in written] == names * 2
    for path, days in zip(written[:2], (events.DAYS, events.OFFICE_DAYS), strict=True):
        assert path.read_bytes() == (path.parents[1] / "again" / path.name).read_bytes()
        trace = load_trace(path)
        assert len(trace) == days * 1440 and not trace.isna().any()


def test_matches_stand_far_above_the_ordinary_day_none_in_the_breaks_the_final_highest() -> None:
    """Each day's busiest hour against the season's ordinary evening (the median of those
    peaks over the days without a match): matches lift some days well above it, the
    breaks have none, and the final on the last Sunday is the season's busiest hour."""
    counts = events.event_counts()
    hourly = counts.resample("1h").mean()
    peaks = hourly.groupby(hourly.index.floor("D")).max()
    day = (peaks.index - pd.Timestamp(events.START, tz="UTC")).days
    in_break = pd.Series(False, index=peaks.index)
    for first, last in events.BREAKS:
        in_break |= (day >= first) & (day <= last)
    ordinary = float(peaks[in_break].median())
    assert float(peaks[in_break].max()) < 1.5 * ordinary
    match_days = peaks[~in_break] > 2.0 * ordinary
    assert 10 <= int(match_days.sum()) <= 40  # 19 of the 64 days outside the breaks
    sundays = peaks.index[(peaks.index.day_of_week == 6) & (day < events.DAYS - 1)]
    assert peaks.idxmax() == sundays[-1]  # the final
    assert float(peaks.max()) > 1.3 * float(peaks.drop(peaks.idxmax()).max())


def test_office_hours_stop_for_weekends_and_for_the_week_off() -> None:
    """Weekday office hours stand far above the night; weekends and the week off do not,
    and the Monday after the week off is back at a working Monday's level."""
    counts = events.office_counts()
    days = counts.resample("1D").sum()
    number = (days.index - pd.Timestamp(events.OFFICE_START, tz="UTC")).days
    off = (number >= events.WEEK_OFF[0]) & (number < events.WEEK_OFF[1])
    working = days[(days.index.day_of_week < 5) & ~off]
    assert float(days[off].max()) < 0.5 * float(working.min())
    assert float(days[days.index.day_of_week >= 5].max()) < 0.5 * float(working.min())
    back = days[number == events.WEEK_OFF[1]]
    assert back.index[0].day_of_week == 0 and float(back.iloc[0]) > 0.8 * float(working.median())
    hours = counts.groupby(counts.index.hour).mean()
    assert float(hours.max()) > 5.0 * float(hours.min())
