"""Reading the decision log back for the daily digest (autoscaler/daily_report.py): the
log and the rotated files logrotate left beside it (autoscaler/rotated_logs.py), every
line checked for the fields the digest reads, and those alone kept (LoggedTick). A line
of the wrong shape is counted and named, never fatal: one torn line must not cost a
day's report.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from autoscaler.digest import LoggedTick
from autoscaler.rotated_logs import files_to_read, siblings, text_lines
from common.small_files import NotASmallFileError

LOOKBACK = timedelta(hours=6)
"""Log lines read before the window: the count in force when it opens."""


@dataclass
class LogRead:
    records: list[LoggedTick]
    unreadable: int
    """Lines (and files) not read: a torn last line after a crash, a hand edit, a field
    of the wrong type, a FIFO, a gzip cut short."""
    first_unreadable: str | None
    """The first of them, as 'FILE:LINE: why' (or 'FILE: why')."""
    oldest: pd.Timestamp | None
    """The earliest time stamped on a line of any file read (whether in the span or not):
    where the decision log's record begins."""

    def saw(self, at: pd.Timestamp) -> None:
        self.oldest = at if self.oldest is None or at < self.oldest else self.oldest

    def skip(self, why: str) -> None:
        self.unreadable += 1
        self.first_unreadable = self.first_unreadable or why[:300]


def read_records(path: Path, start: datetime, end: datetime) -> LogRead:
    """Decision-log lines stamped in [start - LOOKBACK, end), from the log and the rotated
    files that can hold them (autoscaler/rotated_logs.py), oldest first: a logrotate
    since `start` moved its early hours out of the log. What cannot be read is counted,
    never fatal, but for the log's own OSError (as before rotated files were read)."""
    first, last = pd.Timestamp(start - LOOKBACK), pd.Timestamp(end)
    read = LogRead([], 0, None, None)
    try:
        listing = siblings(path)
    except OSError as exc:  # a folder it may not list: the log alone
        listing = {}
        read.skip(f"{path.parent}: {exc.strerror or exc}: its rotated files not looked for")
    for name in files_to_read(path.name, listing, first.timestamp()):
        file, number = path.parent / name, 0
        try:
            for number, line in text_lines(file):
                try:
                    record = json.loads(line)
                    at = _stamp(record)
                    read.saw(at)
                    if first <= at < last:
                        _check_fields(record)
                        read.records.append(LoggedTick.of(record, at))
                except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
                    read.skip(f"{file}:{number}: {exc}")
        except FileNotFoundError:
            if file != path:  # the log itself: none written yet
                read.skip(f"{file}: gone before it was read (rotated again meanwhile?)")
        except NotASmallFileError as exc:  # a FIFO would hold the digest for a writer
            read.skip(f"{file}: {exc.strerror}: not read")
        except (OSError, EOFError, zlib.error) as exc:  # a gzip cut short or corrupt
            if file == path and isinstance(exc, OSError):
                raise
            read.skip(f"{file}:{number + 1}: {exc}: the rest of it not read")
    return read


def _stamp(record: Any) -> pd.Timestamp:
    """The line's `time`, which must be a text time with its UTC offset."""
    if not isinstance(record, dict):
        raise TypeError(f"a line is a JSON object, not {type(record).__name__}")
    text = record.get("time")
    if not isinstance(text, str):
        raise TypeError(f"time: {text!r} is not an ISO time")
    at = pd.Timestamp(text)
    if at.tzinfo is None:
        raise ValueError(f"time: {text!r} has no UTC offset")
    return at


_COUNTS = ("current", "desired", "ready", "after")
_RATES = ("demand_rps", "forecast_rps")
_TYPES: dict[str, type] = {"pool": str, "acted": bool, "reasons": list}


def _check_fields(record: dict[str, Any]) -> None:
    """ValueError naming the first field the digest reads that has the wrong type (each
    may be absent or null, as in lines written by older versions)."""
    for name in _COUNTS:
        value = record.get(name)
        if value is not None and (type(value) is not int or value < 0):
            raise ValueError(f"{name}: {value!r} is not a node count")
    for name in _RATES:
        value = record.get(name)
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
            raise ValueError(f"{name}: {value!r} is not a rate in req/s")
    for name, kind in _TYPES.items():
        value = record.get(name)
        if value is not None and not isinstance(value, kind):
            raise ValueError(f"{name}: {value!r} is not a {kind.__name__}")
