"""The kept history grid: what many short windows add up to is what one long history gives."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from predictors.history_grid import HistoryGrid, epoch_index, epoch_ns

MINUTE_NS = 60_000_000_000


def minutes(count: int, seed: int = 0, start: str = "2025-06-02") -> pd.Series:
    rng = np.random.default_rng(seed)
    values = rng.uniform(1.0, 10.0, count)
    values[rng.integers(0, count, count // 20)] = np.nan  # samples that never came
    index = pd.date_range(start, periods=count, freq="1min", tz="UTC")
    return pd.Series(values, index=index)


def rebuilt(history: pd.Series, max_steps: int) -> HistoryGrid:
    grid = HistoryGrid(max_steps * MINUTE_NS)
    assert grid.absorb(history)
    return grid


def test_ticking_windows_keep_what_one_long_history_gives() -> None:
    """Two-hour windows a minute apart, long enough to use up the buffer's spare room
    several times (each compaction must keep every value), against a fresh build."""
    max_steps, window = 300, 120
    series = minutes(2_000)
    grid = HistoryGrid(max_steps * MINUTE_NS)
    assert grid.absorb(series.iloc[:400])
    for end in range(401, len(series) + 1):
        assert not grid.absorb(series.iloc[end - window : end])
        if end % 97 == 0 or end == len(series):
            fresh = rebuilt(series.iloc[:end], max_steps)
            assert (grid.start_ns, grid.end_ns) == (fresh.start_ns, fresh.end_ns)
            np.testing.assert_array_equal(grid.values, fresh.values)
            assert grid.valid_span_ns() == fresh.valid_span_ns()


def test_the_valid_span_follows_a_window_sliding_out_of_missing_samples() -> None:
    """A history that starts with hours of nothing: the span starts at its first value until
    the window slides past it, then at the window's start."""
    series = minutes(600, seed=3)
    series.iloc[:100] = np.nan
    series.iloc[150:160] = np.nan
    grid = rebuilt(series.iloc[:200], 120)
    for end in range(201, 400):
        grid.absorb(series.iloc[end - 30 : end])
        first_value = series.iloc[end - 121 : end].first_valid_index()
        assert grid.valid_span_ns() == int(series.index[end - 1].value - first_value.value)


def test_revised_and_late_samples_in_the_overlap_are_taken() -> None:
    series = minutes(600, seed=1)
    grid = rebuilt(series.iloc[:500], 1_000)
    revised = series.iloc[380:520].copy()
    revised.iloc[117] = 123.0  # three steps before the kept end: a source's revision
    holed = revised.drop(revised.index[130])  # and a sample that has not come yet
    assert not grid.absorb(holed)
    assert grid.values[-23] == 123.0
    assert np.isnan(grid.values[-10])
    assert grid.end_ns == int(series.index[519].value)


def test_a_gap_of_minutes_is_nan_not_the_last_value() -> None:
    series = minutes(300, seed=2)
    grid = rebuilt(series.iloc[:200], 1_000)
    assert not grid.absorb(series.iloc[210:230])  # ten minutes the source never had
    assert np.isnan(grid.values[-30:-20]).all()
    np.testing.assert_array_equal(grid.values[-20:], series.iloc[210:230].to_numpy())


def test_a_window_longer_than_the_kept_span_gives_what_a_fresh_build_gives() -> None:
    """A window that starts before the kept samples and reaches past the whole kept span,
    its newest-but-one sample missing: samples older than the grid's start are dropped (a
    negative step once wrapped to the grid's end), the missing one is NaN."""
    max_steps = 50
    series = minutes(200, seed=3)
    grid = rebuilt(series.iloc[10:13], max_steps)  # three samples kept
    window = series.iloc[:64].drop(series.index[62])  # from before them to past the span
    assert not grid.absorb(window)
    fresh = rebuilt(window, max_steps)
    np.testing.assert_array_equal(grid.values, fresh.values)
    assert np.isnan(grid.values[-2])


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_an_index_in_any_unit_gives_the_same_grid(unit: str) -> None:
    series = minutes(400, seed=4)
    expected = rebuilt(series, 1_000)
    in_unit = series.set_axis(series.index.as_unit(unit))
    np.testing.assert_array_equal(epoch_ns(in_unit.index), series.index.as_unit("ns").asi8)
    grid = rebuilt(in_unit.iloc[:300], 1_000)
    assert not grid.absorb(in_unit.iloc[250:])
    np.testing.assert_array_equal(grid.values, expected.values)


def test_a_time_beyond_what_nanoseconds_hold_is_refused_by_pandas() -> None:
    index = pd.DatetimeIndex(["2300-01-01", "2300-01-02"]).as_unit("s")
    with pytest.raises(ValueError, match=r"(?i)out of bounds"):
        epoch_ns(index)


def test_history_off_the_kept_step_rebuilds() -> None:
    series = minutes(300, seed=5)
    grid = rebuilt(series.iloc[:200], 1_000)
    shifted = series.iloc[190:210].set_axis(series.index[190:210] + pd.Timedelta(seconds=30))
    assert grid.absorb(shifted)
    assert grid.start_ns == int(shifted.index[0].value)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", None])
def test_times_come_back_in_the_history_zone_across_dst(zone: str | None) -> None:
    """Berlin's autumn DST change doubles 02:00-03:00 local: the grid's epoch times read
    back as the very instants of the history, not as Berlin wall clock."""
    index = pd.date_range("2025-10-25 20:00", periods=600, freq="1min", tz="UTC")
    history = pd.Series(1.0, index=index if zone is None else index.tz_convert(zone))
    if zone is None:
        history = history.tz_localize(None)
    grid = rebuilt(history, 1_000)
    assert grid.index_of(grid.times_ns(600)).equals(history.index)
    assert grid.future_index(3)[0] == history.index[-1] + pd.Timedelta(minutes=1)


def test_future_index_is_the_index_of_the_future_times_tick_after_tick() -> None:
    """Sliced from the times built a day at a time: right at every tick, past the day's
    end (built again), after a gap and after a rebuild on another step."""
    series = minutes(3_000, seed=6)
    grid = rebuilt(series.iloc[:100], 5_000)
    ends = [*range(121, 1_700, 7), 2_900]
    for end in ends:
        grid.absorb(series.iloc[end - 120 : end])
        for steps in (1, 11):
            expected = grid.index_of(grid.future_ns(steps))
            assert grid.future_index(steps).equals(expected)
    coarse = series.iloc[::5]
    assert grid.absorb(coarse.set_axis(coarse.index + pd.Timedelta(seconds=30)))
    assert grid.future_index(2).equals(grid.index_of(grid.future_ns(2)))
    assert grid.future_index(2)[1] - grid.future_index(2)[0] == pd.Timedelta(minutes=5)


def test_epoch_index_reads_epoch_integers_as_instants_in_any_zone() -> None:
    """Across Berlin's autumn change (its doubled hour): each integer is the same instant
    in UTC, in Berlin, and on a naive clock read as UTC."""
    instants = pd.date_range("2025-10-26 00:00", periods=4, freq="30min", tz="UTC")
    for unit in ("s", "us", "ns"):
        stamps = instants.as_unit(unit).asi8
        assert epoch_index(stamps, unit, "UTC").equals(instants)
        berlin = epoch_index(stamps, unit, ZoneInfo("Europe/Berlin"))
        assert berlin.tz_convert("UTC").equals(instants) and str(berlin.tz) == "Europe/Berlin"
        assert list(berlin.hour) == [2, 2, 2, 2]  # the doubled hour, twice
        naive = epoch_index(stamps, unit, None)
        assert naive.tz is None and naive.equals(instants.tz_localize(None))
