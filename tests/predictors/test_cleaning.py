"""Repair and windowed means: the per-tick shortcuts give the very floats of the full rules."""

from __future__ import annotations

import numpy as np
import pytest

import predictors.cleaning as cleaning
from predictors.cleaning import newest_window_mean, repair, window_means
from predictors.quantiles import newest_volatility, relative_volatility


def noisy(length: int, seed: int, *, low: float = 0.0) -> np.ndarray:
    """Demand-like samples with holes, a negative value, zeros and an infinity."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(2.0, 1.0, length) + low
    values[rng.integers(0, length, max(1, length // 10))] = np.nan
    if length > 20:
        values[[3, 7, 8, 15]] = [-1.0, 0.0, 0.0, np.inf]
    return values


def same_floats(got: np.ndarray, expected: np.ndarray) -> bool:
    """Bit for bit, NaN where NaN."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    return got.shape == expected.shape and bool(
        np.all((got == expected) | (np.isnan(got) & np.isnan(expected)))
    )


@pytest.mark.parametrize("seed", range(6))
def test_window_means_are_the_means_of_the_finite_samples_in_each_window(seed: int) -> None:
    values = noisy(200, seed)
    values[~np.isfinite(values)] = np.nan
    before, after = 7, 3
    means = window_means(values, before, after)
    for i in range(len(values)):
        window = values[max(i - before, 0) : min(i + after, len(values))]
        if np.isfinite(window).any():
            assert means[i] == pytest.approx(np.nanmean(window), rel=1e-12)
        else:
            assert np.isnan(means[i])


@pytest.mark.parametrize("length", [1, 2, 5, 61, 300])
@pytest.mark.parametrize("window", [1, 2, 60, 400])
def test_the_newest_window_mean_is_window_means_at_the_last_index(length, window) -> None:
    for seed in range(5):
        values = noisy(length, seed)
        expected = window_means(values, window - 1, 1, np.array([length - 1]))[0]
        assert same_floats(newest_window_mean(values, window), expected)
    assert np.isnan(newest_window_mean(np.full(length, np.nan), window))


@pytest.mark.parametrize("length", [1, 2, 30, 61, 200])
def test_the_newest_volatility_is_relative_volatility_at_the_last_index(length) -> None:
    for seed in range(5):
        values = noisy(length, seed, low=0.5)
        for window, offset in ((60, 0.3), (2, 1e-9), (500, 2.0)):
            expected = relative_volatility(values, np.array([length - 1]), window, offset)[0]
            assert same_floats(newest_volatility(values, window, offset), expected)


def test_repair_skips_the_level_only_where_no_dip_can_be(monkeypatch) -> None:
    """The shortcut (the level only at samples near 0, none where nothing is) never changes
    the repair: each series repaired with the level computed at every sample, including
    samples right at or just above the dip threshold of the series' highest, and series
    with nothing near 0."""
    shortcuts = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        values = noisy(500, seed, low=float(rng.choice([0.0, 5.0, 50.0])))
        if seed % 2:
            values[[7, 8]] = values[9]  # no zeros: the shortcut's case where the rest is high
        top = np.max(values[np.isfinite(values)])
        near = cleaning.DIP_FRACTION * top * rng.choice([0.999, 1.0, 1.001, 1.1])
        if seed % 3:
            values[rng.integers(0, 500, 3)] = near
        finite = np.isfinite(values) & (values >= 0)
        shortcuts += not len(cleaning._dip_candidates(np.where(finite, values, np.nan)))
        shortcut = repair(values, 60, 30, sparse=False)
        with monkeypatch.context() as patch:
            patch.setattr(cleaning, "_dip_candidates", lambda repaired: np.arange(len(repaired)))
            assert same_floats(shortcut, repair(values, 60, 30, sparse=False))
    assert 5 <= shortcuts <= 35  # both paths were taken


def test_a_short_dip_to_zero_in_a_busy_series_is_repaired_to_nan() -> None:
    values = np.full(200, 100.0)
    values[150:153] = 0.0
    repaired = repair(values, 60, 30, sparse=False)
    assert np.isnan(repaired[150:153]).all()
    assert np.isfinite(np.delete(repaired, [150, 151, 152])).all()


def test_dips_one_sample_apart_are_each_repaired_and_a_long_one_is_kept() -> None:
    values = np.full(400, 100.0)
    values[150:153] = 0.0  # short
    values[154:156] = 0.0  # short, right after one busy sample
    values[250:290] = 0.0  # longer than 30 steps: an outage, real
    repaired = repair(values, 60, 30, sparse=False)
    assert np.isnan(repaired[150:153]).all() and np.isnan(repaired[154:156]).all()
    assert repaired[153] == 100.0
    np.testing.assert_array_equal(repaired[250:290], 0.0)
    assert np.isfinite(np.delete(repaired, [150, 151, 152, 154, 155])).all()
