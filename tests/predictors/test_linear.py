"""The seed's linear-trend predictor: recovers a trend, bands it, and never forecasts < 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from predictors.linear import LinearTrendPredictor
from tests.predictors.horizons import HORIZON_STEPS

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def series(values: list[float] | np.ndarray, step: timedelta = timedelta(minutes=1)) -> pd.Series:
    index = pd.date_range(T0, periods=len(values), freq=step)
    return pd.Series(np.asarray(values, dtype=float), index=index)


def test_recovers_a_known_slope() -> None:
    history = series(10.0 + 0.5 * np.arange(60))  # +0.5 req/s every minute
    forecast = LinearTrendPredictor().fit(history).forecast(timedelta(minutes=10))
    assert forecast.point == pytest.approx(10.0 + 0.5 * np.arange(60, 70))
    assert forecast.upper == pytest.approx(forecast.point)  # a perfect line has no spread
    assert forecast.model == "linear"
    assert forecast.peak_upper() == pytest.approx(44.5)


def test_upper_band_covers_the_noise() -> None:
    rng = np.random.default_rng(7)
    history = series(50.0 + 0.2 * np.arange(60) + rng.normal(0.0, 3.0, 60))
    forecast = LinearTrendPredictor(quantile=0.9).fit(history).forecast(timedelta(minutes=15))
    assert np.all(forecast.upper >= forecast.point)
    gap = forecast.upper - forecast.point
    assert gap == pytest.approx(np.full(15, gap[0]))
    assert 1.28 * 2.0 < gap[0] < 1.28 * 4.0  # z(0.9) times a spread near 3
    slope = np.diff(forecast.point).mean()
    assert slope == pytest.approx(0.2, abs=0.1)


@pytest.mark.parametrize("quantile", [0.5, 0.2], ids=["median", "below-median"])
def test_upper_never_below_point(quantile: float) -> None:
    rng = np.random.default_rng(3)
    history = series(20.0 + rng.normal(0.0, 5.0, 60))
    forecast = LinearTrendPredictor(quantile=quantile).fit(history).forecast(timedelta(minutes=5))
    assert forecast.upper == pytest.approx(forecast.point)


@pytest.mark.parametrize(("step", "horizon", "steps"), HORIZON_STEPS)
def test_horizon_steps(step: timedelta, horizon: timedelta, steps: int) -> None:
    history = series(np.linspace(5.0, 9.0, 12), step=step)
    forecast = LinearTrendPredictor().fit(history).forecast(horizon)
    assert len(forecast.times) == len(forecast.point) == len(forecast.upper) == steps
    expected = pd.date_range(history.index[-1] + step, periods=steps, freq=step)
    assert list(forecast.times) == list(expected)


def test_falling_trend_clips_at_zero() -> None:
    history = series(30.0 - 1.0 * np.arange(30))  # reaches 0 a minute after the last sample
    forecast = LinearTrendPredictor().fit(history).forecast(timedelta(minutes=20))
    assert np.all(forecast.point >= 0.0)
    assert np.all(forecast.upper >= 0.0)
    assert forecast.point[-1] == 0.0
    assert forecast.point[0] == pytest.approx(0.0)


def test_one_sample_history_forecasts_that_level() -> None:
    history = series([7.5])
    forecast = LinearTrendPredictor().fit(history).forecast(timedelta(minutes=5))
    assert len(forecast.point) == 5  # one-minute steps when the step cannot be inferred
    assert forecast.point == pytest.approx(np.full(5, 7.5))
    assert forecast.upper == pytest.approx(forecast.point)


def test_fits_only_the_recent_window() -> None:
    old = np.full(180, 100.0)
    recent = np.full(60, 5.0)
    history = series(np.concatenate([old, recent]))
    predictor = LinearTrendPredictor(window=timedelta(minutes=60))
    forecast = predictor.fit(history).forecast(timedelta(minutes=5))
    assert forecast.point == pytest.approx(np.full(5, 5.0))


def test_missing_samples_are_skipped_not_read_as_zero() -> None:
    values = 10.0 + 0.5 * np.arange(60)
    values[[5, 20, 40]] = np.nan
    forecast = LinearTrendPredictor().fit(series(values)).forecast(timedelta(minutes=3))
    assert forecast.point == pytest.approx(10.0 + 0.5 * np.arange(60, 63))


@pytest.mark.parametrize(
    "values", [pytest.param([], id="empty"), pytest.param([np.nan, np.nan], id="all-nan")]
)
def test_no_observations_is_a_value_error(values: list[float]) -> None:
    with pytest.raises(ValueError, match="at least one observation"):
        LinearTrendPredictor().fit(series(values))
