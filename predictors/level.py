"""Level features: what the forecaster knows of the level at an origin, from the residuals
from the clock shape up to it.

Weighted means of the residuals over the hours before the origin (exponential decays,
then a plain mean of the last 30 minutes, which spots level shifts), and the smoothed
residual at the target's local clock time a day and a week before (the seasonal lags).
The replay (predictors/quantiles.py) computes them at its origins and learns how much
each persists; the forecast computes them at its one origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from predictors.cleaning import window_means
from predictors.shape import instants_of_local, local_seconds, one_offset

_NS = 1_000_000_000
_DAY_S = 86_400

LEVEL_HALF_LIVES_S = (180.0, 600.0, 3600.0)
"""The level features: residual means decaying with these half-lives (the newest samples,
the last minutes, the last hours). The replay learns per lead how much each one persists."""
SEASON_LAGS_S = (86_400.0, 7 * 86_400.0)
"""Seasonal lags: the residual at the target's local clock time a day and a week before (the
bursts of a nightly batch job that the smooth clock shape cannot draw); in real time an
hour more or less after the clocks change (season_lag_steps)."""
SEASON_SMOOTH_S = 900.0
"""Width of the centred mean that smooths a lagged residual (one minute of it is noise)."""
CHANGE_SMOOTH_S = 300.0
"""The same for the week lag's change alone (held sample + that change, a point of its
own): narrower, so that a batch's onset is not ramped up over a quarter-hour before it."""
VOLATILITY_WINDOW_S = 3600.0
"""Recent volatility: the mean step-to-step change over this span, over its mean level.
Volatility clusters (a burst follows a burst), so the band widens after a jumpy hour."""


@dataclass(frozen=True)
class LevelKernels:
    """Weighted means of the residuals over the `window` steps up to an origin: one per
    exponential decay, then a plain mean of the last 30 minutes (`recent` steps), which
    spots level shifts. Also the seasonal lags and their smoothing, in steps."""

    decays: tuple[float, ...]  # per-step decay of each exponential mean
    window: int
    recent: int
    season_lags: tuple[int, ...] = ()
    season_smooth: int = 1
    volatility_window: int = 2
    season_lags_s: tuple[int, ...] = ()  # the same lags in seconds of local clock time
    change_smooth: int = 1
    weights: np.ndarray = field(init=False, repr=False, compare=False)  # (window, k), oldest first

    def __post_init__(self) -> None:
        age = np.arange(self.window)[::-1]
        columns = [decay**age for decay in self.decays] + [(age < self.recent).astype(float)]
        object.__setattr__(self, "weights", np.column_stack(columns))

    @property
    def regressors(self) -> int:
        return len(self.decays) + len(self.season_lags)


def level_kernels(step_s: float) -> LevelKernels:
    window = max(4, round(4 * 3600 / step_s))
    decays = tuple(0.5 ** (step_s / half_life) for half_life in LEVEL_HALF_LIVES_S)
    lags = tuple(round(lag / step_s) for lag in SEASON_LAGS_S)
    smooth = max(1, round(SEASON_SMOOTH_S / step_s))
    change = max(1, round(CHANGE_SMOOTH_S / step_s))
    volatility = max(2, round(VOLATILITY_WINDOW_S / step_s))
    recent = max(1, round(1800 / step_s))
    lags_s = tuple(round(lag) for lag in SEASON_LAGS_S)
    return LevelKernels(decays, window, recent, lags, smooth, volatility, lags_s, change)


def season_lag_steps(
    times_ns: np.ndarray, timezone: str, step_ns: int, kernels: LevelKernels
) -> np.ndarray | None:
    """(times, lags): the steps back from each time (ascending) to the same local clock time
    a local day and week before, so that a nightly job at 02:00 is looked for at 02:00
    across a clock change (shape.instants_of_local's rule where that time was skipped or
    repeated); None where that is the fixed lag at every time (UTC, or one UTC offset over
    the span the lags reach): the fast path, the same lags as kernels.season_lags."""
    if not kernels.season_lags or len(times_ns) == 0:
        return None
    seconds = np.asarray(times_ns) // _NS
    reach = max(kernels.season_lags_s) + _DAY_S  # past the longest lag and any change of it
    if one_offset(int(seconds[0]) - reach, int(seconds[-1]), timezone):
        return None
    wall = local_seconds(np.asarray(times_ns), timezone)
    columns = []
    for lag, lag_s in zip(kernels.season_lags, kernels.season_lags_s, strict=True):
        change_s = seconds - instants_of_local(wall - lag_s, timezone) - lag_s
        columns.append(lag + change_s * _NS // step_ns)  # the first step at or after it
    return np.column_stack(columns)


def centred_means(residual: np.ndarray, width: int) -> np.ndarray:
    """Mean of the finite residuals in a centred window of `width` steps (NaN if none)."""
    return window_means(residual, width // 2, width - width // 2)


@dataclass(frozen=True)
class AheadLags:
    """season_lag_steps of the targets of the day after a refit's newest sample (from
    `from_ns`), computed once at the refit: the forecasts until the next refit read them
    instead of converting local times each tick. `lags` None: the fixed lags that day."""

    lags: np.ndarray | None
    from_ns: int
    timezone: str
    step_ns: int
    kernels: LevelKernels

    @property
    def longest(self) -> int:
        """The most steps a forecast's lag reaches back: after the clocks went back, a local
        week is a week and an hour (the kept residual span)."""
        fixed = max(self.kernels.season_lags, default=0)
        return fixed if self.lags is None else max(fixed, int(self.lags.max()))

    def of(self, future_ns: np.ndarray) -> np.ndarray | None:
        """season_lag_steps of these targets (ascending, after `from_ns`)."""
        at = (future_ns - self.from_ns) // self.step_ns
        if len(at) and at[-1] >= -(-_DAY_S * _NS // self.step_ns):  # past that day
            return season_lag_steps(future_ns, self.timezone, self.step_ns, self.kernels)
        return None if self.lags is None else self.lags[at]

    def at_origin(self, origin_ns: int) -> np.ndarray | None:
        """season_lag_steps of one origin, (1, lags); None: the fixed lags."""
        return season_lag_steps(np.array([origin_ns]), self.timezone, self.step_ns, self.kernels)


def history_season_lags(
    start_ns: int, length: int, step_ns: int, timezone: str, kernels: LevelKernels
) -> tuple[np.ndarray | None, AheadLags]:
    """season_lag_steps of a history's `length` samples on its grid (the replay's targets,
    read as the forecast reads them), and of the day after it (AheadLags), in one call."""
    ahead = -(-_DAY_S * _NS // step_ns)
    times_ns = start_ns + np.arange(length + ahead) * step_ns
    lags = season_lag_steps(times_ns, timezone, step_ns, kernels)
    from_ns = start_ns + length * step_ns
    if lags is None:
        return None, AheadLags(None, from_ns, timezone, step_ns, kernels)
    return lags[:length], AheadLags(lags[length:].copy(), from_ns, timezone, step_ns, kernels)


def season_features(
    smoothed: np.ndarray,
    target_at: np.ndarray,
    origin_at: np.ndarray,
    kernels: LevelKernels,
    lags: np.ndarray | None = None,
) -> np.ndarray:
    """(..., lags): the smoothed residual one season before each target (indices into
    `smoothed`); 0 (no news) where unknown or where its window reaches past the origin.
    `lags`: (..., lags) steps back per target (season_lag_steps); None: the fixed ones."""
    if not kernels.season_lags:
        return np.zeros((*np.shape(target_at), 0))
    reach = kernels.season_smooth - kernels.season_smooth // 2
    # All lags at once, on a last axis: a forecast's one origin pays numpy's call costs once.
    back = np.asarray(kernels.season_lags) if lags is None else lags
    at = np.asarray(target_at)[..., None] - back
    origin_at = np.asarray(origin_at)[..., None]
    known = (at >= 0) & (at + reach <= origin_at + 1) & (at < len(smoothed))
    last = max(len(smoothed) - 1, 0)
    value = smoothed[np.minimum(np.maximum(at, 0), last)] if len(smoothed) else at * 0.0
    return np.where(known & np.isfinite(value), value, 0.0)


def level_features(windows: np.ndarray, kernels: LevelKernels) -> np.ndarray:
    """Weighted means of residual windows (rows, oldest first; NaN = missing) -> (rows, 3)."""
    valid = np.isfinite(windows)
    weights = kernels.weights
    # einsum, not @: a threaded BLAS call costs more than this whole product on a busy host.
    weighted = np.einsum("ow,wk->ok", np.where(valid, windows, 0.0), weights)
    mass = np.einsum("ow,wk->ok", valid.astype(float), weights)
    return _ratio(weighted, mass)


def level_features_at(residual: np.ndarray, at: np.ndarray, kernels: LevelKernels) -> np.ndarray:
    """level_features of the windows ending at the steps `at`, in O(n): recursive filters
    for the decaying means (minus what fell out of the window), cumulative sums for the
    plain one, each read at `at` only (the same figures as at every step, computed for
    the few steps a replay's origins are). A window before the start sees only what
    exists, like one padded with NaN."""
    valid = np.isfinite(residual)
    behind = at - kernels.window
    past, behind = behind >= 0, np.maximum(behind, 0)
    columns = []
    for series in (np.where(valid, residual, 0.0), valid.astype(float)):
        sums = []
        for decay in kernels.decays:
            infinite = lfilter([1.0], [1.0, -decay], series)
            dropped = np.where(past, infinite[behind], 0.0)
            sums.append(infinite[at] - decay**kernels.window * dropped)
        total = np.concatenate(([0.0], np.cumsum(series)))
        sums.append(total[at + 1] - total[np.maximum(at + 1 - kernels.recent, 0)])
        columns.append(np.column_stack(sums))
    return _ratio(columns[0], columns[1])


def _ratio(weighted: np.ndarray, mass: np.ndarray) -> np.ndarray:
    return np.divide(weighted, mass, out=np.zeros(np.shape(mass)), where=mass > 1e-9)
