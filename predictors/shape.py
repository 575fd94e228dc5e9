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
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import scipy.fft

WEEK_S = 7 * 86_400
SLOT_S = 60
N_SLOTS = WEEK_S // SLOT_S
_MONDAY_SHIFT_S = 3 * 86_400  # 1970-01-01 was a Thursday; shift so that Monday 00:00 is 0
_NS = 1_000_000_000
_CONSTANT_OFFSET_SPAN_S = 60 * 86_400  # spans up to this long may take one offset
_OFFSET_PROBE_S = 86_400  # offset changes since 1970 lie at least 6.9 days apart
DAILY_PENALTY = 1e-4
WEEKLY_PENALTY = 0.05


def local_seconds(times_ns: np.ndarray, timezone: str) -> np.ndarray:
    """Wall-clock seconds since the epoch in `timezone` (so 09:00 stays 09:00 across DST)."""
    seconds = times_ns // _NS
    if timezone == "UTC" or len(seconds) == 0:
        return seconds
    zone = ZoneInfo(timezone)
    first, last = int(seconds[0]), int(seconds[-1])
    offset_first = _offset_s(first, zone)
    if last - first < _CONSTANT_OFFSET_SPAN_S and _one_offset(first, last, zone, offset_first):
        return seconds + offset_first
    index = pd.DatetimeIndex(times_ns.astype("datetime64[ns]")).tz_localize("UTC")
    wall = index.tz_convert(timezone).tz_localize(None)
    return wall.asi8 // _NS if wall.unit == "ns" else _as_seconds(wall)


def instants_of_local(local_s: np.ndarray, timezone: str) -> np.ndarray:
    """The first instant (epoch seconds) at which the clock in `timezone` shows each
    wall-clock second of local_seconds, or later: schedules.wall_time_to_instant's rule
    (a repeated time: its first occurrence; a time the clocks skip: the jump)."""
    wall = pd.DatetimeIndex(np.asarray(local_s, dtype=np.int64).astype("datetime64[s]"))
    first, second = (
        wall.tz_localize(timezone, ambiguous=np.full(len(wall), dst), nonexistent="shift_forward")
        for dst in (True, False)
    )  # where the time exists twice, one of the two is the first: the earlier
    return np.minimum(_as_seconds(first), _as_seconds(second))


def one_offset(first_s: int, last_s: int, timezone: str) -> bool:
    """Whether `timezone` keeps one UTC offset from `first_s` to `last_s` (epoch seconds)."""
    if timezone == "UTC":
        return True
    zone = ZoneInfo(timezone)
    return _one_offset(first_s, last_s, zone, _offset_s(first_s, zone))


def week_slots(times_ns: np.ndarray, timezone: str) -> np.ndarray:
    """The local minute of the week (Monday 00:00 = 0) of each time."""
    return week_slots_of_local(local_seconds(times_ns, timezone))


def week_slots_of_local(local_s: np.ndarray) -> np.ndarray:
    return ((local_s + _MONDAY_SHIFT_S) % WEEK_S) // SLOT_S


def hour_of_day(local_s: np.ndarray) -> np.ndarray:
    """The local hour (0-23) of each wall-clock second from local_seconds."""
    return ((local_s // 3600) % 24).astype(np.int64)


def harmonics(daily_harmonics: int, weekly_harmonics: int, use_weekly: bool) -> np.ndarray:
    """Harmonics of the week in the model: 7k for the daily shape, then day-of-week ones."""
    daily = [7 * k for k in range(1, daily_harmonics + 1)]
    weekly = [k for k in range(1, weekly_harmonics + 1) if k % 7] if use_weekly else []
    return np.array(daily + weekly, dtype=np.int64)


def fit_shape(
    slots: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    daily_harmonics: int,
    weekly_harmonics: int,
    use_weekly: bool,
    daily_penalty: float = DAILY_PENALTY,
    weekly_penalty: float = WEEKLY_PENALTY,
) -> np.ndarray:
    """Demand at each slot of the week (N_SLOTS values), from samples with NaN for missing.

    The normal equations of Fourier terms need only the Fourier transform of the
    per-slot weights and weighted sums (products of harmonics are harmonics), so
    no large matrix is built. Penalties are relative to the total weight, so they
    mean the same at any history length: daily harmonic k costs
    `daily_penalty * k**2` (smoothness), a day-of-week term `weekly_penalty`.
    """
    valid = np.isfinite(values)
    slot_weight = np.bincount(slots[valid], weights=weights[valid], minlength=N_SLOTS)
    slot_sum = np.bincount(slots[valid], weights=weights[valid] * values[valid], minlength=N_SLOTS)
    order = harmonics(daily_harmonics, weekly_harmonics, use_weekly)
    penalties = (daily_penalty, weekly_penalty)
    return _shapes_of_slot_sums(slot_weight[None], slot_sum[None], order, penalties)[0]


def fit_shape_and_folds(
    slots: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    fold: np.ndarray,
    daily_harmonics: int,
    weekly_harmonics: int,
    use_weekly: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """fit_shape of all the samples, then of those outside fold 0 (where `fold` is False),
    then of those outside fold 1: the same shapes as three fit_shape calls, to the last
    bit, for about half the cost (one pass over the samples, transforms and solves
    batched). The folds let a replay judge the shape out of sample."""
    valid = np.isfinite(values)
    kept_slots, kept_weights = slots[valid], weights[valid]
    kept_sums = kept_weights * values[valid]
    # Each fold's per-slot sums add the same samples in the same order as a bincount of
    # that fold alone: one bincount over 2 x N_SLOTS bins gives both, bit for bit.
    by_fold = kept_slots + N_SLOTS * fold[valid].astype(np.int64)
    slot_weight = np.empty((3, N_SLOTS))
    slot_sum = np.empty((3, N_SLOTS))
    slot_weight[0] = np.bincount(kept_slots, weights=kept_weights, minlength=N_SLOTS)
    slot_sum[0] = np.bincount(kept_slots, weights=kept_sums, minlength=N_SLOTS)
    folded = np.bincount(by_fold, weights=kept_weights, minlength=2 * N_SLOTS)
    slot_weight[1:] = folded.reshape(2, N_SLOTS)[::-1]  # without fold 0 = fold 1's sums
    folded = np.bincount(by_fold, weights=kept_sums, minlength=2 * N_SLOTS)
    slot_sum[1:] = folded.reshape(2, N_SLOTS)[::-1]
    order = harmonics(daily_harmonics, weekly_harmonics, use_weekly)
    shapes = _shapes_of_slot_sums(slot_weight, slot_sum, order, (DAILY_PENALTY, WEEKLY_PENALTY))
    return shapes[0], shapes[1], shapes[2]


def _shapes_of_slot_sums(
    slot_weight: np.ndarray, slot_sum: np.ndarray, order: np.ndarray, penalties: tuple
) -> np.ndarray:
    """(shapes, N_SLOTS): the ridge fit of each row's per-slot weights and weighted sums."""
    shapes = np.zeros(slot_weight.shape)
    total = slot_weight.sum(axis=1)
    fitted = total > 0.0
    if not fitted.any():
        return shapes
    reach = 2 * int(order.max()) + 1
    weight_cos, weight_sin = _slot_transform(slot_weight[fitted], reach)
    sum_cos, sum_sin = _slot_transform(slot_sum[fitted], reach)
    h, k = order[:, None], order[None, :]
    diff, plus = np.abs(h - k), h + k
    sign = np.sign(h - k)
    size = 1 + 2 * len(order)
    gram = np.empty((len(weight_cos), size, size))
    gram[:, 0, 0] = weight_cos[:, 0]
    gram[:, 0, 1::2] = gram[:, 1::2, 0] = weight_cos[:, order]
    gram[:, 0, 2::2] = gram[:, 2::2, 0] = weight_sin[:, order]
    gram[:, 1::2, 1::2] = 0.5 * (weight_cos[:, diff] + weight_cos[:, plus])
    gram[:, 2::2, 2::2] = 0.5 * (weight_cos[:, diff] - weight_cos[:, plus])
    cos_sin = 0.5 * (weight_sin[:, plus] - sign * weight_sin[:, diff])  # cos(h) * sin(k)
    gram[:, 1::2, 2::2] = cos_sin
    gram[:, 2::2, 1::2] = cos_sin.transpose(0, 2, 1)
    rhs = np.empty((len(sum_cos), size))
    rhs[:, 0], rhs[:, 1::2], rhs[:, 2::2] = sum_cos[:, 0], sum_cos[:, order], sum_sin[:, order]
    daily_penalty, weekly_penalty = penalties
    penalty = np.where(order % 7 == 0, daily_penalty * (order / 7.0) ** 2, weekly_penalty)
    diagonal = np.arange(1, size)
    gram[:, diagonal, diagonal] += np.repeat(penalty, 2) * total[fitted, None]
    coef = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    spectrum = np.zeros((len(coef), N_SLOTS // 2 + 1), dtype=complex)
    spectrum[:, 0] = coef[:, 0]
    # cos(h phi) = Re e^{i h phi}, phi = 2 pi (s + 0.5) / N: undo the half-slot shift.
    turn = np.exp(1j * np.pi * order / N_SLOTS)
    spectrum[:, order] = 0.5 * (coef[:, 1::2] - 1j * coef[:, 2::2]) * turn
    shapes[fitted] = np.fft.irfft(spectrum * N_SLOTS, n=N_SLOTS, axis=1)
    return shapes


def _slot_transform(per_slot: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of per_slot * cos(m phi) and * sin(m phi) over slots, for m < reach (per row)."""
    # scipy's rfft: the same pocketfft transform, bit for bit, at a third of numpy's cost
    # for these rows (numpy's wrapper was a tenth of a quick first fit).
    transform = scipy.fft.rfft(per_slot, axis=-1)[..., :reach]
    shifted = np.conj(transform) * np.exp(1j * np.pi * np.arange(reach) / N_SLOTS)
    return shifted.real, shifted.imag


def _one_offset(first: int, last: int, zone: ZoneInfo, offset: int) -> bool:
    """Whether `zone` keeps `offset` from `first` to `last`: the same offset at both ends
    is not enough, as Casablanca's clock goes back for Ramadan and forward again 35 days
    later (a 48-day history read an hour off for the five weeks between)."""
    probes = [*range(first, last, _OFFSET_PROBE_S), last]
    return all(_offset_s(probe, zone) == offset for probe in probes)


def _offset_s(epoch_s: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(epoch_s, tz=UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _as_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("s").asi8
