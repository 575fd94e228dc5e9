"""Repair of real demand data before it is learned from.

Missing samples stay NaN (never zero load). A short dip to about zero in a series
that is otherwise busy is read as a counter reset or a scrape hiccup and becomes
NaN too; a long one is real (an outage, a drained pool) and is kept. A series that
is often empty (sparse traffic, e.g. 70% of minutes without a request) keeps
every zero: there, zero is the usual value and not a fault.
"""

from __future__ import annotations

import numpy as np

SPARSE_ZERO_SHARE = 0.05
"""A series with more empty samples than this is sparse: its zeros are real."""

DIP_FRACTION = 0.05
"""A sample below this share of the level of the hour before it is a dip."""


def on_grid(times_ns: np.ndarray, values: np.ndarray, start_ns: int, step_ns: int, length: int):
    """Values placed at their step of a regular grid from `start_ns`; NaN where none arrived."""
    grid = np.full(length, np.nan)
    position = np.rint((times_ns - start_ns) / step_ns).astype(np.int64)
    inside = (position >= 0) & (position < length)
    grid[position[inside]] = values[inside]
    return grid


def is_sparse(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and float(np.mean(finite <= 0.0)) > SPARSE_ZERO_SHARE


def repair(values: np.ndarray, level_steps: int, max_dip_steps: int, sparse: bool) -> np.ndarray:
    """A copy with non-finite or negative samples and short dips to ~0 turned into NaN.

    `level_steps` is the trailing window the level is measured over (about an hour);
    dips longer than `max_dip_steps` are kept as real.
    """
    repaired = np.where(np.isfinite(values) & (values >= 0.0), values, np.nan)
    if sparse or len(repaired) < 2:
        return repaired
    low = _dip_candidates(repaired)
    if not len(low):  # a tick's tail usually has nothing near 0
        return repaired
    # The level (the mean of the finite samples among the `level_steps` before) only where
    # a dip can be: the same sums, gathered at fewer indices.
    level = window_means(repaired, level_steps, 0, low)
    below = np.isfinite(level) & (level > 0.0) & (repaired[low] <= DIP_FRACTION * level)
    if not below.any():
        return repaired
    dip = np.zeros(len(repaired), dtype=bool)
    dip[low[below]] = True
    edges = np.diff(np.concatenate(([0], dip.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    short = (ends - starts) <= max_dip_steps
    marks = np.zeros(len(repaired) + 1, dtype=np.int64)
    # A run starts on a dip and ends after one: no index is two runs' start or end, so
    # plain fancy assignment counts as np.add.at would (at a fraction of its cost).
    marks[starts[short]] += 1
    marks[ends[short]] -= 1
    repaired[np.cumsum(marks[:-1]) > 0] = np.nan
    return repaired


def _dip_candidates(repaired: np.ndarray) -> np.ndarray:
    """The indices of the samples low enough to be a dip below some trailing level: a level
    is a mean of the samples, at most their highest (plus the cumulative sums' rounding,
    bounded by 4 n^2 epsilon of it); none in a series with nothing near 0."""
    top = np.fmax.reduce(repaired)  # NaN only where every sample is
    rounding = 4.0 * len(repaired) ** 2 * np.finfo(float).eps
    return np.flatnonzero(repaired <= DIP_FRACTION * top * (1.0 + rounding))


def window_means(
    values: np.ndarray, before: int, after: int, at: np.ndarray | None = None
) -> np.ndarray:
    """Mean of the finite values in [i - before, i + after) at each i (NaN if none); only
    at the indices `at` where given."""
    finite = np.isfinite(values)
    # add.accumulate is what np.cumsum runs, without its wrapper's microsecond.
    sums = np.zeros(len(values) + 1)
    np.add.accumulate(np.where(finite, values, 0.0), out=sums[1:])
    counts = np.zeros(len(values) + 1, dtype=np.int64)
    np.add.accumulate(finite, out=counts[1:], dtype=np.int64)
    index = np.arange(len(values)) if at is None else np.asarray(at)
    # np.maximum/minimum, not np.clip: clip's own overhead was a tenth of a light tick.
    low = np.maximum(index - before, 0)
    high = np.minimum(index + after, len(values))
    count = counts[high] - counts[low]
    # divide where= instead of errstate + where: the same quotients, a light tick's tenth less.
    empty = np.full(count.shape, np.nan)
    return np.divide(sums[high] - sums[low], count, out=empty, where=count > 0)


def newest_window_mean(values: np.ndarray, window: int) -> np.float64:
    """window_means(values, window - 1, 1, [len(values) - 1])[0], the mean of the finite
    values among the last `window`: the same sums in the same order, so the same float,
    without the arrays for every index that a forecast's one origin does not need."""
    finite = np.isfinite(values)
    sums = np.add.accumulate(np.where(finite, values, 0.0))
    low = max(len(values) - window, 0)
    count = int(np.count_nonzero(finite[low:]))
    if not count:
        return np.float64(np.nan)
    return (sums[-1] - (sums[low - 1] if low else 0.0)) / count
