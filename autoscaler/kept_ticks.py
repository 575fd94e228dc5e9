"""The window of ticks `margin: loop` keeps per pool, as columns.

A week of one-minute ticks is 10,080 rows a pool. Kept as Python floats, tuples and a
schedule-bounds object per tick it was 4.4 MB a pool (4 GiB for 1,000 pools, and every
recalibration copied the lists into arrays); here the numbers are rows of one numpy
buffer (48 bytes a tick, and some room to append), the times a list of datetimes, and
the schedule bounds a list that shares one object while they stay the same: 1.2 MB a
pool (bench/loop_speed.py).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from autoscaler.schedules import ScheduleBounds

DEMAND, BAND_PEAK, BAND_ARRIVAL, USED_PEAK, USED_ARRIVAL, AIM = range(6)
"""The numeric columns: the demand seen; the forecast's band as two peaks (the whole
horizon's, and from when nodes ordered then would be ready); the same for the band the
sizing was handed; the aim its margin was calibrated for (NaN: none yet)."""
_COLUMNS = 6
_FIRST_CAPACITY = 256
_FULL, _GROWTH = 0.9, 1.25


class KeptTicks:
    """Rows appended at the end and dropped from the start; columns read as views."""

    def __init__(self) -> None:
        self.times: list[datetime] = []
        self.schedules: list[ScheduleBounds] = []
        self._numbers = np.empty((_COLUMNS, _FIRST_CAPACITY))
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, at: datetime, demand: float, schedules: ScheduleBounds) -> None:
        """A new newest row: its band, band used and aim missing until set_newest."""
        if self._end == self._numbers.shape[1]:
            self._make_room()
        self._numbers[:, self._end] = math.nan
        self._numbers[DEMAND, self._end] = demand
        self._end += 1
        self.times.append(at)
        if self.schedules and self.schedules[-1] == schedules:
            schedules = self.schedules[-1]  # one object for a run of equal bounds
        self.schedules.append(schedules)

    def set_newest(self, column: int, value: float) -> None:
        self._numbers[column, self._end - 1] = value

    def newest(self, column: int) -> float:
        return float(self._numbers[column, self._end - 1])

    def drop_oldest(self) -> None:
        self._start += 1
        del self.times[0]
        del self.schedules[0]

    def clear(self) -> None:
        self._start = self._end = 0
        self.times.clear()
        self.schedules.clear()

    def column(self, column: int) -> np.ndarray:
        """A view of a column, oldest row first: valid until the next append."""
        return self._numbers[column, self._start : self._end]

    def _make_room(self) -> None:
        """Move the live rows to the front, in a buffer a quarter larger if they fill most
        of it (a steady window then keeps at most about a third more than its rows, and is
        moved once every tenth of its length or more)."""
        live = self._numbers[:, self._start : self._end]
        if live.shape[1] > _FULL * self._numbers.shape[1]:
            grown = np.empty((_COLUMNS, int(_GROWTH * self._numbers.shape[1]) + 1))
            grown[:, : live.shape[1]] = live
            self._numbers = grown
        else:
            self._numbers[:, : live.shape[1]] = live.copy()
        self._start, self._end = 0, live.shape[1]
