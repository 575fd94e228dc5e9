"""Level correction and the error-quantile band, both learned from the forecaster's own errors.

At a refit the forecaster replays itself over its recent history: at origins
every few minutes it computes the level features it would have seen (weighted
means of the residual from the clock shape over the preceding hours), predicts
each lead, and compares with what came. From those replayed forecasts it learns,
per lead, how much of the recent level persists (a two-term regression) and the
error quantile that meets the service target. The quantile is request-weighted
(a minute with more requests counts more, since the target is a share of late
requests) and taken on errors divided by a scale that grows with the forecast,
(point + c)**p with p fitted from the errors themselves (about 0.5 for Poisson
noise, about 1 for multiplicative noise), so the band widens at the peaks.
Recent errors weigh more (a half-life of days), so the band widens soon after the
traffic turns more volatile. The caller judges the shape out of sample (each day's
shape fitted without that day), or the replayed errors would look too small.

A level far outside what the replay saw (|recent mean residual| > SHIFT_Z robust
standard deviations) is a level shift: the forecast then takes the fast level
whole, so it follows a new level within the hour instead of trusting the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from scipy.signal import lfilter

SHIFT_Z = 4.0
MIN_ORIGINS = 200
"""Fewer replayed forecasts than this: the band falls back to the residual spread."""


@dataclass(frozen=True)
class LevelKernels:
    """Three weighted means of the residuals over the `window` steps up to an origin:
    fast and slow exponential decay (half-lives of 10 and 60 minutes), and a plain
    mean of the last 30 minutes (`recent` steps)."""

    decays: tuple[float, float]  # per-step decay of the fast and slow means
    window: int
    recent: int
    weights: np.ndarray = field(init=False, repr=False, compare=False)  # (window, 3), oldest first

    def __post_init__(self) -> None:
        age = np.arange(self.window)[::-1]
        fast, slow = (decay**age for decay in self.decays)
        weights = np.column_stack([fast, slow, (age < self.recent).astype(float)])
        object.__setattr__(self, "weights", weights)


def level_kernels(step_s: float) -> LevelKernels:
    window = max(4, round(4 * 3600 / step_s))
    decays = (0.5 ** (step_s / 600.0), 0.5 ** (step_s / 3600.0))
    return LevelKernels(decays, window, max(1, round(1800 / step_s)))


def level_features(windows: np.ndarray, kernels: LevelKernels) -> np.ndarray:
    """Weighted means of residual windows (rows, oldest first; NaN = missing) -> (rows, 3)."""
    valid = np.isfinite(windows)
    weights = kernels.weights
    # einsum, not @: a threaded BLAS call costs more than this whole product on a busy host.
    weighted = np.einsum("ow,wk->ok", np.where(valid, windows, 0.0), weights)
    mass = np.einsum("ow,wk->ok", valid.astype(float), weights)
    return _ratio(weighted, mass)


def level_features_everywhere(residual: np.ndarray, kernels: LevelKernels) -> np.ndarray:
    """level_features of the window ending at every step, in O(n): recursive filters for
    the decaying means (minus what fell out of the window), cumulative sums for the plain one.
    Steps before a full window see only what exists, like a window padded with NaN."""
    valid = np.isfinite(residual)
    columns = []
    for series in (np.where(valid, residual, 0.0), valid.astype(float)):
        sums = []
        for decay in kernels.decays:
            infinite = lfilter([1.0], [1.0, -decay], series)
            dropped = np.concatenate((np.zeros(kernels.window), infinite[: -kernels.window]))
            sums.append(infinite - decay**kernels.window * dropped[: len(series)])
        total = np.concatenate(([0.0], np.cumsum(series)))
        index = np.arange(1, len(series) + 1)
        sums.append(total[index] - total[np.maximum(index - kernels.recent, 0)])
        columns.append(np.column_stack(sums))
    return _ratio(columns[0], columns[1])


def _ratio(weighted: np.ndarray, mass: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 1e-9, weighted / np.maximum(mass, 1e-300), 0.0)


@dataclass(frozen=True)
class LeadModel:
    """What the replay learned, for leads 1..len(betas)."""

    betas: np.ndarray  # (leads, 2): weight of the fast and slow level at each lead
    shift_sd: float  # robust spread of the recent-mean feature; beyond SHIFT_Z of it: a shift
    band: np.ndarray  # (leads,): error quantile in units of scale
    scale_offset: float
    scale_power: float
    origins: int
    note: str

    @property
    def leads(self) -> int:
        return len(self.betas)


def offsets(features: np.ndarray, model: LeadModel, leads: int) -> tuple[np.ndarray, np.ndarray]:
    """Level correction per (origin, lead) and whether each origin is in a level shift."""
    shifted = np.abs(features[:, 2]) > SHIFT_Z * model.shift_sd
    regular = features[:, :2] @ model.betas[:leads].T
    whole = np.repeat(features[:, :1], leads, axis=1)
    return np.where(shifted[:, None], whole, regular), shifted


def upper_of(point: np.ndarray, model: LeadModel) -> np.ndarray:
    scale = (point + model.scale_offset) ** model.scale_power
    return point + model.band[: len(point)] * scale


def learn_leads(
    actual: np.ndarray,
    seasonal: np.ndarray,
    leads: int,
    kernels: LevelKernels,
    origin_stride: int,
    max_origins: int,
    service_target: float,
    error_half_life_steps: float = np.inf,
) -> LeadModel:
    """Replay the forecaster over `actual` (NaN = missing) with shape `seasonal`."""
    residual = actual - seasonal
    last_origin = len(actual) - 1 - leads
    first_origin = max(kernels.window - 1, last_origin - max_origins * origin_stride)
    origin = np.arange(last_origin, first_origin - 1, -origin_stride)[::-1]
    mean_level = float(np.nanmean(actual)) if np.isfinite(actual).any() else 0.0
    scale_offset = 0.1 * mean_level + 1e-9
    if len(origin) < MIN_ORIGINS:
        return _spread_model(residual, leads, service_target, scale_offset, len(origin))
    reach = origin[0] - kernels.window + 1  # the first sample any origin's window sees
    features = level_features_everywhere(residual[reach : origin[-1] + 1], kernels)[origin - reach]
    target_at = origin[:, None] + np.arange(1, leads + 1)
    target = residual[target_at]
    betas = _lead_betas(features[:, :2], target)
    recent = features[:, 2]
    shift_sd = 1.4826 * float(np.median(np.abs(recent - np.median(recent))))
    shift_sd = max(shift_sd, 0.01 * mean_level, 1e-9)
    draft = LeadModel(betas, shift_sd, np.zeros(leads), scale_offset, 0.5, len(origin), "")
    level, _ = offsets(features, draft, leads)
    point = np.maximum(seasonal[target_at] + level, 0.0)
    seen = actual[target_at]
    error = seen - point
    power = _scale_power(point, error, scale_offset)
    scaled = error / (point + scale_offset) ** power
    recency = 0.5 ** ((origin[-1] - origin) / error_half_life_steps)
    requests = np.where(np.isfinite(seen), seen, 0.0) * recency[:, None]
    band = _weighted_quantiles(scaled, requests, 1 - service_target)
    band = np.maximum.accumulate(np.maximum(band, 0.0))
    note = (
        f"band: {1 - service_target:.3g} request-weighted quantile of {len(origin)} "
        f"replayed forecasts per lead (errors scaled by forecast^{power:.2f})"
    )
    return LeadModel(betas, shift_sd, band, scale_offset, power, len(origin), note)


def _spread_model(
    residual: np.ndarray, leads: int, service_target: float, scale_offset: float, origins: int
) -> LeadModel:
    finite = residual[np.isfinite(residual)]
    spread = float(np.std(finite)) if len(finite) > 2 else 0.0
    z = max(NormalDist().inv_cdf(1 - service_target), 0.0)
    note = (
        f"band: normal {1 - service_target:.3g} quantile of the residual spread "
        f"(only {origins} past forecasts to learn errors from; need {MIN_ORIGINS})"
    )
    betas = np.tile([1.0, 0.0], (leads, 1))
    return LeadModel(betas, np.inf, np.full(leads, z * spread), scale_offset, 0.0, origins, note)


def _lead_betas(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per lead, least squares of the residual to come on the two level features."""
    seen = np.isfinite(target).astype(float)  # (origins, leads)
    target = np.where(seen > 0, target, 0.0)
    gram = np.einsum("ol,oi,oj->lij", seen, features, features)
    rhs = np.einsum("ol,oi->li", seen * target, features)
    ridge = 1e-6 * (np.trace(gram, axis1=1, axis2=2) + 1e-12)
    gram += ridge[:, None, None] * np.eye(2)
    betas = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    betas[seen.sum(axis=0) < 8] = 0.0
    return np.clip(betas, -0.5, 1.5)


def _scale_power(point: np.ndarray, error: np.ndarray, offset: float) -> float:
    """How error size grows with the forecast: slope of log mean |error| on log(point + c),
    over five bins of the forecast."""
    seen = np.isfinite(error)
    x, y = np.log(point[seen] + offset), np.abs(error[seen])
    if len(x) < 50 or np.ptp(x) < 1e-6:
        return 0.5
    bins = np.searchsorted(np.quantile(x, [0.2, 0.4, 0.6, 0.8]), x)
    counts = np.bincount(bins, minlength=5)
    full = counts >= 10
    centers = np.bincount(bins, weights=x, minlength=5)[full] / counts[full]
    sizes = np.bincount(bins, weights=y, minlength=5)[full] / counts[full]
    if len(centers) < 2 or np.ptp(centers) < 1e-6:
        return 0.5
    slope = float(np.polyfit(centers, np.log(np.maximum(sizes, 1e-12)), 1)[0])
    return float(np.clip(slope, 0.0, 1.0))


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Column-wise weighted quantile; NaN values are ignored, zero total weight is unweighted."""
    missing = ~np.isfinite(values)
    weights = np.where(missing, 0.0, weights)
    no_weight = weights.sum(axis=0) <= 0.0
    weights[:, no_weight] = (~missing[:, no_weight]).astype(float)
    ordered = np.argsort(np.where(missing, np.inf, values), axis=0)
    sorted_values = np.take_along_axis(values, ordered, axis=0)
    cumulative = np.cumsum(np.take_along_axis(weights, ordered, axis=0), axis=0)
    total = cumulative[-1]
    position = np.minimum((cumulative < q * total).sum(axis=0), len(values) - 1)
    result = sorted_values[position, np.arange(values.shape[1])]
    return np.where((total > 0) & np.isfinite(result), result, 0.0)
