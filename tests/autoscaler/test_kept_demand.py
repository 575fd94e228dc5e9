"""The kept demand history: grown in place where it can be, and always the whole window's
answer; a history once handed out never changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from autoscaler.config.schema import DemandQuery
from autoscaler.kept_demand import KeptDemand
from autoscaler.metrics import fetch_demand

NOW = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)  # Europe/Berlin's clocks go forward at 01:00 UTC
LIMIT = timedelta(minutes=5)
QUERY = "demand"
HOURS_3 = DemandQuery(query=QUERY, window=timedelta(hours=3))


class Source:
    """Demand from a series in memory, as a source answers: the asked range, anew."""

    def __init__(self, series: pd.Series) -> None:
        self.series = series

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        index = self.series.index
        return self.series[(index >= start) & (index <= end)].rename(query).copy()


def minutes(hours: float, zone: str = "UTC", unit: str = "ns", seed: int = 0) -> pd.Series:
    index = pd.date_range(end=NOW, periods=int(hours * 60), freq="1min", tz="UTC")
    values = np.random.default_rng(seed).uniform(1.0, 9.0, len(index))
    return pd.Series(values, index=index.tz_convert(zone).as_unit(unit))


@pytest.mark.parametrize(("zone", "unit"), [("UTC", "ns"), ("Europe/Berlin", "s")])
@pytest.mark.parametrize(("seed", "gaps"), [(1, 0.0), (2, 0.0), (3, 0.01)])
def test_each_tick_is_the_whole_windows_answer_and_no_history_handed_out_changes(
    zone: str, unit: str, seed: int, gaps: float
) -> None:
    """Three hours of ticks a minute apart over a series (with gaps: samples the source
    never had), samples revised in the overlap, and ticks where the newest sample is late: each
    kept history equals the whole window read anew (times in the source's own zone: the
    copying join once read UTC times as the zone's wall clock), and every history handed
    out is as it was when handed out."""
    rng = np.random.default_rng(seed)
    truth = minutes(12, zone, unit, seed)
    truth = truth.drop(truth.index[rng.random(len(truth)) < gaps])
    late = rng.random(200) < 0.1
    source = Source(truth.iloc[:-180].copy())
    kept = fetch_demand(source, HOURS_3, NOW - timedelta(hours=3), LIMIT)
    handed: list[tuple[pd.Series, pd.Series]] = []
    grown = 0
    for minute in range(1, 180):
        now = NOW - timedelta(hours=3) + timedelta(minutes=minute, seconds=3)
        lag = timedelta(minutes=1) if late[minute] else timedelta(0)
        arrived = truth[(truth.index <= now - lag) & (truth.index > source.series.index[-1])]
        source.series = pd.concat([source.series, arrived])
        if rng.random() < 0.1:  # a late scrape revises a sample in the overlap
            source.series.iloc[-int(rng.integers(1, 5))] = float(rng.uniform(1.0, 9.0))
        previous = kept
        kept = fetch_demand(source, HOURS_3, now, LIMIT, kept)
        whole = fetch_demand(source, HOURS_3, now, LIMIT).series
        pd.testing.assert_series_equal(kept.series, whole, check_freq=False)
        grown += kept.room is not None and kept.room is previous.room
        handed.append((kept.series, kept.series.copy()))
    for series, copy in handed:
        pd.testing.assert_series_equal(series, copy)
    if not gaps:  # most ticks grew the room in place (the rest: after a revision)
        assert grown > 120
    else:  # a window with a gap is joined by copying
        assert grown < 90


def regular_kept() -> tuple[Source, KeptDemand]:
    """A kept history that a first join moved into a room."""
    source = Source(minutes(6))
    first = fetch_demand(source, HOURS_3, NOW - timedelta(minutes=10), LIMIT)
    kept = fetch_demand(source, HOURS_3, NOW - timedelta(minutes=9), LIMIT, first)
    assert kept.room is not None
    return source, kept


def test_a_steady_tick_grows_the_room_in_place_and_hands_out_read_only_views() -> None:
    source, kept = regular_kept()
    grown = fetch_demand(source, HOURS_3, NOW - timedelta(minutes=8), LIMIT, kept)
    assert grown.room is kept.room and grown.lo == kept.lo + 1  # the window slid a step
    assert np.shares_memory(grown.series.to_numpy(), kept.series.to_numpy())
    with pytest.raises(ValueError, match="read-only"):
        grown.series.to_numpy()[0] = 0.0


def test_two_histories_grown_from_one_do_not_write_over_each_other() -> None:
    """An observe left behind past its deadline may join beside the next tick's, and the
    source may have revised the newest sample between them: each answer is its own."""
    source, kept = regular_kept()
    at = NOW - timedelta(minutes=8)
    one = fetch_demand(source, HOURS_3, at, LIMIT, kept)
    source.series = source.series.copy()
    source.series[at] = 123.0
    other = fetch_demand(source, HOURS_3, at, LIMIT, kept)
    assert one.series[at] != 123.0 and other.series[at] == 123.0
    assert other.room is not kept.room  # the newest step was taken: copied
    whole = fetch_demand(source, HOURS_3, at, LIMIT).series
    pd.testing.assert_series_equal(other.series, whole, check_freq=False)


def test_an_irregular_history_is_kept_as_it_is() -> None:
    """A step that is not a whole number of the index's unit, or samples off the step."""
    series = minutes(1).iloc[::2]  # every other minute, asked at one-minute steps
    assert KeptDemand.in_room(series, timedelta(minutes=1)).room is None
    assert KeptDemand.in_room(minutes(1, unit="s"), timedelta(milliseconds=1500)).room is None
    assert KeptDemand.in_room(minutes(1), timedelta(minutes=1)).room is not None
