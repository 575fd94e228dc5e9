"""A pool's checked demand history kept between ticks, and joined to each tick's new samples.

A steady tick asks the source only for the samples since the kept history's newest
(metrics.fetch_demand) and joins them to it. Joined by copying, a fortnight of minutes
(20,160 times and values) was copied for every pool on every tick, and the copies, their
allocations and page faults were about a quarter of a steady tick of 1,000 pools.

So a regular history (a sample at every step: a healthy series) lives in a room with
space to grow: its times an index built ahead at every step, its values a buffer written
past its newest. A tick's history is then two slices of them (views), the new samples
written in place, and the window's front let go by moving the slice's start. A history
once handed out is never written to: its values are read-only, a revised sample or a
history grown from an older one goes to a new room, and a sample is written at most once
(`_Room.claimed`, under a lock: an observe left behind past its deadline may still join
beside the next tick's). Anything else (a gap, a source that answers in another unit or
zone, a full room) is joined by copying, as before, into a new room where the result is
regular.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from predictors.history_grid import epoch_index, epoch_stamp

SPARE_SHARE = 8
"""A room holds its history and an eighth more (for 14 days of minutes: 1.75 days of
ticks before the next copy); at least SPARE_MIN steps."""
SPARE_MIN = 64


class _Room:
    """The buffers a regular history lives in: its times at every step from the first,
    built ahead, and its values, each written once (those below `claimed`)."""

    def __init__(self, times: pd.DatetimeIndex, values: np.ndarray, claimed: int, step: int):
        self.times = times
        self.stamps = times.asi8  # in the index's own unit (a view)
        self.values = values
        self.claimed = claimed
        self.step = step  # in the index's unit
        self.lock = threading.Lock()


@dataclass(frozen=True)
class KeptDemand:
    """A checked history (`series`), and the room it lives in if it is regular (it is
    `room.values[lo : lo + len(series)]`)."""

    series: pd.Series
    room: _Room | None = None
    lo: int = 0

    @classmethod
    def in_room(cls, series: pd.Series, step: timedelta) -> KeptDemand:
        """`series` moved into a new room with space to grow, if it is regular; as it is
        otherwise."""
        index = series.index
        if not isinstance(index, pd.DatetimeIndex) or series.empty:
            return cls(series)
        values = series.to_numpy(dtype=float)
        return cls._placed(index.asi8, values, index, series.name, step) or cls(series)

    @classmethod
    def _placed(
        cls,
        stamps: np.ndarray,
        values: np.ndarray,
        like: pd.DatetimeIndex,
        name: object,
        step: timedelta,
    ) -> KeptDemand | None:
        """Samples (times as integers in `like`'s unit, and zone) placed in a new room with
        space to grow, if they are regular; None otherwise."""
        unit_step = _in_unit(step, like.unit)
        if unit_step is None or not (np.diff(stamps) == unit_step).all():
            return None
        count = len(stamps)
        capacity = count + max(SPARE_MIN, count // SPARE_SHARE)
        ahead = stamps[0] + np.arange(capacity, dtype=np.int64) * unit_step
        room_values = np.empty(capacity)
        room_values[:count] = values
        room = _Room(_index(ahead, like), room_values, count, unit_step)
        return cls(_slice(room, 0, count, name), room, 0)

    def joined(
        self, newer: pd.Series, start: datetime, ask_from: datetime, step: timedelta
    ) -> KeptDemand:
        """The kept samples from `start` up to the answer `newer` (asked from `ask_from`;
        a source that answered more than was asked for is taken at its word), then the
        answer: grown in place where it can be, copied otherwise (straight into a new room
        where the result is regular: the first join of every pool, at the second tick)."""
        grown = self._grown(newer, start, ask_from)
        if grown is not None:
            return grown
        stamps, values = _concatenated(self.series, newer, start, ask_from)
        like = self.series.index
        placed = KeptDemand._placed(stamps, values, like, newer.name, step)
        if placed is not None:
            return placed
        return KeptDemand(
            pd.Series(values, index=_index(stamps, like), name=newer.name, copy=False)
        )

    def _grown(self, newer: pd.Series, start: datetime, ask_from: datetime) -> KeptDemand | None:
        """The join as slices of this room, or None where it cannot be (then copied)."""
        room = self.room
        index = newer.index
        if room is None or not isinstance(index, pd.DatetimeIndex) or newer.empty:
            return None
        if index.dtype != room.times.dtype:  # another unit or zone
            return None
        lo, hi = self.lo, self.lo + len(self.series)
        new_stamps = index.asi8
        at, off_grid = divmod(int(new_stamps[0]) - int(room.stamps[0]), room.step)
        last = at + len(new_stamps)  # one past the answer's newest
        asked_at = -(-(epoch_stamp(ask_from, index.unit) - int(room.stamps[0])) // room.step)
        if off_grid or not lo <= at <= min(hi, asked_at) or last > len(room.stamps):
            return None  # off the grid, a gap before it (or kept samples it says are gone)
        if not np.array_equal(new_stamps, room.stamps[at:last]):  # a gap in the answer
            return None
        values = newer.to_numpy(dtype=float)
        overlap = min(hi, last) - at
        if not np.array_equal(room.values[at : at + overlap], values[:overlap]):
            return None  # a revised sample: never written over a history handed out
        if last > hi:
            with room.lock:
                if room.claimed != hi:  # another history grew from this one's newest
                    return None
                room.values[hi:last] = values[overlap:]
                room.claimed = last
        first = int(room.stamps.searchsorted(epoch_stamp(start, index.unit)))
        first = min(max(lo, first), at)  # the answer, asked from start or later, is kept whole
        return KeptDemand(_slice(room, first, last, newer.name), room, first)


def _slice(room: _Room, lo: int, hi: int, name: object) -> pd.Series:
    values = room.values[lo:hi]
    values.flags.writeable = False  # a view of the room: read, never written to
    return pd.Series(values, index=room.times[lo:hi], name=name, copy=False)


def _concatenated(
    kept: pd.Series, newer: pd.Series, start: datetime, ask_from: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """The join by copying, as pd.concat would make it: its times (integers in the kept
    index's unit) and values."""
    unit = kept.index.unit
    stamps = kept.index.asi8  # integers in the index's own unit (no copy)
    kept_from = stamps.searchsorted(epoch_stamp(start, unit))
    new_stamps = newer.index.as_unit(unit).asi8
    kept_to = stamps.searchsorted(min(epoch_stamp(ask_from, unit), int(new_stamps[0])))
    times = np.concatenate((stamps[kept_from:kept_to], new_stamps))
    values = np.concatenate((kept.to_numpy()[kept_from:kept_to], newer.to_numpy(dtype=float)))
    return times, values


def _index(stamps: np.ndarray, like: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Epoch integers in `like`'s unit as an index in its zone."""
    return epoch_index(stamps, like.unit, like.tz)


def _in_unit(step: timedelta, unit: str) -> int | None:
    """The step as a whole number of the unit's ticks; None if it is not one."""
    ticks, rest = divmod(pd.Timedelta(step).value, pd.Timedelta(1, unit=unit).value)
    return int(ticks) if not rest and ticks > 0 else None
