"""Level correction and the error-quantile band, both learned from the forecaster's own errors.

At a refit the forecaster replays itself over its recent history: at origins
every few minutes it computes the level features it would have seen (weighted
means of the residual from the clock shape over the preceding hours, and the
smoothed residual at the target's local time a day and a week before), predicts
each lead, and compares with what came. From those replayed forecasts it learns, per
lead, how much of each feature persists (a small least-squares regression; a
feature that predicts nothing gets a weight near 0) and the band that meets the
service target (predictors/bands.py: a request-weighted error quantile, in units of
a scale that grows with the forecast and follows the hour of the day and the recent
volatility). The band's measure, the capacity it buys on the replay, also chooses the
point: shape + level, or the last sample held at every lead (a stepwise source, whose
value holds until its next report).
Recent errors weigh more (a half-life of days), so the band widens soon after the
traffic turns more volatile. The caller judges the shape out of sample (each day's
shape fitted without that day), or the replayed errors would look too small.

A level far outside what the replay saw (|recent mean residual| > SHIFT_Z robust
standard deviations) is a level shift: the forecast then takes the fast level
whole, so it follows a new level within the hour instead of trusting the shape
(the seasonal lags still add what recurs at the target's time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from predictors.bands import band_scale, volatility_factor, volatility_log_ratio
from predictors.cleaning import newest_window_mean, window_means
from predictors.level import LevelKernels, centred_means, level_features_at, season_features
from predictors.point_choice import point_band

SHIFT_Z = 4.0
MIN_ORIGINS = 200
"""Fewer replayed forecasts than this: the band falls back to the residual spread."""
REPLAY_STRIDE_S = 420.0
"""Time between the replay's origins: 7 min, no alias with 5- or 10-minute patterns."""
QUICK_REPLAY_STRIDE_S = 1860.0
"""The same for the quick replay after a fresh start: 31 min, prime like 7."""
REPLAY_SPAN_S = 7 * 86_400.0
"""The replay's origins cover at most the last week."""
PROVISIONAL_NOTE = (
    "band provisional: learned on a quick replay after a fresh start (about a fifth of "
    "the full replay's forecasts); the full one comes with the next refit"
)


WHOLE_LEVEL = 1
"""The level feature a level shift follows whole (the 10-minute one)."""
SEASON_MIN_SEEN = 0.5
"""Share of the replayed forecasts that must know a lag for it to be learned."""


@dataclass(frozen=True)
class LeadModel:
    """What the replay learned, for leads 1..len(betas)."""

    betas: np.ndarray  # (leads, regressors): weight of each level and season feature per lead
    shift_sd: float  # robust spread of the recent-mean feature; beyond SHIFT_Z of it: a shift
    band: np.ndarray  # (leads,): error quantile in units of scale
    scale_offset: float
    scale_power: float
    origins: int
    note: str
    persistence: bool = False
    """The point is the last sample, not shape + level: it bought less capacity on the replay
    (stepwise series, such as a source that reports every 10 minutes)."""
    hourly: np.ndarray | None = None
    """(24,): the band's factor at each local hour of the target (predictors.bands); None:
    the same at every hour."""
    volatility_median: float = 0.0
    """The replay's median recent volatility; 0: the band does not follow volatility."""
    elasticity: float = 0.0
    """The band's scale grows as (recent volatility / volatility_median)**elasticity."""
    week_change: bool = False
    """With persistence: the last sample plus the week lag's change from the origin to each
    target (what the same hours a week before did), where that foresees a day the other
    points miss on the replay (point_choice.recurring_day)."""

    @property
    def leads(self) -> int:
        return len(self.betas)


def regressors(level: np.ndarray, season: np.ndarray) -> np.ndarray:
    """(origins, leads, k): the level features (the same at every lead), then the season ones."""
    # repeat, not broadcast_to: the same array to concatenate, without broadcast_to's costly
    # wrapper (a forecast's one origin is a few numbers).
    decaying = np.repeat(level[:, None, :-1], season.shape[1], axis=1)
    return np.concatenate((decaying, season), axis=2)


def offsets(
    level: np.ndarray, season: np.ndarray, model: LeadModel
) -> tuple[np.ndarray, np.ndarray]:
    """Level correction per (origin, lead) and whether each origin is in a level shift.

    `level`: (origins, decays + 1) from level_features; `season`: (origins, leads, lags)."""
    leads = season.shape[1]
    shifted = np.abs(level[:, -1]) > SHIFT_Z * model.shift_sd
    betas = model.betas[:leads]
    regular = np.einsum("olk,lk->ol", regressors(level, season), betas)
    if not shifted.any():  # the usual tick: no level shift to follow whole
        return regular, shifted
    recurring = np.einsum("olk,lk->ol", season, betas[:, betas.shape[1] - season.shape[2] :])
    whole = level[:, WHOLE_LEVEL : WHOLE_LEVEL + 1] + recurring
    return np.where(shifted[:, None], whole, regular), shifted


def upper_of(
    point: np.ndarray,
    model: LeadModel,
    hours: np.ndarray | None = None,
    volatility: float | None = None,
) -> np.ndarray:
    """The band's top over `point`. `hours`: the local hour of each step; `volatility`: the
    recent volatility at the origin (relative_volatility)."""
    scale = band_scale(point, model.scale_offset, model.scale_power, model.hourly, hours)
    if volatility is not None and model.elasticity > 0:
        log_ratio = volatility_log_ratio(volatility, model.volatility_median)
        scale = scale * volatility_factor(log_ratio, model.elasticity)
    return point + model.band[: len(point)] * scale


def relative_volatility(
    values: np.ndarray, ends: np.ndarray, window: int, offset: float
) -> np.ndarray:
    """At each index in `ends`: the mean |step change| over the `window` samples up to it,
    over their mean level + offset (NaN where none is known)."""
    change = np.abs(np.diff(values, prepend=np.nan))
    mean_change, mean_level = (window_means(x, window - 1, 1, ends) for x in (change, values))
    return mean_change / (mean_level + offset)


def replay_origins(length: int, window: int, step_ns: int, quick: bool) -> tuple[int, int, bool]:
    """(stride in steps, most origins, quick?) of a replay over `length` samples (the last
    origin at the end, the first a level `window` in).

    A quick replay covers the same week with a fifth or so of the origins, for a fifth of
    the cost, and learns its band from fewer errors (on the test series 5-20 % wider than
    the full one). It is taken only where it still has 1.2 x MIN_ORIGINS origins, so that
    the band stays a replayed quantile (a short history has few origins at any stride,
    and is cheap anyway). Its stride in steps shares no factor with 60, so that origins
    see every phase of a 5-, 10-, 15-, 30- or 60-minute pattern at any step (31 at 1
    minute, 7 at 5 minutes, 127 at 15 seconds)."""
    full = max(1, round(REPLAY_STRIDE_S * 1e9 / step_ns))
    coarse = round(QUICK_REPLAY_STRIDE_S * 1e9 / step_ns)
    while math.gcd(coarse, 60) > 1:
        coarse += 1
    span = REPLAY_SPAN_S * 1e9 / step_ns
    if quick and coarse > full and min(length - window, span) // coarse + 1 >= 1.2 * MIN_ORIGINS:
        return coarse, int(span // coarse), True
    return full, int(span // full), False


def newest_volatility(values: np.ndarray, window: int, offset: float) -> np.float64:
    """relative_volatility at the last sample alone (a forecast's origin), the same float:
    the same sums in the same order, without the arrays for every index."""
    change = np.empty(len(values))
    change[:1] = np.nan
    np.abs(np.subtract(values[1:], values[:-1], out=change[1:]), out=change[1:])
    return newest_window_mean(change, window) / (newest_window_mean(values, window) + offset)


def learn_leads(
    actual: np.ndarray,
    seasonal: np.ndarray,
    leads: int,
    kernels: LevelKernels,
    origin_stride: int,
    max_origins: int,
    service_target: float,
    error_half_life_steps: float = np.inf,
    latency_slack: float = 0.0,
    hour_of: np.ndarray | None = None,
    quick: bool = False,
    season_lags: np.ndarray | None = None,
) -> LeadModel:
    """Replay the forecaster over `actual` (NaN = missing) with shape `seasonal`.

    `latency_slack`: the latency target over the step (3 s / 60 s): how far demand may
    run above the band within a step before requests wait longer than the target.
    `hour_of`: the local hour of each sample of `actual`; given, the band follows it.
    `quick`: a quick fit's replay (replay_origins), and point_choice.point_band's quick search.
    `season_lags`: (samples, lags) steps back to each sample's local time a day and a week
    before (level.season_lag_steps), as the live forecast reads them; None: the fixed lags."""
    residual = actual - seasonal
    last_origin = len(actual) - 1 - leads
    first_origin = max(kernels.window - 1, last_origin - max_origins * origin_stride)
    origin = np.arange(last_origin, first_origin - 1, -origin_stride)[::-1]
    mean_level = float(np.nanmean(actual)) if np.isfinite(actual).any() else 0.0
    scale_offset = 0.1 * mean_level + 1e-9
    if len(origin) < MIN_ORIGINS:
        return _spread_model(residual, leads, kernels, service_target, scale_offset, len(origin))
    reach = origin[0] - kernels.window + 1  # the first sample any origin's window sees
    features = level_features_at(residual[reach : origin[-1] + 1], origin - reach, kernels)
    target_at = origin[:, None] + np.arange(1, leads + 1)
    smoothed = centred_means(residual, kernels.season_smooth)
    lags = None if season_lags is None else season_lags[target_at]
    season = season_features(smoothed, target_at, origin[:, None], kernels, lags)
    # A lag the replay rarely saw (history shorter than lag + replay span) would get a
    # weight from a handful of origins: it is left out until it has been seen.
    unseen = np.mean(season != 0.0, axis=(0, 1)) < SEASON_MIN_SEEN
    season[:, :, unseen] = 0.0
    target = residual[target_at]
    betas = _lead_betas(regressors(features, season), target)
    recent = features[:, -1]
    shift_sd = 1.4826 * float(np.median(np.abs(recent - np.median(recent))))
    shift_sd = max(shift_sd, 0.01 * mean_level, 1e-9)
    draft = LeadModel(betas, shift_sd, np.zeros(leads), scale_offset, 0.5, len(origin), "")
    level, _ = offsets(features, season, draft)
    learned = np.maximum(seasonal[target_at] + level, 0.0)
    last = actual[origin][:, None]
    seen = actual[target_at]
    recency = 0.5 ** ((origin[-1] - origin) / error_half_life_steps)
    hours = None if hour_of is None else hour_of[target_at]
    held = np.where(np.isfinite(last), last, learned)
    volatility = relative_volatility(actual, origin, kernels.volatility_window, scale_offset)
    known = np.isfinite(volatility) & (volatility > 0)
    volatility_median = float(np.median(volatility[known])) if known.any() else 0.0
    log_ratio = volatility_log_ratio(volatility, volatility_median) if known.any() else None

    def with_week_change() -> tuple[np.ndarray, ...]:
        """The held point plus the week lag's change to each target (week_change), built
        only where the replay asks for it (a day stands out of the pick's others)."""
        fine = centred_means(residual, kernels.change_smooth)  # the lag's change keeps steps
        origin_lags = None if season_lags is None else season_lags[origin[:, None]]
        at = origin[:, None]
        change = week_change(fine, target_at, at, kernels, lags, origin_lags, unseen)
        return () if change is None else (np.maximum(held + change, 0.0),)

    taken, chosen = point_band(
        (learned, held),
        seen,
        recency,
        scale_offset,
        service_target,
        latency_slack,
        hours,
        log_ratio,
        quick,  # one search, for the point that one trial finds cheaper
        replayed_days(origin, kernels.season_lags[0]) if kernels.season_lags else None,
        with_week_change,
    )
    persistence = taken >= 1
    note = (
        f"band: at most {service_target:.3g} of requests late on {len(origin)} replayed "
        f"forecasts per lead (late: demand above the band for longer than the latency "
        f"target; errors scaled by forecast^{chosen.power:.2f}"
        + (" and by the hour of day" if chosen.hourly is not None else "")
        + (f" and by recent volatility^{chosen.elasticity:.2f}" if chosen.elasticity > 0 else "")
        + ", the cheapest scale law that meets the target on them)"
        + ("; point: the last sample, cheaper than shape + level there" if taken == 1 else "")
        + (
            "; point: the last sample plus the week lag's change to each target, which "
            "foresees a day the other points miss there"
            if taken == 2
            else ""
        )
    )
    return LeadModel(
        betas,
        shift_sd,
        chosen.band,
        scale_offset,
        chosen.power,
        len(origin),
        note,
        persistence,
        chosen.hourly,
        volatility_median,
        chosen.elasticity,
        taken == 2,
    )


def replayed_days(origin: np.ndarray, day: int) -> np.ndarray:
    """Each origin's day, counted back from the last (`day`: steps a day); the oldest
    part-day joins the one after it, so that no day is a handful of origins."""
    back = origin[-1] - origin
    return np.minimum(back // day, max(int(back[0]) // day - 1, 0))


def week_change(
    fine: np.ndarray,
    target_at: np.ndarray,
    origin_at: np.ndarray,
    kernels: LevelKernels,
    lags: np.ndarray | None,
    origin_lags: np.ndarray | None,
    unseen: np.ndarray | None = None,
) -> np.ndarray | None:
    """(origins, leads): the week lag's change from each origin (`origin_at`, (origins, 1))
    to its targets (`target_at`, (origins, leads)), `fine` (the residual smoothed over
    level.CHANGE_SMOOTH_S) a week before the target less that a week before the origin;
    0 where either is unknown (0: no news). None where the week lag is not learned (no
    history for it, or `unseen`: the lags the replay rarely saw). `lags`, `origin_lags`:
    the steps back to the same local time (level.season_lag_steps); None: the fixed lags."""
    ahead = season_features(fine, target_at, origin_at, kernels, lags)
    if unseen is not None:
        ahead[:, :, unseen] = 0.0
    if ahead.shape[2] < 2 or not np.any(ahead[:, :, -1] != 0.0):
        return None
    then = season_features(fine, origin_at, origin_at, kernels, origin_lags)
    week, before = ahead[:, :, -1], then[:, :, -1]
    return np.where((week != 0.0) & (before != 0.0), week - before, 0.0)


def _spread_model(
    residual: np.ndarray,
    leads: int,
    kernels: LevelKernels,
    service_target: float,
    scale_offset: float,
    origins: int,
) -> LeadModel:
    finite = residual[np.isfinite(residual)]
    spread = float(np.std(finite)) if len(finite) > 2 else 0.0
    z = max(NormalDist().inv_cdf(1 - service_target), 0.0)
    note = (
        f"band: normal {1 - service_target:.3g} quantile of the residual spread "
        f"(only {origins} past forecasts to learn errors from; need {MIN_ORIGINS})"
    )
    betas = np.zeros((leads, kernels.regressors))
    betas[:, WHOLE_LEVEL] = 1.0
    return LeadModel(betas, np.inf, np.full(leads, z * spread), scale_offset, 0.0, origins, note)


def _lead_betas(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per lead, least squares of the residual to come on its features (origins, leads, k)."""
    seen = np.isfinite(target).astype(float)  # (origins, leads)
    target = np.where(seen > 0, target, 0.0)
    # optimize: a two-step contraction, about 8 x faster than the plain three-operand loop.
    gram = np.einsum("ol,oli,olj->lij", seen, features, features, optimize=True)
    rhs = np.einsum("ol,oli->li", seen * target, features)
    ridge = 1e-6 * (np.trace(gram, axis1=1, axis2=2) + 1e-12)
    gram += ridge[:, None, None] * np.eye(features.shape[2])
    betas = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    betas[seen.sum(axis=0) < 8] = 0.0
    return np.clip(betas, -0.5, 1.5)
