"""A pool's kept history on a regular grid, brought up to each tick's query window.

One forecaster serves one pool for its whole life and is handed, every tick, the pool's
query window, of which only the newest samples are new: the grid keeps what those
windows add up to, at most `max_span_ns` of it, NaN where no sample came. A window that
continues the grid costs only its newest samples: they are written into spare room at
the end of a buffer (re-reading the last OVERLAP_STEPS, which a metrics source may
revise), and the buffer is compacted once that room is used up, not copied on every tick.
A window that does not continue it (restarted, went back, older data appeared, the step
changed) rebuilds it.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from predictors.base import infer_step
from predictors.cleaning import on_grid

OVERLAP_STEPS = 5
"""The newest samples a metrics source may still revise: re-read at every append."""
_INT64_MAX = int(np.iinfo(np.int64).max)
SPARE_SHARE = 8
"""Spare room at the end of the buffer: 1/SPARE_SHARE of the kept span (at least 64 steps),
so a full 14-day grid of minutes is compacted about every 1.75 days."""
FUTURE_SPAN_NS = 86_400 * 1_000_000_000
"""The forecast times built at once (future_index), past the horizon: a day of steps."""


_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def epoch_ns(index: pd.DatetimeIndex) -> np.ndarray:
    """The index's times in integer ns since the epoch: its own integers scaled to ns, not
    as_unit's new index (a tick's twentieth, for a query window read in us or s)."""
    times = index.asi8
    factor = _NS_PER_UNIT[index.unit]
    if factor == 1:
        return times
    if len(times) and max(abs(int(times[0])), abs(int(times[-1]))) > _INT64_MAX // factor:
        return index.as_unit("ns").asi8  # beyond ns's range (2262): pandas says so
    return times * factor


def epoch_index(stamps: np.ndarray, unit: str, tz: object) -> pd.DatetimeIndex:
    """Epoch integers (in `unit`: "s", "ms", "us" or "ns") as an index in zone `tz`, naive
    for None. Epoch times are UTC instants: localizing them in another zone would read them
    as its wall clock (an hour or two off), and trip on its DST's doubled hour."""
    index = pd.DatetimeIndex(np.asarray(stamps, dtype=np.int64).view(f"M8[{unit}]"))
    if tz is None or str(tz) == "UTC":
        return index.tz_localize(tz)
    return index.tz_localize("UTC").tz_convert(tz)


def epoch_stamp(moment: datetime, unit: str) -> int:
    """A moment as an epoch integer in a DatetimeIndex's unit ("s", "ms", "us" or "ns"), to
    compare with its asi8."""
    return int(pd.Timestamp(moment).as_unit(unit).asm8.astype(np.int64))


def _refuse_unsorted(stamps: np.ndarray) -> None:
    """A ValueError where a time comes before the one above it: placed on the grid from its
    first and last, such a history silently lost its newest samples (a burst, last but one)."""
    if np.any(stamps[1:] < stamps[:-1]):
        raise ValueError("history timestamps must increase: a sample's time is before the last")


class HistoryGrid:
    """Values at start_ns + k * step_ns (k = 0 .. len - 1), the newest at end_ns."""

    def __init__(self, max_span_ns: int) -> None:
        self.max_span_ns = max_span_ns
        self.start_ns = 0
        self.step_ns = 0
        self.tz: object = "UTC"
        """The time zone of the history's index, which the forecast's times carry."""
        self._buffer = np.empty(0)
        self._lo = 0  # the grid is _buffer[_lo : _lo + _length]
        self._length = 0
        self._first_valid_ns: int | None = None
        self._future: tuple[int, int, pd.DatetimeIndex] | None = None  # first ns, step, index

    @property
    def values(self) -> np.ndarray:
        """The grid's values, oldest first (a view: read, never written to)."""
        return self._buffer[self._lo : self._lo + self._length]

    @property
    def empty(self) -> bool:
        return self._length == 0

    @property
    def end_ns(self) -> int:
        return self.start_ns + (self._length - 1) * self.step_ns

    def absorb(self, history: pd.Series) -> bool:
        """Bring the grid up to `history`; True when it had to be rebuilt from it."""
        index = history.index
        if not isinstance(index, pd.DatetimeIndex):
            index = pd.DatetimeIndex(index)
        # In the index's own integers: only the new tail is scaled to ns (the whole window's
        # times scaled every tick were ~30 µs a pool).
        stamps, factor = index.asi8, _NS_PER_UNIT[index.unit]
        first_ns, last_ns = int(stamps[0]) * factor, int(stamps[-1]) * factor
        in_range = max(abs(first_ns), abs(last_ns)) <= _INT64_MAX  # else epoch_ns raises
        if self._length and in_range:
            end_ns, max_ns = self.end_ns, self.max_span_ns
            continues = (
                last_ns >= end_ns
                and first_ns <= end_ns + max_ns
                and (first_ns >= self.start_ns or self.start_ns <= last_ns - max_ns)
            )
            if continues:
                from_ns = end_ns - OVERLAP_STEPS * self.step_ns
                since = int(np.searchsorted(stamps, -(-from_ns // factor)))  # first >= from_ns
                _refuse_unsorted(stamps[max(since - 1, 0) :])  # the only part read
                tail_ns = stamps[since:] * factor
                position, off_grid = np.divmod(tail_ns - self.start_ns, self.step_ns)
                if not off_grid.any():
                    self._append(position, history.to_numpy(dtype=float)[since:], last_ns)
                    return False
        self._rebuild(history, index.tz, epoch_ns(index), first_ns, last_ns)
        return True

    def _rebuild(
        self, history: pd.Series, tz: object, times_ns: np.ndarray, first_ns: int, last_ns: int
    ) -> None:
        _refuse_unsorted(times_ns)
        step_ns = int(infer_step(history).value)
        if step_ns <= 0:
            raise ValueError("history timestamps must increase")
        back = min((last_ns - first_ns) // step_ns, self.max_span_ns // step_ns)
        self.tz, self._future = tz, None
        self.step_ns, self.start_ns = step_ns, last_ns - back * step_ns
        self._buffer = on_grid(
            times_ns, history.to_numpy(dtype=float), self.start_ns, step_ns, back + 1
        )
        self._lo, self._length = 0, back + 1
        self._first_valid_ns = None

    def _append(self, position: np.ndarray, new_values: np.ndarray, last_ns: int) -> None:
        """Grow the grid through last_ns (NaN where nothing came), write the new samples at
        their steps from the start, and drop what falls off its front."""
        length = (last_ns - self.start_ns) // self.step_ns + 1
        keep = self.max_span_ns // self.step_ns + 1
        if self._lo + length > len(self._buffer):
            room = max(keep + max(64, keep // SPARE_SHARE), length)
            buffer = np.full(room, np.nan)
            buffer[: self._length] = self.values
            self._buffer, self._lo = buffer, 0
        else:  # steps past the old end hold NaN until a sample arrives for them
            self._buffer[self._lo + self._length : self._lo + length] = np.nan
        # Older than the grid's start (it would be dropped below anyway), or past the newest
        # (an unsorted history): not on this grid.
        inside = (position >= 0) & (position < length)
        self._buffer[self._lo + position[inside]] = new_values[inside]
        excess = max(0, length - keep)
        self._lo += excess
        self._length = length - excess
        self.start_ns += excess * self.step_ns

    def valid_span_ns(self) -> int:
        """Time from the first finite value to the newest step (0 if none is finite)."""
        if self._first_valid_ns is None or self._first_valid_ns < self.start_ns:
            values = self.values
            if len(values) and np.isfinite(values[0]):  # the common case: a full window
                self._first_valid_ns = self.start_ns
                return self.end_ns - self.start_ns
            finite = np.isfinite(values)
            first = int(np.argmax(finite))  # stops at the first True
            if not finite[first]:
                return 0
            self._first_valid_ns = self.start_ns + first * self.step_ns
        return self.end_ns - self._first_valid_ns

    def times_ns(self, count: int) -> np.ndarray:
        """The grid times of the last `count` steps, oldest first."""
        return self.end_ns - np.arange(count - 1, -1, -1, dtype=np.int64) * self.step_ns

    def future_ns(self, steps: int) -> np.ndarray:
        """The `steps` grid times after the newest one."""
        return self.end_ns + np.arange(1, steps + 1, dtype=np.int64) * self.step_ns

    def index_of(self, times_ns: np.ndarray) -> pd.DatetimeIndex:
        """Epoch times as an index in the history's zone (naive if it was)."""
        return epoch_index(times_ns, "ns", self.tz)

    def future_index(self, steps: int) -> pd.DatetimeIndex:
        """index_of(future_ns(steps)), sliced from a day or so of future steps built at once:
        a slice costs less than half of building the index, every tick."""
        first_ns = self.end_ns + self.step_ns
        future = self._future
        if future is not None and future[1] == self.step_ns:
            at, off_grid = divmod(first_ns - future[0], self.step_ns)
            if not off_grid and at >= 0 and at + steps <= len(future[2]):
                return future[2][at : at + steps]
        span = steps + max(64, FUTURE_SPAN_NS // self.step_ns)
        index = self.index_of(self.future_ns(span))
        self._future = (first_ns, self.step_ns, index)
        return index[:steps]
