"""Level features: the residual means at an origin, and the seasonal lags, which never
read past it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictors.level import (
    centred_means,
    history_season_lags,
    level_features,
    level_features_at,
    level_kernels,
    season_features,
    season_lag_steps,
)

DAY = 1440
WEEK = 7 * DAY
MINUTE_NS = 60 * 10**9


def test_centred_means_skip_missing_samples() -> None:
    values = np.array([1.0, np.nan, 3.0, 5.0, np.nan, np.nan, np.nan])
    means = centred_means(values, 3)
    assert means[0] == pytest.approx(1.0)  # [-1, 2): only the 1.0 is there
    assert means[2] == pytest.approx(4.0)  # 1: NaN, 2: 3.0, 3: 5.0
    assert np.isnan(means[5])  # nothing finite around it


def test_season_features_never_reach_past_the_origin() -> None:
    kernels = level_kernels(60.0)
    smoothed = np.arange(3 * DAY, dtype=float)
    origin = 2 * DAY + 100
    lead_day_ago = np.array([[origin + 5]])  # a day before: long past
    got = season_features(smoothed, lead_day_ago, np.array([[origin]]), kernels)
    assert got[0, 0, 0] == smoothed[origin + 5 - DAY]
    assert got[0, 0, 1] == 0.0  # a week before the start: unknown, no news
    # A day-lag whose smoothing window would read samples after the origin: not used.
    too_close = np.array([[origin + DAY - 2]])
    assert season_features(smoothed, too_close, np.array([[origin]]), kernels)[0, 0, 0] == 0.0


def test_level_features_at_some_steps_are_those_of_their_windows() -> None:
    """The recursive filters read at a few steps give the weighted means of the windows
    ending there (NaN where a sample is missing; a window before the start padded with
    NaN), as level_features computes them from the windows themselves."""
    kernels = level_kernels(60.0)
    rng = np.random.default_rng(8)
    residual = rng.normal(0.0, 5.0, 3 * kernels.window) + np.linspace(
        -20.0, 20.0, 3 * kernels.window
    )
    residual[rng.random(len(residual)) < 0.1] = np.nan
    at = np.array(
        [0, 5, kernels.window - 1, kernels.window, 2 * kernels.window + 7, len(residual) - 1]
    )
    padded = np.concatenate((np.full(kernels.window - 1, np.nan), residual))
    windows = np.stack([padded[i : i + kernels.window] for i in at])
    expected = level_features(windows, kernels)
    np.testing.assert_allclose(
        level_features_at(residual, at, kernels), expected, rtol=1e-9, atol=1e-9
    )


def _minutes(first: str, last: str) -> np.ndarray:
    return pd.date_range(first, last, freq="1min", tz="UTC").as_unit("ns").asi8


@pytest.mark.parametrize(
    ("target", "day_lag", "week_lag"),
    [
        # Berlin went forward 2025-03-30 02:00 CET -> 03:00 CEST: 02:30 that day never was,
        # so a day before 02:30 CEST on the 31st is the jump (as schedules read it).
        ("2025-03-31 00:30", DAY - 30, WEEK - 60),
        ("2025-03-31 02:00", DAY, WEEK - 60),  # 04:00 CEST: a day before, 04:00 CEST
        ("2025-03-30 10:00", DAY - 60, WEEK - 60),  # noon CEST: the day before at CET
        # Back 2025-10-26 03:00 CEST -> 02:00 CET: 02:30 was twice; the first is taken.
        ("2025-10-27 01:30", DAY + 60, WEEK + 60),  # 02:30 CET -> 02:30 CEST the 26th
        ("2025-10-26 01:30", DAY + 60, WEEK + 60),  # the second 02:30 -> 02:30 CEST the 25th
        ("2025-10-26 00:30", DAY, WEEK),  # the first 02:30: no change since a week before
    ],
)
def test_season_lags_read_the_same_local_time_a_day_and_a_week_before(
    target: str, day_lag: int, week_lag: int
) -> None:
    """In steps back from the target (UTC), for Europe/Berlin and 1-minute steps."""
    times = _minutes("2025-03-20", "2025-04-05") if "-03-" in target else None
    times = _minutes("2025-10-15", "2025-11-01") if times is None else times
    lags = season_lag_steps(times, "Europe/Berlin", MINUTE_NS, level_kernels(60.0))
    assert lags is not None
    at = int(np.searchsorted(times, pd.Timestamp(target, tz="UTC").value))
    assert lags[at].tolist() == [day_lag, week_lag]


@pytest.mark.parametrize(
    ("timezone", "first", "last"),
    [
        ("UTC", "2025-03-20", "2025-04-05"),
        ("Europe/Berlin", "2025-06-01", "2025-06-20"),  # no change within a week before
        ("Asia/Kolkata", "2025-03-20", "2025-11-01"),  # no DST at all
    ],
)
def test_season_lags_without_a_clock_change_are_the_fixed_ones(
    timezone: str, first: str, last: str
) -> None:
    """The fast path: none (season_features then takes a day and a week of steps, as
    before local lags), where the offset holds from a week before the first time."""
    kernels = level_kernels(60.0)
    assert season_lag_steps(_minutes(first, last), timezone, MINUTE_NS, kernels) is None
    start = pd.Timestamp(first, tz="UTC").value
    lags, ahead = history_season_lags(start, 14 * DAY, MINUTE_NS, timezone, kernels)
    assert lags is None and ahead.lags is None and ahead.longest == WEEK


def test_a_refit_after_the_clocks_go_back_keeps_a_week_and_an_hour_and_the_days_lags() -> None:
    """A refit just after the autumn change: the forecasts until the next one read a week
    before in local time, a week and an hour of real time; they read the lags the refit
    computed for the day after it, and beyond that day compute them, the same either way."""
    kernels = level_kernels(60.0)
    start = pd.Timestamp("2025-10-13", tz="UTC").value
    lags, ahead = history_season_lags(start, 14 * DAY, MINUTE_NS, "Europe/Berlin", kernels)
    assert lags is not None and lags.shape == (14 * DAY, 2)
    assert ahead.longest == WEEK + 60
    for first_step in (1, DAY - 30):  # within the day, and reaching past it
        future = ahead.from_ns + np.arange(first_step, first_step + 60) * MINUTE_NS
        expected = season_lag_steps(future, "Europe/Berlin", MINUTE_NS, kernels)
        np.testing.assert_array_equal(ahead.of(future), expected)
