"""The clock shape of demand: a ridge regression on Fourier terms of the local time of week.

Features depend only on the minute of the (local) week, so the fit runs on
per-minute-slot sums (10,080 slots) instead of on every sample: the cost is a
bincount over the history plus one small matrix product, whatever the history's
length or step. Daily harmonics are weekly harmonics 7k; the other weekly
harmonics carry the day-of-week modulation and are shrunk harder, so a short
history leans on the daily shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

WEEK_S = 7 * 86_400
SLOT_S = 60
N_SLOTS = WEEK_S // SLOT_S
_MONDAY_SHIFT_S = 3 * 86_400  # 1970-01-01 was a Thursday; shift so that Monday 00:00 is 0
_NS = 1_000_000_000
_CONSTANT_OFFSET_SPAN_S = 60 * 86_400  # no zone changes its offset twice within this span


def local_seconds(times_ns: np.ndarray, timezone: str) -> np.ndarray:
    """Wall-clock seconds since the epoch in `timezone` (so 09:00 stays 09:00 across DST)."""
    seconds = times_ns // _NS
    if timezone == "UTC" or len(seconds) == 0:
        return seconds
    zone = ZoneInfo(timezone)
    first, last = int(seconds[0]), int(seconds[-1])
    offset_first = _offset_s(first, zone)
    if last - first < _CONSTANT_OFFSET_SPAN_S and offset_first == _offset_s(last, zone):
        return seconds + offset_first
    index = pd.DatetimeIndex(times_ns.astype("datetime64[ns]")).tz_localize("UTC")
    wall = index.tz_convert(timezone).tz_localize(None)
    return wall.asi8 // _NS if wall.unit == "ns" else _as_seconds(wall)


def week_slots(times_ns: np.ndarray, timezone: str) -> np.ndarray:
    """The local minute of the week (Monday 00:00 = 0) of each time."""
    return ((local_seconds(times_ns, timezone) + _MONDAY_SHIFT_S) % WEEK_S) // SLOT_S


@lru_cache(maxsize=8)
def slot_features(daily_harmonics: int, weekly_harmonics: int) -> tuple[np.ndarray, np.ndarray]:
    """Fourier terms at every slot of the week, and which columns are day-of-week terms.

    Column 0 is the intercept; then cos/sin pairs of weekly harmonics 7, 14, ...
    (the daily shape), then of the weekly harmonics below `weekly_harmonics` that
    are not daily ones.
    """
    phase = 2.0 * np.pi * (np.arange(N_SLOTS) + 0.5) / N_SLOTS
    daily = [7 * k for k in range(1, daily_harmonics + 1)]
    weekly = [k for k in range(1, weekly_harmonics + 1) if k % 7]
    columns = [np.ones(N_SLOTS)]
    is_weekly = [False]
    for harmonic in daily + weekly:
        columns += [np.cos(harmonic * phase), np.sin(harmonic * phase)]
        is_weekly += [harmonic % 7 != 0] * 2
    features = np.ascontiguousarray(np.column_stack(columns))
    features.setflags(write=False)
    weekly_mask = np.array(is_weekly)
    weekly_mask.setflags(write=False)
    return features, weekly_mask


def fit_shape(
    slots: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    daily_harmonics: int,
    weekly_harmonics: int,
    use_weekly: bool,
    daily_penalty: float = 1e-4,
    weekly_penalty: float = 0.05,
) -> np.ndarray:
    """Demand at each slot of the week (N_SLOTS values), from samples with NaN for missing.

    Penalties are relative to the total weight, so they mean the same at any
    history length: harmonic k of the day costs `daily_penalty * k**2` (smoothness),
    a day-of-week term `weekly_penalty`.
    """
    features, weekly_mask = slot_features(daily_harmonics, weekly_harmonics)
    valid = np.isfinite(values)
    slot_weight = np.bincount(slots[valid], weights=weights[valid], minlength=N_SLOTS)
    slot_sum = np.bincount(slots[valid], weights=weights[valid] * values[valid], minlength=N_SLOTS)
    columns = np.ones(features.shape[1], dtype=bool) if use_weekly else ~weekly_mask
    used = features[:, columns]
    total = float(slot_weight.sum())
    if total <= 0.0:
        return np.zeros(N_SLOTS)
    gram = used.T @ (used * slot_weight[:, None])
    rhs = used.T @ slot_sum
    penalty = np.zeros(used.shape[1])
    daily_order = np.repeat(np.arange(1, daily_harmonics + 1), 2)
    penalty[1 : 1 + 2 * daily_harmonics] = daily_penalty * daily_order**2
    penalty[1 + 2 * daily_harmonics :] = weekly_penalty
    gram[np.diag_indices_from(gram)] += penalty * total
    coef = np.linalg.solve(gram, rhs)
    return used @ coef


def _offset_s(epoch_s: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(epoch_s, tz=UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _as_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("s").asi8
