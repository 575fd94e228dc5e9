"""Recorded traces read (the demo, `run`'s replay and backtests).

The trace is the shared format: `timestamp,requests` per minute (or per k minutes,
spread over them; `as_known` is what a tick may see of it). Played back as the metrics
source by autoscaler.replay_source, which never shows a sample later than the clock's
now, so a replayed run cannot peek at the future.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import lzma
import math
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import pandas as pd

_MINUTE = timedelta(minutes=1)
T = TypeVar("T")


_OPENERS: dict[str, Callable[..., IO[str]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_CUT_SHORT = (EOFError, lzma.LZMAError, zlib.error)
"""What a compressed trace that ends early or holds damaged data raises as it is read."""
_MILLISECONDS_FROM = 1e11
"""A Unix time at least this large is milliseconds: in seconds it would be the year 5138."""
_FIRST_TIME = pd.Timestamp("1990-01-01", tz="UTC")
_FIRST_SECOND = _FIRST_TIME.timestamp()
_LAST_SECOND = pd.Timestamp.max.value / 1e9
"""The Unix seconds a trace's times may span (pandas' nanosecond times end in 2262)."""
_ZONED = re.compile(r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")
"""An ISO 8601 time that says its zone: Z or an offset after the time of day."""
_MISSING = frozenset({"", "nan", "na", "n/a", "null", "none"})
"""Cells that say "no sample" (empty, or a spreadsheet's NA): a missing minute, not zero."""
LONGEST_SPAN = timedelta(days=5 * 366)
"""The longest span a trace may cover: five years of minutes (a backtest replays a year in
about 5 minutes and 1.6 GB on 2 cores); a longer one is most often a mistyped year in one
row, whose minute grid (a backtest's, or a coarser step's rows spread) would fill memory."""


@dataclass(frozen=True)
class TraceColumns:
    """A trace file's rows, checked: every cell read, or an error naming file, line, field."""

    lines: np.ndarray
    """The line of the file each row came from."""
    timestamps: pd.DatetimeIndex
    requests: np.ndarray
    queue_depth: np.ndarray | None


def read_trace(path: Path) -> pd.Series:
    """Requests per second, indexed by UTC minute (read_trace_rows, without its step)."""
    return read_trace_rows(path)[0]


def read_trace_rows(path: Path) -> tuple[pd.Series, int]:
    """Requests per second by UTC minute, and the minutes each row covers. Rows k =
    `row_minutes` apart (a 5-minute or hourly export) count the requests of the k minutes
    from their time: spread evenly over them (read a minute each, the other minutes would
    be missing), for scoring; what decides reads `as_known` of it."""
    rows = read_trace_columns(path)
    _check_span(path, rows)  # before a coarser step's rows are spread over its minutes
    step = row_minutes(path, rows)
    series = pd.Series(rows.requests / 60.0 / step, index=rows.timestamps, name="rps")
    return _held_over(series, step), step


def as_known(demand: pd.Series, row_minutes: int) -> pd.Series:
    """The spread demand (on its minute grid) as a tick can know it, for every policy that
    decides (the backtest's and `run`'s replay): a row of k minutes is known once they have
    passed, so each minute holds the newest whole row's rate, from the row's last minute on
    (the spread would show up to k-1 minutes of the future; the first k-1 are unknown)."""
    return demand if row_minutes == 1 else demand.shift(row_minutes - 1)


def read_queue_depth(path: Path) -> pd.Series | None:
    """The trace's `queue_depth` column (messages waiting at each minute), if it has one:
    the backtest replays it as a queue-depth signal. Rows `row_minutes` apart hold their
    level until the next."""
    if "queue_depth" not in _header(path):  # most traces: their header is all that is read
        return None
    rows = read_trace_columns(path)
    assert rows.queue_depth is not None
    series = pd.Series(rows.queue_depth, index=rows.timestamps, name="queue_depth")
    return _held_over(series, row_minutes(path, rows))


def row_minutes(path: Path, rows: TraceColumns) -> int:
    """The minutes each row covers: 1 where most rows are a minute apart (a minute trace,
    whatever its gaps); otherwise the most common gap, k, which every gap must then be a
    multiple of (a row every k minutes, some rows missing). ValueError names the first
    row that breaks it: a row that covers part of a step is not the reader's to split."""
    if len(rows.timestamps) < 2:
        return 1
    stamps = rows.timestamps
    gaps = np.asarray((stamps[1:] - stamps[:-1]) // pd.Timedelta(minutes=1), dtype=np.int64)
    values, counts = np.unique(gaps, return_counts=True)
    step = int(values[np.argmax(counts)])
    if step == 1:
        return 1
    off = np.flatnonzero(gaps % step != 0)
    if len(off):
        at = int(off[0]) + 1
        raise ValueError(
            f"{path}:{rows.lines[at]}: timestamp: most rows are {step} minutes apart (each "
            f"counts {step} minutes of requests), but this one is {int(gaps[at - 1])} after "
            "the row before; give a row a minute, or one every k minutes throughout"
        )
    return step


def _check_span(path: Path, rows: TraceColumns) -> None:
    """Refuse a trace spanning more than LONGEST_SPAN, naming the row after its longest gap
    (most often one row's mistyped year, 2205 for 2025)."""
    stamps = rows.timestamps
    span = stamps[-1] - stamps[0]
    if span <= LONGEST_SPAN:
        return
    at = int(np.argmax(np.diff(stamps.asi8))) + 1
    before, after = stamps[at - 1], stamps[at]
    raise ValueError(
        f"{path}:{rows.lines[at]}: timestamp: {after:%Y-%m-%dT%H:%M}Z comes "
        f"{(after - before).days:,} days after the row before it (line {rows.lines[at - 1]}, "
        f"{before:%Y-%m-%dT%H:%M}Z): the trace spans {span.days:,} days, more than the "
        f"{LONGEST_SPAN.days:,} a trace may (a backtest replays it minute by minute; a "
        "mistyped year?)"
    )


def _held_over(series: pd.Series, step: int) -> pd.Series:
    """Each row's value at each minute it covers (`step` from its time; a missing row's
    minutes stay missing)."""
    if step == 1:
        return series
    grid = pd.date_range(series.index[0], series.index[-1] + (step - 1) * _MINUTE, freq="1min")
    return series.reindex(grid).ffill(limit=step - 1).rename_axis(series.index.name)


def read_trace_columns(path: Path) -> TraceColumns:
    """The `timestamp,requests[,queue_depth]` rows of a trace file (plain or compressed,
    UTF-8 with or without a byte-order mark; other columns ignored, blank lines skipped).

    ValueError names the file, the line and the field of the first cell that cannot be
    read: a number that is not one (or is negative or infinite), a time that is not ISO
    8601 (or, where the first row's is a number, Unix seconds or milliseconds) or not a
    whole minute, a row of the wrong width, a minute given twice with two values. An
    empty cell (or NA, NaN) is a minute without a sample, never zero load. The rows come
    in time order, a minute repeated with the same values once.
    """
    return _read(path, lambda text: _one_row_a_minute(path, _columns(path, text)))


def _header(path: Path) -> list[str]:
    """The names in the trace's header line ([] for an empty file)."""
    return _read(path, lambda text: [name.strip() for name in _first_row(csv.reader(text)) or []])


def _first_row(reader: Iterator[list[str]]) -> list[str] | None:
    """The first line that is not blank (the header; blank lines are skipped everywhere)."""
    return next((row for row in reader if any(cell.strip() for cell in row)), None)


def _read(path: Path, parse: Callable[[IO[str]], T]) -> T:
    """`parse` of the trace's text (plain or compressed, UTF-8 with or without a
    byte-order mark); a file that is not UTF-8 CSV is a ValueError naming it."""
    _refuse_special(path)
    opener = _OPENERS.get(path.suffix.lower(), open)
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as text:
            return parse(text)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}:{_first_line_not_utf8(path)}: not UTF-8 text ({exc.reason})"
        ) from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a CSV file ({exc})") from None
    except _CUT_SHORT as exc:  # a download cut short: neither OSError nor ValueError
        raise ValueError(
            f"{path}: not a whole {path.suffix.lower()} file, cut short or damaged ({exc})"
        ) from None


def _refuse_special(path: Path) -> None:
    """A FIFO would hold `validate` and the start until a writer comes, a device such as
    /dev/zero would be read until memory runs out: a trace is a regular file (a missing
    one is left for `open` to say so)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: not a regular file (a folder, a FIFO or a device)")


def _first_line_not_utf8(path: Path) -> int:
    """The line of the file's first byte that is not UTF-8 (the decoder's error gives an
    offset into its own buffer, not a place in the file)."""
    opener, number = _OPENERS.get(path.suffix.lower(), open), 1
    with opener(path, "rb") as data, contextlib.suppress(*_CUT_SHORT):
        for number, line in enumerate(data, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return number


def _columns(path: Path, text: IO[str]) -> TraceColumns:
    reader = csv.reader(text)
    header = _first_row(reader)
    if header is None:
        raise ValueError(f"{path}: empty file; expected a header line timestamp,requests")
    names = [name.strip() for name in header]
    if names[:2] != ["timestamp", "requests"]:
        raise ValueError(
            f"{path}:{reader.line_num}: header: expected columns timestamp,requests (others may "
            f"follow), found {','.join(header)!r}{_header_hint(names)}"
        )
    queue_at = names.index("queue_depth") if "queue_depth" in names else None
    lines: list[int] = []
    stamps: list[str] = []
    requests: list[float] = []
    queue: list[float] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            raise ValueError(
                f"{path}:{line}: expected {len(names)} fields ({','.join(names)}), found {len(row)}"
            )
        lines.append(line)
        stamps.append(row[0].strip())
        requests.append(_number(path, line, "requests", row[1]))
        if queue_at is not None:
            queue.append(_number(path, line, "queue_depth", row[queue_at]))
    if not lines:
        raise ValueError(f"{path}: no rows after the header; a trace has a row a minute")
    timestamps = _times(path, lines, stamps)
    between = timestamps != timestamps.floor("1min")
    if between.any():
        bad = int(np.argmax(between))
        raise ValueError(
            f"{path}:{lines[bad]}: timestamp: {stamps[bad]!r} is not a whole minute "
            "(a trace has one row a minute, its requests in that minute)"
        )
    return TraceColumns(
        lines=np.asarray(lines, dtype=np.int64),
        timestamps=timestamps,
        requests=np.asarray(requests, dtype=float),
        queue_depth=None if queue_at is None else np.asarray(queue, dtype=float),
    )


def _header_hint(names: list[str]) -> str:
    """Why a header is not the trace's, where it shows: another separator, or no header."""
    if len(names) == 1 and any(mark in names[0] for mark in ";\t|"):
        return "; fields are separated by commas"
    try:
        float(names[0])
    except ValueError:
        if pd.to_datetime(names[0], format="ISO8601", errors="coerce") is pd.NaT:
            return ""
    return "; this is a row: a trace begins with the header line timestamp,requests"


def _times(path: Path, lines: list[int], stamps: list[str]) -> pd.DatetimeIndex:
    """The timestamp cells as UTC times: ISO 8601, or, where the first row's is a plain
    number, Unix times in every row (what Prometheus's HTTP API and promtool give)."""
    try:
        float(stamps[0])
    except ValueError:
        pass  # ISO 8601, below
    else:
        numbers = pd.to_numeric(pd.Series(stamps, dtype=object), errors="coerce")
        return _unix_times(path, lines, stamps, numbers.to_numpy(float))
    timestamps = pd.DatetimeIndex(
        pd.to_datetime(stamps, format="ISO8601", utc=True, errors="coerce"), name="timestamp"
    )
    if timestamps.hasnans:
        bad = int(np.argmax(timestamps.isna()))
        raise ValueError(
            f"{path}:{lines[bad]}: timestamp: {stamps[bad]!r} is not an ISO 8601 time "
            "(e.g. 2025-01-05T16:00:00Z) nor Unix seconds (every row a number)"
        )
    zoned = pd.Series(stamps, dtype=object).str.contains(_ZONED, regex=True).to_numpy(bool)
    if not zoned.all():
        bad = int(np.argmin(zoned))
        raise ValueError(
            f"{path}:{lines[bad]}: timestamp: {stamps[bad]!r} has no zone (Z, or an offset "
            "such as +01:00): an export's local time read as UTC is hours off; add Z if it is UTC"
        )
    early = np.asarray(timestamps < _FIRST_TIME)
    if early.any():  # 1970-01-01: a time lost on its way out, as a Unix 0 would be
        bad = int(np.argmax(early))
        raise ValueError(
            f"{path}:{lines[bad]}: timestamp: {stamps[bad]!r} is before 1990, as no traffic "
            "trace is (a time lost in the export, read as 1970?)"
        )
    return timestamps


def _unix_times(
    path: Path, lines: list[int], stamps: list[str], numbers: np.ndarray
) -> pd.DatetimeIndex:
    """Unix seconds, or milliseconds (a dashboard's export) where a number is too large
    for seconds before 2262. A time before 1990 is refused, not read: no traffic trace
    is from 1970, and seconds from the trace's own start (0, 60, ...) would be."""
    seconds = np.where(numbers >= _MILLISECONDS_FROM, numbers / 1000.0, numbers)
    wrong = ~((seconds >= _FIRST_SECOND) & (seconds < _LAST_SECOND))  # NaN, a word: wrong
    if wrong.any():
        bad = int(np.argmax(wrong))
        raise ValueError(
            f"{path}:{lines[bad]}: timestamp: {stamps[bad]!r} is not a Unix time (seconds "
            "or milliseconds from 1990 to 2262); the first row's time is a number, so "
            "every row's must be"
        )
    times = pd.to_datetime(np.round(seconds * 1e6).astype(np.int64), unit="us", utc=True)
    return pd.DatetimeIndex(times, name="timestamp")


def _one_row_a_minute(path: Path, rows: TraceColumns) -> TraceColumns:
    """The rows in time order, exact repeats dropped; a minute given twice with two values
    is refused (which one holds is not the reader's to guess)."""
    order = np.argsort(rows.timestamps.asi8, kind="stable")
    stamps = rows.timestamps[order]
    values = [rows.requests[order]]
    if rows.queue_depth is not None:
        values.append(rows.queue_depth[order])
    repeated = np.flatnonzero(stamps[1:] == stamps[:-1])
    for field, column in zip(("requests", "queue_depth"), values, strict=False):
        before, again = column[repeated], column[repeated + 1]
        differ = (before != again) & ~(np.isnan(before) & np.isnan(again))
        if differ.any():
            at = int(repeated[np.argmax(differ)])
            first, second = rows.lines[order[at]], rows.lines[order[at + 1]]
            raise ValueError(
                f"{path}:{max(first, second)}: {field}: {stamps[at]:%Y-%m-%dT%H:%M:%SZ} "
                f"is given twice, on line {min(first, second)} as {column[at]:g} and here as "
                f"{column[at + 1]:g}"
            )
    keep = order[np.concatenate(([True], stamps[1:] != stamps[:-1]))]
    return TraceColumns(
        lines=rows.lines[keep],
        timestamps=rows.timestamps[keep],
        requests=rows.requests[keep],
        queue_depth=None if rows.queue_depth is None else rows.queue_depth[keep],
    )


def _number(path: Path, line: int, field: str, cell: str) -> float:
    """The cell's count (finite, not negative); NaN for an empty or NA cell (no sample)."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: {field}: {cell!r} is not a number") from None
    if math.isinf(value) or value < 0:
        raise ValueError(f"{path}:{line}: {field}: {cell!r} is not a count (finite, at least 0)")
    return value
