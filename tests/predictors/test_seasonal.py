"""The seasonal predictor: learns the clock, follows the level, bands its own errors,
survives real data, and stays cheap when fitted every tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from predictors import make_predictor
from predictors.linear import LinearTrendPredictor
from predictors.quantiles import MIN_ORIGINS
from predictors.seasonal import SeasonalPredictor
from tests.predictors.horizons import HORIZON_STEPS
from tests.support import late_share_above

MONDAY = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)
HORIZON = timedelta(minutes=30)


def clock_rate(times: pd.DatetimeIndex, base: float = 50.0, timezone: str = "UTC") -> np.ndarray:
    """Office hours in local time: opens about 08:30, a lunch dip, closes about 18:30,
    a fifth of the traffic at night; weekends at half of weekdays."""
    local = times.tz_convert(timezone)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    opened = 1.0 / (1.0 + np.exp(-(hour - 8.5) * 4.0)) - 1.0 / (1.0 + np.exp(-(hour - 18.5) * 4.0))
    lunch = 0.2 * np.exp(-(((hour - 12.5) / 0.5) ** 2))
    daily = 0.2 + 0.8 * opened - lunch
    weekly = np.where(local.day_of_week.to_numpy() >= 5, 0.5, 1.0)
    return base * daily * weekly


def synthetic(
    days: float,
    noise: str = "none",
    seed: int = 0,
    start: datetime = MONDAY,
    timezone: str = "UTC",
    base: float = 50.0,
) -> pd.Series:
    index = pd.date_range(start, periods=int(days * 1440), freq="1min")
    rate = clock_rate(index, base, timezone)
    rng = np.random.default_rng(seed)
    if noise == "poisson":
        rate = rng.poisson(rate * 60.0) / 60.0  # requests per minute, read as req/s
    elif noise == "gauss":
        rate = rate + rng.normal(0.0, 2.0, len(rate))
    return pd.Series(np.maximum(rate, 0.0), index=index)


def forecast_errors(
    predictor_factory, series: pd.Series, truth: pd.Series, origins: range
) -> np.ndarray:
    """Absolute errors of the point forecasts against the noise-free rate."""
    errors = []
    for origin in origins:
        forecast = predictor_factory().fit(series.iloc[: origin + 1]).forecast(HORIZON)
        actual = truth.iloc[origin + 1 : origin + 1 + len(forecast.point)].to_numpy()
        errors.append(np.abs(actual - forecast.point))
    return np.concatenate(errors)


def test_recovers_daily_and_weekly_shape_better_than_linear() -> None:
    series, truth = synthetic(17, noise="gauss"), synthetic(17)
    start = 14 * 1440  # a Monday: the weekend-to-weekday jump needs the weekly shape
    origins = range(start, start + 3 * 1440 - 60, 97)
    seasonal = forecast_errors(SeasonalPredictor, series, truth, origins)
    linear = forecast_errors(LinearTrendPredictor, series, truth, origins)
    assert np.mean(seasonal) < 0.4 * np.mean(linear)
    assert np.mean(seasonal) < 1.0  # noise sd 2, level 10 to 50: close to the true rate


def test_upper_keeps_the_late_share_near_the_service_target() -> None:
    """With no latency slack every request above the band is late, so the band is the
    error quantile; with a 3 s target small overshoots queue within it, and the band may be
    narrower for the same late share."""
    series = synthetic(18, noise="poisson", seed=3)
    bands = {}
    for target, latency_s in ((0.01, 0.0), (0.05, 0.0), (0.01, 3.0)):
        predictor = SeasonalPredictor(service_target=target, latency_target_s=latency_s)
        actuals, uppers, gap = [], [], []
        for origin in range(14 * 1440, 18 * 1440 - 31, 31):
            forecast = predictor.fit(series.iloc[: origin + 1]).forecast(HORIZON)
            actuals.append(series.iloc[origin + 1 : origin + 31].to_numpy())
            uppers.append(forecast.upper)
            assert np.all(forecast.upper >= forecast.point)
            gap.append(forecast.upper - forecast.point)
        actual, upper = np.concatenate(actuals), np.concatenate(uppers)
        late = float(late_share_above(upper, actual, actual, latency_s / 60.0))
        assert late <= 3 * target, f"target {target}: {late:.3%} of requests late"
        if latency_s == 0.0:
            share = float(np.mean(actual > upper))
            assert share <= 3 * target and (share >= target / 10 or target == 0.01)
        bands[target, latency_s] = float(np.mean(np.concatenate(gap)))
        assert "replayed forecasts" in " ".join(forecast.notes)
    assert bands[0.01, 0.0] > bands[0.05, 0.0] > 0.0
    assert 0.0 < bands[0.01, 3.0] < bands[0.01, 0.0]


def test_short_history_falls_back_to_linear_and_says_so() -> None:
    series = synthetic(0.25, noise="gauss")
    forecast = SeasonalPredictor().fit(series).forecast(HORIZON)
    assert forecast.model == "seasonal (linear fallback)"
    assert any("short history" in note for note in forecast.notes)
    assert any("residual spread" in note for note in forecast.notes)
    assert len(forecast.point) == 30
    assert np.all(forecast.upper >= forecast.point) and np.all(forecast.point >= 0.0)


def test_a_bit_over_min_history_uses_the_spread_band_until_errors_exist() -> None:
    series = synthetic(0.55, noise="gauss")
    forecast = SeasonalPredictor(min_history=timedelta(hours=12)).fit(series).forecast(HORIZON)
    assert forecast.model == "seasonal"
    assert any("residual spread" in note for note in forecast.notes)
    assert any("daily (weekly after" in note for note in forecast.notes)


def test_gaps_nan_zeros_and_counter_resets() -> None:
    series = synthetic(10, noise="gauss")
    clean_forecast = SeasonalPredictor().fit(series).forecast(HORIZON)
    broken = series.copy()
    broken.iloc[1000:1400] = np.nan  # a scrape outage
    broken.iloc[5000:5003] = 0.0  # counter reset: a drop to 0 and back
    broken.iloc[-4:-1] = 0.0  # another one just now (newest sample is back)
    broken.iloc[8000:8002] = np.inf
    broken = broken.drop(broken.index[3000:3100])  # a hole in the index itself
    forecast = SeasonalPredictor().fit(broken).forecast(HORIZON)
    for values in (forecast.point, forecast.upper):
        assert np.all(np.isfinite(values)) and np.all(values >= 0.0)
    assert forecast.point == pytest.approx(clean_forecast.point, rel=0.05)


def test_ongoing_dip_to_zero_holds_the_level_but_a_long_outage_is_followed() -> None:
    series = synthetic(10, noise="gauss")
    level_now = float(series.iloc[-1])
    dipping = series.copy()
    dipping.iloc[-10:] = 0.0  # ten minutes of zeros: probably a reset, do not drop the fleet
    forecast = SeasonalPredictor().fit(dipping).forecast(HORIZON)
    assert forecast.point[0] > 0.7 * level_now
    gone = series.copy()
    gone.iloc[-120:] = 0.0  # two hours of nothing: the traffic is really gone
    forecast = SeasonalPredictor().fit(gone).forecast(HORIZON)
    assert forecast.point[0] < 0.2 * level_now


def test_sparse_traffic_is_never_negative_and_the_band_sees_bursts() -> None:
    rng = np.random.default_rng(5)
    index = pd.date_range(MONDAY, periods=15 * 1440, freq="1min")
    rate = clock_rate(index, base=0.5 / 60)  # about 0.5 requests a minute
    counts = rng.poisson(rate * 60.0) * rng.integers(1, 4, len(index))
    series = pd.Series(counts / 60.0, index=index)
    assert (series == 0).mean() > 0.5
    predictor = SeasonalPredictor()
    for origin in range(14 * 1440, 15 * 1440 - 30, 120):
        forecast = predictor.fit(series.iloc[: origin + 1]).forecast(HORIZON)
        assert np.all(forecast.point >= 0.0)
        assert np.all(forecast.upper >= 1.0 / 60)  # room for at least a request a minute
        assert any("sparse" in note for note in forecast.notes)


def test_level_shift_is_followed_within_an_hour() -> None:
    series = synthetic(15, noise="gauss")
    shift_at = 14 * 1440 + 600
    shifted = series.copy()
    shifted.iloc[shift_at:] *= 2.0  # a campaign doubles traffic from 10:00
    predictor = SeasonalPredictor()
    for origin in range(shift_at - 120, shift_at + 61, 5):  # the daemon ticks through it
        forecast = predictor.fit(shifted.iloc[: origin + 1]).forecast(HORIZON)
    actual = shifted.iloc[shift_at + 61 : shift_at + 91].to_numpy()
    assert np.abs(forecast.point / actual - 1.0).mean() < 0.1
    assert np.all(forecast.upper >= 0.95 * actual)
    assert any("level shift" in note for note in forecast.notes)


def test_timezone_keeps_the_local_shape_across_dst() -> None:
    zone = "America/New_York"
    start = datetime(2025, 2, 24, 5, 0, tzinfo=UTC)  # spring forward on 2025-03-09
    series = synthetic(19, noise="gauss", start=start, timezone=zone)
    history = series.iloc[: 18 * 1440]  # ends 2025-03-14, five days after the change
    day = timedelta(hours=24)
    local_peak = SeasonalPredictor(timezone=zone).fit(history).forecast(day)
    utc_peak = SeasonalPredictor().fit(history).forecast(day)
    truth = series.iloc[18 * 1440 : 19 * 1440].to_numpy()
    half = 0.5 * (local_peak.point.max() + local_peak.point.min())
    opens = local_peak.times[int(np.argmax(local_peak.point > half))].astimezone(ZoneInfo(zone))
    assert abs(opens.hour + opens.minute / 60 - 8.5) < 0.5  # opens at 08:30 local
    local_error = np.mean(np.abs(local_peak.point - truth))
    utc_error = np.mean(np.abs(utc_peak.point - truth))
    assert local_error < 0.7 * utc_error


@pytest.mark.parametrize(
    ("phase", "refit_minutes"),
    [(0.0, [0, 60, 120]), (0.5, [0, 30, 90, 150]), (0.99, [0, 1, 61, 121])],
)
def test_ticking_fits_are_cheap_and_match_a_fresh_fit_at_refits(
    phase: float, refit_minutes: list[int]
) -> None:
    """The first fit, then one refit per hour of data; the second comes `refit_phase` of
    the hour sooner (the staggering), and each refit's forecast is a fresh fit's."""
    series = synthetic(16, noise="poisson", seed=1)
    start = 14 * 1440
    predictor = SeasonalPredictor(refit_every=timedelta(hours=1), refit_phase=phase)
    fits_before, refits = 0, []
    for origin in range(start, start + 180):  # three hours of one-minute ticks
        ticked = predictor.fit(series.iloc[: origin + 1]).forecast(HORIZON)
        if predictor.heavy_fits > fits_before:
            fits_before = predictor.heavy_fits
            # The first is a fresh start's quick fit, the next ones full refits.
            fresh = SeasonalPredictor(quick_first_fit=origin == start)
            fresh = fresh.fit(series.iloc[: origin + 1]).forecast(HORIZON)
            np.testing.assert_allclose(ticked.point, fresh.point, rtol=1e-9)
            np.testing.assert_allclose(ticked.upper, fresh.upper, rtol=1e-9)
            refits.append(origin - start)
    assert refits == refit_minutes
    assert predictor.heavy_fits == len(refit_minutes)


def test_a_fresh_start_replays_quickly_says_so_and_replays_fully_on_its_phase() -> None:
    """After a fresh start the band is learned on a coarser replay (fewer origins over
    the same week, at least MIN_ORIGINS) and says it is provisional; the refit that the
    pool's phase brings (here half an hour later) replays fully: from then on the forecast
    is exactly a full fit's, and no longer provisional."""
    series = synthetic(16, noise="poisson", seed=4)
    start = 14 * 1440
    predictor = SeasonalPredictor(refit_phase=0.5)
    quick = predictor.fit(series.iloc[: start + 1]).forecast(HORIZON)
    full = SeasonalPredictor(quick_first_fit=False).fit(series.iloc[: start + 1])
    full_forecast = full.forecast(HORIZON)
    quick_origins, full_origins = replayed_origins(quick), replayed_origins(full_forecast)
    assert MIN_ORIGINS <= quick_origins <= full_origins / 3
    assert any("band provisional" in note for note in quick.notes)
    assert not any("provisional" in note for note in full_forecast.notes)
    # A provisional band is still a replayed quantile: near the full one, not a guess.
    assert np.mean(np.abs(quick.point / full_forecast.point - 1)) < 0.1
    headroom = np.mean(quick.upper - quick.point) / np.mean(
        full_forecast.upper - full_forecast.point
    )
    assert 0.75 < headroom < 1.5
    for origin in range(start + 1, start + 31):
        window = series.iloc[origin - 120 : origin + 1]  # the daemon's 2 h query window
        ticked = predictor.fit(window).forecast(HORIZON)
        assert predictor.heavy_fits == (1 if origin < start + 30 else 2)
        if origin < start + 30:
            assert any("band provisional" in note for note in ticked.notes)
    reference = SeasonalPredictor(quick_first_fit=False).fit(series.iloc[: start + 31])
    after = reference.forecast(HORIZON)
    assert not any("provisional" in note for note in ticked.notes)
    assert replayed_origins(ticked) == full_origins
    np.testing.assert_allclose(ticked.point, after.point, rtol=1e-9)
    np.testing.assert_allclose(ticked.upper, after.upper, rtol=1e-9)


def test_a_longer_horizon_between_refits_is_a_fresh_fits_forecast() -> None:
    """The refit's replay is let go once the band is learned (half a pool's memory); a
    longer horizon asked later replays the history kept, as a fresh fit would."""
    series = synthetic(16, noise="poisson", seed=5)
    start = 14 * 1440
    predictor = SeasonalPredictor(refit_phase=0.5)
    predictor.fit(series.iloc[: start + 1]).forecast(HORIZON)
    predictor.fit(series.iloc[: start + 6]).forecast(HORIZON)
    longer = predictor.fit(series.iloc[: start + 6]).forecast(2 * HORIZON)
    fresh = SeasonalPredictor().fit(series.iloc[: start + 6]).forecast(2 * HORIZON)
    assert len(longer.point) == len(fresh.point) == 60
    np.testing.assert_allclose(longer.point, fresh.point, rtol=1e-9)
    np.testing.assert_allclose(longer.upper, fresh.upper, rtol=1e-9)
    again = predictor.fit(series.iloc[: start + 7]).forecast(HORIZON)
    assert len(again.point) == 30 and np.all(np.isfinite(again.upper))


def replayed_origins(forecast) -> int:
    """The replayed forecasts the band was learned on, as its note says."""
    note = next(note for note in forecast.notes if note.startswith("band: at most"))
    return int(note.split(" on ")[1].split()[0])


def test_pools_started_together_with_spread_phases_refit_on_different_ticks() -> None:
    series = synthetic(15, noise="gauss", seed=2)
    start, pools = 14 * 1440, 6
    predictors = [SeasonalPredictor(refit_phase=k / pools) for k in range(pools)]
    refits_per_tick = []
    for origin in range(start, start + 121):  # two hours of ticks on a 2 h query window
        window = series.iloc[origin - 120 : origin + 1]
        before = sum(p.heavy_fits for p in predictors)
        for predictor in predictors:
            predictor.fit(series.iloc[: origin + 1] if origin == start else window)
        refits_per_tick.append(sum(p.heavy_fits for p in predictors) - before)
    assert refits_per_tick[0] == pools  # a fresh start fits every pool
    assert max(refits_per_tick[1:]) == 1  # then no two on the same tick
    assert sum(refits_per_tick[1:]) == 2 * pools  # and each still refits once an hour


def test_it_says_ahead_which_fits_are_heavy() -> None:
    """heavy_fit_due(end) before each fit (the daemon sends those to its fit workers) is
    whether that fit refits: from the short history's fallback to its first seasonal fit,
    then each hourly refit on the pool's phase; a fresh predictor's first fit may be."""
    series = synthetic(1.5, noise="gauss", seed=3)
    predictor = SeasonalPredictor(refit_phase=0.3)
    assert predictor.heavy_fit_due(series.index[-1].to_pydatetime())
    first = 1440 - 90  # 22.5 h: short of min_history (a day), the linear fallback
    predictor.fit(series.iloc[: first + 1])
    said, refitted = [], []
    for origin in range(first + 1, first + 300):  # past a day, then about 3.5 h of ticks
        before = predictor.heavy_fits
        said.append(predictor.heavy_fit_due(series.index[origin].to_pydatetime()))
        predictor.fit(series.iloc[origin - 120 : origin + 1])  # a 2 h query window
        refitted.append(predictor.heavy_fits > before)
    assert said == refitted
    assert sum(refitted) == 4  # the first seasonal fit (quick), on its phase, then hourly


def test_a_short_query_window_still_builds_a_seasonal_model() -> None:
    series = synthetic(3, noise="gauss")
    predictor = SeasonalPredictor()
    window = 120
    for origin in range(window, len(series), 30):  # the daemon's default 2 h window
        forecast = predictor.fit(series.iloc[origin - window : origin + 1]).forecast(HORIZON)
    assert forecast.model == "seasonal"
    assert predictor.heavy_fits < 3 * 24  # about one an hour once past min_history


def test_history_that_does_not_continue_the_kept_one_is_a_fresh_start() -> None:
    one = synthetic(3, noise="gauss")
    other = synthetic(3, noise="gauss", base=500.0, start=MONDAY - timedelta(days=30))
    predictor = SeasonalPredictor()
    predictor.fit(one)
    forecast = predictor.fit(other).forecast(HORIZON)  # time went back: another series
    fresh = SeasonalPredictor().fit(other).forecast(HORIZON)
    np.testing.assert_allclose(forecast.point, fresh.point)


def test_never_reads_the_future() -> None:
    series = synthetic(9, noise="gauss")
    cut = 8 * 1440 + 333
    altered = series.copy()
    altered.iloc[cut + 1 :] *= 5.0
    one = SeasonalPredictor().fit(series.iloc[: cut + 1]).forecast(HORIZON)
    two = SeasonalPredictor().fit(altered.iloc[: cut + 1]).forecast(HORIZON)
    np.testing.assert_array_equal(one.point, two.point)
    np.testing.assert_array_equal(one.upper, two.upper)
    assert one.times[0] == series.index[cut + 1]


@pytest.mark.parametrize(("step", "horizon", "steps"), HORIZON_STEPS)
def test_horizon_steps(step: timedelta, horizon: timedelta, steps: int) -> None:
    periods = int(timedelta(days=2) / step)
    index = pd.date_range(MONDAY, periods=periods, freq=step)
    history = pd.Series(clock_rate(index), index=index)
    forecast = SeasonalPredictor().fit(history).forecast(horizon)
    assert forecast.model == "seasonal"
    assert len(forecast.times) == len(forecast.point) == len(forecast.upper) == steps
    expected = pd.date_range(index[-1] + step, periods=steps, freq=step)
    assert list(forecast.times) == list(expected)
    truth = clock_rate(expected)
    assert forecast.point == pytest.approx(truth, rel=0.05)


def test_registered_and_built_from_config_params() -> None:
    predictor = make_predictor(
        "seasonal", {"refit_every": "30m", "max_history": "21d", "timezone": "Europe/Paris"}
    )
    assert isinstance(predictor, SeasonalPredictor)
    assert predictor.refit_every == timedelta(minutes=30)
    assert predictor.max_history == timedelta(days=21)
    with pytest.raises(ValueError, match="seasonal"):
        make_predictor("seasonal", {"service_level": 0.99})
    with pytest.raises(ValueError, match="service_target"):
        make_predictor("seasonal", {"service_target": 1.5})
    with pytest.raises(ValueError, match="Mars"):  # not ZoneInfoNotFoundError, a KeyError
        make_predictor("seasonal", {"timezone": "Mars/Olympus"})
    assert make_predictor("seasonal", {"refit_phase": 0.25}).refit_phase == 0.25
    for phase in (1.0, -0.1, "soon"):
        with pytest.raises(ValueError, match=r"params\.refit_phase"):
            make_predictor("seasonal", {"refit_phase": phase})
    with pytest.raises(ValueError, match="refit_phase"):
        SeasonalPredictor(refit_phase=1.0)
    assert make_predictor("seasonal", {"quick_first_fit": False}).quick_first_fit is False
    assert SeasonalPredictor().quick_first_fit is True
    with pytest.raises(ValueError, match=r"params\.quick_first_fit"):
        make_predictor("seasonal", {"quick_first_fit": "maybe"})


def test_a_boolean_is_no_number_of_a_parameter() -> None:
    """YAML reads yes/no/on as booleans, which pydantic took as 1 and 0: `latency_target_s:
    yes` was a 1 s target, `weekly_harmonics: no` no weekly shape, and validate said ok."""
    for name, value in (
        ("latency_target_s", True),
        ("weekly_harmonics", False),
        ("daily_harmonics", True),
        ("refit_phase", False),
    ):
        with pytest.raises(ValueError, match=rf"params\.{name}: expected a number, not a boolean"):
            make_predictor("seasonal", {name: value})
    with pytest.raises(ValueError, match=r"params\.quantile: expected a number"):
        make_predictor("linear", {"quantile": True})
    assert make_predictor("seasonal", {"weekly_harmonics": 0}).weekly_harmonics == 0


def test_a_min_history_past_the_history_kept_is_refused() -> None:
    """min_history 21d over the 14d kept: the pool ran the linear fallback for good, its
    every decision saying 'short history (14.0d of data, seasonal needs 21.0d)'."""
    with pytest.raises(ValueError, match="params: min_history is more than max_history"):
        make_predictor("seasonal", {"min_history": "21d"})
    assert make_predictor("seasonal", {"min_history": "21d", "max_history": "21d"})


def test_empty_or_all_nan_history_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one observation"):
        SeasonalPredictor().fit(pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float))
    index = pd.date_range(MONDAY, periods=3, freq="1min")
    with pytest.raises(ValueError, match="at least one observation"):
        SeasonalPredictor().fit(pd.Series([np.nan] * 3, index=index))


def test_history_out_of_time_order_is_a_value_error_not_a_lost_sample() -> None:
    """The grid is laid from the first and last times: with the last two samples swapped
    (the newest a burst), the burst fell off it and the forecast never saw it. Refused on
    a fresh fit and on a tick's fit that continues the kept history."""
    history = synthetic(2)
    history.iloc[-1] = 500.0
    swapped = pd.concat([history.iloc[:-2], history.iloc[[-1, -2]]])
    with pytest.raises(ValueError, match="timestamps must increase"):
        SeasonalPredictor().fit(swapped)
    ticking = SeasonalPredictor().fit(history.iloc[:-10])
    with pytest.raises(ValueError, match="timestamps must increase"):
        ticking.fit(swapped)
    with pytest.raises(ValueError, match="timestamps must increase"):
        LinearTrendPredictor().fit(swapped.iloc[-30:])
    assert SeasonalPredictor().fit(history).forecast(HORIZON).peak_upper() > 100.0


def test_a_stepwise_source_is_forecast_from_its_last_sample() -> None:
    """A metric that changes every 10 minutes and whose level wanders (a walk in log, as
    the ServeGen trace's 10-minute values do) over a mild daily cycle: the forecast holds
    the last sample at every lead (the replay found it cheaper than shape + level) and its
    band keeps the late share of the coming minutes near the target."""
    rng = np.random.default_rng(12)
    index = pd.date_range(MONDAY, periods=10 * 1440, freq="1min")
    walk = np.cumsum(rng.normal(0.0, 0.1, len(index) // 10))
    daily = 50.0 * (1.0 + 0.2 * np.sin(2 * np.pi * np.arange(len(index)) / 1440))
    rate = daily.reshape(-1, 10).mean(axis=1).repeat(10) * np.exp(walk).repeat(10)
    series = pd.Series(rate, index=index)
    predictor = SeasonalPredictor(service_target=0.01, latency_target_s=3.0)
    actuals, uppers = [], []
    for origin in range(8 * 1440, 10 * 1440 - 31, 31):
        forecast = predictor.fit(series.iloc[: origin + 1]).forecast(HORIZON)
        assert np.all(forecast.point == series.iloc[origin])
        assert np.all(forecast.upper >= forecast.point)
        actuals.append(series.iloc[origin + 1 : origin + 31].to_numpy())
        uppers.append(forecast.upper)
    assert "point: the last sample" in " ".join(forecast.notes)
    actual, upper = np.concatenate(actuals), np.concatenate(uppers)
    assert float(late_share_above(upper, actual, actual, 3.0 / 60.0)) <= 0.03
    noisy = SeasonalPredictor().fit(synthetic(9, noise="poisson", seed=2)).forecast(HORIZON)
    assert "last sample" not in " ".join(noisy.notes)
    assert np.ptp(noisy.point) > 0.0


@pytest.mark.parametrize(
    "days, says",
    [
        (0.25, ["little history: 6.0h of data", "daily shape needs 24.0h", "weekly one 7.0d"]),
        (3.0, ["little history: 3.0d of data", "weekly shape needs 7.0d"]),
        (7.5, None),
    ],
)
def test_little_history_is_said_until_the_weekly_shape_has_its_week(
    days: float, says: list[str] | None
) -> None:
    forecast = SeasonalPredictor().fit(synthetic(days, noise="gauss")).forecast(HORIZON)
    if says is None:
        assert forecast.little_history is None
        return
    assert forecast.little_history is not None
    for words in says:
        assert words in forecast.little_history
