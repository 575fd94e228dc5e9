"""Level features: the residual means at an origin, and the seasonal lags, which never
read past it."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.level import (
    centred_means,
    level_features,
    level_features_at,
    level_kernels,
    season_features,
)

DAY = 1440


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
