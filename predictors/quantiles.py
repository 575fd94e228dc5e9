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

A level far outside what the replay saw (|recent mean residual| > SHIFT_Z robust
standard deviations) is a level shift: the forecast then takes the fast level
whole, so it follows a new level within the hour instead of trusting the shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SHIFT_Z = 4.0
MIN_ORIGINS = 48
"""Fewer replayed forecasts than this: the band falls back to the residual spread."""


@dataclass(frozen=True)
class LevelKernels:
    """Weights over the window before an origin (oldest first), one column per feature."""

    weights: np.ndarray  # (window, 3): fast EWMA, slow EWMA, recent uniform mean

    @property
    def window(self) -> int:
        return self.weights.shape[0]


def level_kernels(step_s: float) -> LevelKernels:
    window = max(4, int(round(4 * 3600 / step_s)))
    age_s = (np.arange(window)[::-1]) * step_s
    fast = 0.5 ** (age_s / 600.0)
    slow = 0.5 ** (age_s / 3600.0)
    recent = (age_s < 1800.0).astype(float)
    return LevelKernels(np.column_stack([fast, slow, recent]))


def level_features(windows: np.ndarray, kernels: LevelKernels) -> np.ndarray:
    """Weighted means of residual windows (rows, oldest first; NaN = missing) -> (rows, 3)."""
    valid = np.isfinite(windows)
    # einsum, not @: a threaded BLAS call costs more than this whole product on a busy host.
    weighted = np.einsum("ow,wk->ok", np.where(valid, windows, 0.0), kernels.weights)
    mass = np.einsum("ow,wk->ok", valid.astype(float), kernels.weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0.0, weighted / np.maximum(mass, 1e-300), 0.0)


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
    windows = sliding_window_view(residual, kernels.window)[origin - kernels.window + 1]
    features = level_features(windows, kernels)
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
    band = _weighted_quantiles(scaled, np.where(np.isfinite(seen), seen, 0.0), 1 - service_target)
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
    betas = np.zeros((target.shape[1], 2))
    for lead in range(target.shape[1]):
        seen = np.isfinite(target[:, lead])
        x, y = features[seen], target[seen, lead]
        if len(y) < 8:
            continue
        gram = x.T @ x
        gram[np.diag_indices(2)] += 1e-6 * (np.trace(gram) + 1e-12)
        betas[lead] = np.clip(np.linalg.solve(gram, x.T @ y), -0.5, 1.5)
    return betas


def _scale_power(point: np.ndarray, error: np.ndarray, offset: float) -> float:
    """How error size grows with the forecast: slope of log |error| on log(point + c)."""
    seen = np.isfinite(error)
    x, y = np.log(point[seen] + offset), np.abs(error[seen])
    if len(x) < 50 or np.ptp(x) < 1e-6:
        return 0.5
    edges = np.quantile(x, np.linspace(0, 1, 6))
    bins = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 4)
    centers, sizes = [], []
    for b in range(5):
        inside = bins == b
        if inside.sum() >= 10:
            centers.append(float(np.mean(x[inside])))
            sizes.append(float(np.quantile(y[inside], 0.9)))
    sizes_arr = np.log(np.maximum(np.array(sizes), 1e-12))
    if len(centers) < 2 or np.ptp(centers) < 1e-6:
        return 0.5
    slope = float(np.polyfit(centers, sizes_arr, 1)[0])
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
