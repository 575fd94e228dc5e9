"""Seasonal forecaster: clock shape of the week, recent level, and a band from its own errors.

The forecast at lead h is

    point(t + h) = shape(local time of week at t + h) + level correction(t, h)
                   (or the last sample, where the replay finds that cheaper: see below)
    upper(t + h) = point + q_h * (point + c) ** p * hour factor * volatility factor

- shape: a ridge regression on Fourier terms of the local time of week (daily
  harmonics, plus day-of-week terms once a week of history exists), recent weeks
  weighted more (predictors/shape.py). Local time comes from `timezone`, so a
  09:00 opening stays at 09:00 across DST.
- level correction: weighted means of the last hours' residuals from the shape
  (half-lives of 3, 10 and 60 minutes) and the residual at the same local time a day
  and a week before (bursts that recur, like a nightly batch job, which the smooth shape
  cannot draw), with per-lead weights learned by replaying the forecaster over its
  recent history; a level far outside the usual is a shift and is followed whole
  (predictors/level.py, predictors/quantiles.py).
- upper: q_h is the narrowest band at lead h that keeps the share of late requests on
  the replayed errors within service_target (a request is late once demand above the
  band has queued more than `latency_target_s` of work: small overshoots are absorbed),
  p the scale law that meets the target at least capacity on them, the hour factor
  how much noisier the target's local hour has been, the volatility factor how jumpy the
  last hour was (predictors/bands.py)
  (the forecaster's own errors over the last 7 days of history,
  recent days weighted more, the shape judged out of sample by leaving each day
  out); until enough replayed forecasts exist (MIN_ORIGINS), a normal quantile of
  the residual spread, and `Forecast.notes` says so.
- point: shape + level, or the last sample held at every lead, whichever buys less
  capacity on the replay at the same late share (a source that reports every 10
  minutes holds its value between reports, which no smoothed level matches); where one
  replayed day stands out of the pick's others, a point that foresees it, the held
  sample plus the week lag's change among them (predictors/point_choice.py).
- data repair: missing steps stay NaN, short dips to ~0 in busy series (counter
  resets) become NaN, zeros of sparse series stay (predictors/cleaning.py).
- short history (under `min_history` of data): the seed's linear trend on the last
  hour with a normal band at 1 - service_target, and a note that says so.

Cost, since one object serves one pool for its whole life (daemon ticks, and the
backtest calling `fit` every simulated minute): the object keeps its own copy of
the history on a regular grid (predictors/history_grid.py) and `fit` only appends the
samples newer than that copy.
The heavy part (repair of the whole history, the shape regression, and the replay
that learns level weights and the band, done lazily at the first `forecast`)
runs only when `refit_every` of data time has passed since the last one (the first
time after a fresh start, `refit_phase` x `refit_every` sooner: see below), when
the history does not continue the kept copy (restarted, went back, older data
appeared, the step changed), or when the model changes from fallback to seasonal.
Between refits a `fit` repairs and reads only the last hours to update the level.
The copy also means a pool whose query window is short (the 2 h default) still
gets a seasonal model once the daemon has seen `min_history` of data; it holds at
most `max_history`. `heavy_fits` counts the heavy refits (for tests and benches).

Pools that start together would all refit on one tick every `refit_every` (seconds for
1,000 pools): `refit_phase`, a share of `refit_every` that the daemon sets from a stable
hash of the pool's name, brings the first refit after a fresh start that much sooner, so
about 1/N of the pools refit per tick. Data and parameters alone decide: still pure.

A fresh start (a daemon restart, a new pool, the backtest's first tick) fits every pool on
one tick, and the replay is most of a fit's cost: with `quick_first_fit` (the default) it
is quick (quantiles.replay_origins; one band search, for the point that one trial finds
cheaper: point_choice.point_band, quick) and the forecast says its band is provisional;
the full replay comes with the next refit, on the pool's phase, so restarted pools still
spread their full refits over the hour.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from common.time_zones import time_zone
from predictors.base import Forecast
from predictors.cleaning import is_sparse, repair
from predictors.history_grid import HistoryGrid
from predictors.level import (
    LevelKernels,
    centred_means,
    history_season_lags,
    level_features,
    level_kernels,
    season_features,
)
from predictors.linear import LinearTrendPredictor
from predictors.quantiles import (
    PROVISIONAL_NOTE,
    LeadModel,
    learn_leads,
    newest_volatility,
    offsets,
    replay_origins,
    upper_of,
    week_change,
)
from predictors.shape import (
    fit_shape_and_folds,
    hour_of_day,
    local_seconds,
    week_slots,
    week_slots_of_local,
)

_Span = Annotated[timedelta, Field(gt=timedelta(0))]
_LEVEL_S = 3600.0  # trailing window that measures the level when looking for dips
_MAX_DIP_S = 1800.0  # a dip to ~0 longer than this is real, not a counter reset
_ERROR_HALF_LIFE_S = 2 * 86_400.0  # recent errors count more: the band follows new volatility


class SeasonalPredictor:
    name = "seasonal"

    def __init__(
        self,
        service_target: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.01,
        latency_target_s: Annotated[float, Field(ge=0.0)] = 3.0,
        timezone: str = "UTC",
        refit_every: _Span = timedelta(hours=1),
        refit_phase: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0,
        min_history: _Span = timedelta(days=1),
        weekly_history: _Span = timedelta(days=7),
        max_history: _Span = timedelta(days=14),
        shape_half_life: _Span = timedelta(days=7),
        daily_harmonics: Annotated[int, Field(ge=1, le=48)] = 12,
        weekly_harmonics: Annotated[int, Field(ge=0, le=168)] = 16,
        quick_first_fit: bool = True,
    ) -> None:
        if not 0.0 < service_target < 1.0:
            raise ValueError("service_target is a share of late requests, between 0 and 1")
        try:  # an unknown zone fails here, not at the first tick
            time_zone(timezone)
        except ValueError as exc:
            raise ValueError(f"timezone: {exc}") from None
        if not latency_target_s >= 0.0:
            raise ValueError("latency_target_s is seconds a request may wait, at least 0")
        self.service_target = service_target
        self.latency_target_s = latency_target_s
        self.timezone = timezone
        if not 0.0 <= refit_phase < 1.0:
            raise ValueError("refit_phase is a share of refit_every, at least 0 and below 1")
        if min_history > max_history:  # never reached: the linear fallback for good
            raise ValueError("min_history is more than max_history, the most history kept")
        self.refit_every = refit_every
        self.refit_phase = refit_phase
        self.min_history = min_history
        self.weekly_history = weekly_history
        self.max_history = max_history
        self.shape_half_life = shape_half_life
        self.daily_harmonics = daily_harmonics
        self.weekly_harmonics = weekly_harmonics
        self.quick_first_fit = quick_first_fit
        self.heavy_fits = 0
        self._grid = HistoryGrid(_ns(max_history))
        self._next_refit_ns: int | None = None
        self._fallback: LinearTrendPredictor | None = None
        self._notes: tuple[str, ...] = ()
        self._little: str | None = None
        self._replay: tuple[np.ndarray, np.ndarray] | None = None
        """A refit's replay (actual, out-of-sample shape): kept until the leads are learned."""
        self._hour_of: np.ndarray | None = None
        self._season_lags: np.ndarray | None = None

    # ---- learning --------------------------------------------------------------

    def fit(self, history: pd.Series) -> SeasonalPredictor:
        if history.empty:
            raise ValueError("seasonal predictor needs at least one observation")
        if self._grid.absorb(history):
            self._next_refit_ns = None  # a fresh start
        span_ns = self._grid.valid_span_ns()
        self._little = little_history(span_ns, _ns(self.min_history), _ns(self.weekly_history))
        if span_ns < _ns(self.min_history):
            self._fit_fallback(span_ns)
            return self
        every_ns = _ns(self.refit_every)
        if self._next_refit_ns is None or self._fallback is not None:
            # A fresh start: a quick replay; the next refit, on the pool's phase, a full one.
            self._refit(span_ns, quick=self.quick_first_fit)
            self._next_refit_ns = self._end_ns + every_ns - round(self.refit_phase * every_ns)
        elif self._end_ns >= self._next_refit_ns:
            self._refit(span_ns)
            self._next_refit_ns = self._end_ns + every_ns
        self._level = self._tail_level()
        return self

    def heavy_fit_due(self, end: datetime) -> bool:
        """Whether a fit on a history that continues the kept one up to `end` is a heavy
        one (a refit; a fresh one's first fit may be): the daemon does those in a worker
        process (autoscaler.fit_workers). A hint only: a wrong one costs time, not results."""
        if self._grid.empty:
            return True
        end_ns = pd.Timestamp(end).value
        if self._fallback is not None:  # until min_history, each fit is the fallback's
            return self._grid.valid_span_ns() + end_ns - self._end_ns >= _ns(self.min_history)
        return self._next_refit_ns is None or end_ns >= self._next_refit_ns

    def _fit_fallback(self, span_ns: int) -> None:
        assert self._values is not None
        self._sparse = is_sparse(self._values)
        recent = self._values[-max(2, int(2 * 3600e9 // self._step_ns)) :]
        tail = self._series(self._repair(recent))
        if not np.isfinite(tail.to_numpy()).any():
            tail = self._series(recent)
        if not np.isfinite(tail.to_numpy()).any():
            raise ValueError("seasonal predictor needs at least one observation")
        self._fallback = LinearTrendPredictor(
            window=timedelta(hours=1), quantile=1 - self.service_target
        ).fit(tail)
        self._notes = (
            f"short history ({_hours(span_ns)} of data, seasonal needs "
            f"{_hours(_ns(self.min_history))}): linear trend of the last hour instead",
            f"band: normal {1 - self.service_target:.3g} quantile of the residual spread",
        )

    def _refit(self, span_ns: int, quick: bool = False) -> None:
        """The heavy part: repair everything, fit the shape, queue the replay (`quick`: on
        fewer origins, see quantiles.replay_origins)."""
        assert self._values is not None
        step_s = self._step_ns / 1e9
        self._fallback = None
        self._sparse = is_sparse(self._values)
        actual = self._repair(self._values)
        times_ns = self._start_ns + np.arange(len(actual), dtype=np.int64) * self._step_ns
        local_s = local_seconds(times_ns, self.timezone)
        slots = week_slots_of_local(local_s)
        age_ns = (times_ns[-1] - times_ns).astype(float)
        weights = 0.5 ** (age_ns / _ns(self.shape_half_life))
        weekly = span_ns >= _ns(self.weekly_history)
        harmonics = (self.daily_harmonics, self.weekly_harmonics, weekly)
        # The replay judges the shape out of sample: each day's shape is fitted without
        # that day (two folds, odd and even days), or its errors would look too small.
        odd_day = (local_s // 86_400) % 2 == 1
        self._shape, *folds = fit_shape_and_folds(slots, actual, weights, odd_day, *harmonics)
        self._kernels: LevelKernels = level_kernels(step_s)
        self._replay = (actual, np.where(odd_day, folds[1][slots], folds[0][slots]))
        self._hour_of = hour_of_day(local_s)
        # Seasonal lags read the residual at the target's local time a day or a week before:
        # kept from the longest lag back, since the hourly refit comes round well before a
        # lag reaches past it, and every target to come is after the newest sample.
        self._season_lags, self._ahead_lags = history_season_lags(
            self._start_ns, len(actual), self._step_ns, self.timezone, self._kernels
        )
        residual = actual - self._shape[slots]
        smoothed = centred_means(residual, self._kernels.season_smooth)
        kept_from = max(0, len(smoothed) - self._ahead_lags.longest - 1)
        self._season_smoothed = smoothed[kept_from:].copy()
        fine = centred_means(residual, self._kernels.change_smooth)  # for the lag's change
        self._change_smoothed: np.ndarray | None = fine[kept_from:]  # kept if the leads use it
        self._season_start_ns = self._start_ns + kept_from * self._step_ns
        self._leads: LeadModel | None = None
        self._quick = quick
        self.heavy_fits += 1
        shape_kind = "daily and weekly" if weekly else "daily (weekly after a week of data)"
        self._shape_note = (
            f"seasonal: {shape_kind} shape of {_hours(span_ns)} in {self.timezone}"
            + (", sparse series (zeros kept)" if self._sparse else "")
        )

    def _repair(self, values: np.ndarray) -> np.ndarray:
        step_s = self._step_ns / 1e9
        level_steps = max(1, round(_LEVEL_S / step_s))
        dip_steps = max(1, round(_MAX_DIP_S / step_s))
        return repair(values, level_steps, dip_steps, self._sparse)

    def _tail_level(self) -> np.ndarray:
        """Level features at the newest sample, from the last hours only."""
        assert self._values is not None
        window = self._kernels.window
        pad = round((_LEVEL_S + _MAX_DIP_S) / (self._step_ns / 1e9)) + 1
        tail = self._values[-(window + pad) :]
        actual = self._repair(tail)[-window:]
        self._last = float(actual[-1])
        self._recent = actual[-(self._kernels.volatility_window + 1) :]
        times_ns = self._end_ns - np.arange(len(actual) - 1, -1, -1, dtype=np.int64) * self._step_ns
        residual = actual - self._shape[week_slots(times_ns, self.timezone)]
        if len(residual) < window:
            residual = np.concatenate((np.full(window - len(residual), np.nan), residual))
        return level_features(residual[None, :], self._kernels)

    def _learn_leads(self, steps: int) -> LeadModel:
        """The band per lead from the refit's replay, which is then let go: it is half a
        pool's memory (a fortnight of samples, twice) and a refit makes a new one."""
        assert self._replay is not None and self._hour_of is not None
        actual, seasonal = self._replay
        stride, most, self._provisional = replay_origins(
            len(actual) - steps, self._kernels.window, self._step_ns, self._quick
        )
        leads = learn_leads(
            actual,
            seasonal,
            steps,
            self._kernels,
            stride,
            most,
            self.service_target,
            _ERROR_HALF_LIFE_S * 1e9 / self._step_ns,
            latency_slack=self.latency_target_s * 1e9 / self._step_ns,
            hour_of=self._hour_of,
            quick=self._provisional,
            season_lags=self._season_lags,
        )
        self._replay, self._hour_of, self._season_lags = None, None, None
        if self._change_smoothed is not None:
            self._change_smoothed = self._change_smoothed.copy() if leads.week_change else None
        return leads

    # ---- answering ------------------------------------------------------------

    def forecast(self, horizon: timedelta) -> Forecast:
        if self._grid.empty:
            raise ValueError("seasonal predictor: call fit before forecast")
        steps = _steps(horizon, self._step_ns)
        if self._fallback is not None:
            inner = self._fallback.forecast(horizon)
            return Forecast(
                inner.times,
                inner.point,
                inner.upper,
                "seasonal (linear fallback)",
                self._notes,
                self._little,
            )
        if self._leads is None or self._leads.leads < steps:
            if self._replay is None:  # a longer horizon than the leads learned: replay again
                self._refit(self._grid.valid_span_ns(), quick=self._quick)
                self._level = self._tail_level()
            self._leads = self._learn_leads(steps)
        leads = self._leads
        future_ns = self._end_ns + np.arange(1, steps + 1, dtype=np.int64) * self._step_ns
        target_at = (future_ns - self._season_start_ns) // self._step_ns
        origin_at = (self._end_ns - self._season_start_ns) // self._step_ns
        lags = self._ahead_lags.of(future_ns)
        season = season_features(
            self._season_smoothed, target_at[None, :], origin_at, self._kernels, lags
        )
        level, shifted = offsets(self._level, season, leads)
        future_local_s = local_seconds(future_ns, self.timezone)
        slots = week_slots_of_local(future_local_s)
        point = np.maximum(self._shape[slots] + level[0], 0.0)
        if leads.persistence and np.isfinite(self._last):
            point = np.full(steps, max(self._last, 0.0))
            if leads.week_change and self._change_smoothed is not None:
                origin_lags = self._ahead_lags.at_origin(self._end_ns)
                at, origin = target_at[None, :], np.array([[origin_at]])
                fine, kernels = self._change_smoothed, self._kernels
                change = week_change(fine, at, origin, kernels, lags, origin_lags)
                if change is not None:
                    point = np.maximum(point + change[0], 0.0)
        hours = hour_of_day(future_local_s)
        volatility = newest_volatility(  # the replay's measure: the last window's samples
            self._recent, self._kernels.volatility_window, leads.scale_offset
        )
        upper = np.maximum(upper_of(point, leads, hours, float(volatility)), point)
        notes = [self._shape_note, leads.note]
        if self._provisional:
            notes.append(PROVISIONAL_NOTE)
        if shifted[0]:
            notes.append("level shift: following the last minutes' level, not the usual shape")
        times = self._grid.future_index(steps)
        return Forecast(times, point, upper, self.name, tuple(notes), self._little)

    # ---- helpers ----------------------------------------------------------------

    @property
    def _values(self) -> np.ndarray:
        return self._grid.values

    @property
    def _start_ns(self) -> int:
        return self._grid.start_ns

    @property
    def _step_ns(self) -> int:
        return self._grid.step_ns

    @property
    def _end_ns(self) -> int:
        return self._grid.end_ns

    def _series(self, values: np.ndarray) -> pd.Series:
        index = self._grid.index_of(self._grid.times_ns(len(values)))
        return pd.Series(values, index=index)


def _steps(horizon: timedelta, step_ns: int) -> int:
    """The steps that reach `horizon` (at least 1), in integers for a plain timedelta (as
    exact, without two Timedeltas a tick)."""
    if type(horizon) is not timedelta:  # a pd.Timedelta may carry nanoseconds
        return max(1, math.ceil(pd.Timedelta(horizon) / pd.Timedelta(step_ns)))
    return max(1, -(-_ns(horizon) // step_ns))


def _ns(duration: timedelta) -> int:
    return (
        duration.days * 86_400 + duration.seconds
    ) * 1_000_000_000 + duration.microseconds * 1000


def little_history(span_ns: int, daily_ns: int, weekly_ns: int) -> str | None:
    """What a forecast from `span_ns` of data lacks, until it has the week the weekly shape
    needs (None from then): its band is learned on too few days to be trusted. A span an
    hour short of the week counts as the week: a query window of exactly 7d ends a step
    short of it, and the next hourly refit, with the ticks since, has it."""
    if span_ns + _ns(timedelta(hours=1)) >= weekly_ns:
        return None
    if span_ns < daily_ns:
        lacks = f"the daily shape needs {_hours(daily_ns)}, the weekly one {_hours(weekly_ns)}"
    else:
        lacks = f"the weekly shape needs {_hours(weekly_ns)}"
    return (
        f"little history: {_hours(span_ns)} of data, {lacks}; until then the forecast "
        "and its band are less sure than they read"
    )


def _hours(span_ns: int) -> str:
    hours = span_ns / 3600e9
    return f"{hours / 24:.1f}d" if hours >= 48 else f"{hours:.1f}h"
