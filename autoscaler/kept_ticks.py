"""The window of ticks `margin: loop` keeps per pool, as columns.

A week of one-minute ticks is 10,080 rows a pool. Kept as Python floats, tuples and a
schedule-bounds object per tick it was 4.4 MB a pool (4 GiB for 1,000 pools, and every
recalibration copied the lists into arrays); here the numbers are rows of one numpy
buffer (48 bytes a tick, and some room to append), the times integers beside them, and
the schedule bounds one entry per run of equal bounds. Kept as a list of datetimes and a
list of bounds per tick, the times were another half MB a pool, and the garbage
collector's every full pass walked both lists: for 1,000 pools with a week kept, ~70 ms
more each pass, every few ticks (measured, issue 15).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo

import numpy as np
import pandas as pd

from autoscaler.schedules import ScheduleBounds
from predictors.history_grid import epoch_index

DEMAND, BAND_PEAK, BAND_ARRIVAL, USED_PEAK, USED_ARRIVAL, AIM = range(6)
"""The numeric columns: the demand seen; the forecast's band as two peaks (the whole
horizon's, and from when nodes ordered then would be ready); the same for the band the
sizing was handed; the aim its margin was calibrated for (NaN: none yet)."""
COLUMNS = 6
_FIRST_CAPACITY = 256
_FULL, _GROWTH = 0.9, 1.25
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


class KeptTicks:
    """Rows appended at the end and dropped from the start; columns read as views. Each
    row's time is kept as microseconds since the epoch, in the zone of the first time
    appended (the daemon's clock, or a trace's)."""

    def __init__(self) -> None:
        self._numbers = np.empty((COLUMNS, _FIRST_CAPACITY))
        self._micros = np.empty(_FIRST_CAPACITY, dtype=np.int64)
        self._start = 0
        self._end = 0
        self._zone: tzinfo | None = None
        self._dropped = 0  # rows dropped from the front since the last clear
        self._runs: list[tuple[int, ScheduleBounds]] = []
        """(first row, bounds) of each run of equal schedule bounds, rows counted from the
        last clear; the first run may start before the oldest row kept."""

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, at: datetime, demand: float, schedules: ScheduleBounds) -> None:
        """A new newest row: its band, band used and aim missing until set_newest."""
        if self._end == self._numbers.shape[1]:
            self._make_room()
        self._numbers[:, self._end] = math.nan
        self._numbers[DEMAND, self._end] = demand
        if not len(self):
            self._zone = at.tzinfo
        self._micros[self._end] = (at - (_EPOCH if at.tzinfo else _NAIVE_EPOCH)) // _MICROSECOND
        row = self._dropped + len(self)
        self._end += 1
        if not self._runs or self._runs[-1][1] != schedules:
            self._runs.append((row, schedules))

    def oldest_at(self) -> datetime | None:
        return self._at(self._start) if len(self) else None

    def newest_at(self) -> datetime | None:
        return self._at(self._end - 1) if len(self) else None

    def times(self) -> pd.DatetimeIndex:
        """Every row's time, oldest first (for a recalibration's replay)."""
        return epoch_index(self._micros[self._start : self._end], "us", self._zone)

    def schedules(self) -> list[ScheduleBounds]:
        """Every row's schedule bounds, oldest first (one object per run)."""
        rows: list[ScheduleBounds] = []
        if not self._runs:
            return rows
        first, end = self._dropped, self._dropped + len(self)
        stops = [start for start, _ in self._runs[1:]] + [end]
        for (start, bounds), stop in zip(self._runs, stops, strict=True):
            rows += [bounds] * (stop - max(start, first))
        return rows

    def set_newest(self, column: int, value: float) -> None:
        self._numbers[column, self._end - 1] = value

    def newest(self, column: int) -> float:
        return float(self._numbers[column, self._end - 1])

    def drop_oldest(self) -> None:
        self._start += 1
        self._dropped += 1
        if len(self._runs) > 1 and self._runs[1][0] <= self._dropped:
            del self._runs[0]  # its last row is gone

    def clear(self) -> None:
        self._start = self._end = self._dropped = 0
        self._zone = None
        self._runs.clear()

    def rows(self) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ScheduleBounds]]]:
        """Copies of the kept rows (a restart takes them up, autoscaler.kept_ticks_file):
        the times in microseconds since the epoch, the numeric columns, and the runs of
        equal schedule bounds by their first row, counted from the oldest kept."""
        first = self._dropped
        runs = [(max(start - first, 0), bounds) for start, bounds in self._runs]
        numbers = self._numbers[:, self._start : self._end].copy()
        return self._micros[self._start : self._end].copy(), numbers, runs

    @classmethod
    def from_rows(
        cls,
        micros: np.ndarray,
        numbers: np.ndarray,
        runs: list[tuple[int, ScheduleBounds]],
        zone: tzinfo | None,
    ) -> KeptTicks:
        """Ticks as `rows` gave them, their times read in `zone` (checked by the caller:
        times rising, one column of each number per time, runs from row 0 rising)."""
        kept = cls()
        size = max(_FIRST_CAPACITY, int(_GROWTH * len(micros)) + 1)
        kept._numbers, kept._micros = np.empty((COLUMNS, size)), np.empty(size, dtype=np.int64)
        kept._numbers[:, : len(micros)], kept._micros[: len(micros)] = numbers, micros
        kept._end, kept._zone, kept._runs = len(micros), zone, list(runs)
        return kept

    def _at(self, position: int) -> datetime:
        since = timedelta(microseconds=int(self._micros[position]))
        if self._zone is None:  # naive times, kept as they came
            return _NAIVE_EPOCH + since
        return (_EPOCH + since).astimezone(self._zone)

    def column(self, column: int) -> np.ndarray:
        """A view of a column, oldest row first: valid until the next append."""
        return self._numbers[column, self._start : self._end]

    def _make_room(self) -> None:
        """Move the live rows to the front, in a buffer a quarter larger if they fill most
        of it (a steady window then keeps at most about a third more than its rows, and is
        moved once every tenth of its length or more)."""
        live = self._numbers[:, self._start : self._end]
        micros = self._micros[self._start : self._end]
        if live.shape[1] > _FULL * self._numbers.shape[1]:
            size = int(_GROWTH * self._numbers.shape[1]) + 1
            grown, grown_micros = np.empty((COLUMNS, size)), np.empty(size, dtype=np.int64)
            grown[:, : live.shape[1]], grown_micros[: len(micros)] = live, micros
            self._numbers, self._micros = grown, grown_micros
        else:
            self._numbers[:, : live.shape[1]] = live.copy()
            self._micros[: len(micros)] = micros.copy()
        self._start, self._end = 0, live.shape[1]
