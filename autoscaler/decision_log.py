"""The decision log: one JSON object per line, per pool, per tick.

It is the record people read after the fact ("why did it scale at 03:12?") and
the backtest compares against, so every line must be valid JSON on its own:
datetimes become ISO-8601 in UTC, NaN and infinities become null (JSON has
neither), and a line is flushed as soon as it is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from common.secrets import redacted_json
from common.small_files import ends_mid_line, open_to_append

logger = logging.getLogger(__name__)


_PLAIN = frozenset({str, int, bool, type(None)})


def to_json_value(value: Any) -> Any:
    """Turn a record's values into plain JSON types.

    Naive datetimes are taken to be UTC already (the daemon's clocks are aware). The
    plain types are told by their exact type first: a decision's two dozen values went
    through the chain of isinstance checks below, twice the time (8 µs a pool a tick).
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {str(k): to_json_value(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [to_json_value(v) for v in value]
    return _converted(value)


def _converted(value: Any) -> Any:
    """to_json_value of anything but the plain types (and their subclasses too)."""
    if value is None or (isinstance(value, (bool, str, int)) and not isinstance(value, Enum)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [to_json_value(v) for v in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if hasattr(value, "model_dump"):  # pydantic models
        return to_json_value(value.model_dump())
    if hasattr(value, "item"):  # numpy scalars
        return to_json_value(value.item())
    return str(value)


class DecisionLog:
    """Appends decision records to a JSONL file; with no path it does nothing.

    A write failure (disk full, permissions) is logged, not raised: losing a log
    line must not stop the fleet from being scaled.

    The file stays open between lines (opening it for each line was a few percent of a
    steady tick of 1,000 pools). Each line first checks that the path still names the
    open file, as logging's WatchedFileHandler does: a log rotated away (moved, removed,
    replaced) is reopened at its path, and a removed folder is made again.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._last_error: str | None = None
        self._handle: TextIO | None = None

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Writes the record as a line; returns it as plain JSON values (written or not)."""
        data: dict[str, Any] = to_json_value(record)
        if self.path is None:
            return data
        # redacted on its one way out to the file: no secret
        line = _encodable(redacted_json(data, allow_nan=False, ensure_ascii=False) + "\n")
        with self._lock:
            try:
                self._write(self.path, line)
                self._last_error = None
            except OSError as err:
                self.close()  # the next line opens it again
                message = f"{type(err).__name__}: {err.strerror or err}"
                if message != self._last_error:  # once per distinct failure, not every tick
                    logger.warning("cannot write decision log %s (%s)", self.path, message)
                self._last_error = message
        return data

    @property
    def problem(self) -> str | None:
        """Why the last line could not be written ("OSError: No space left on device"),
        or None when it was: for the daemon to alert on."""
        return self._last_error

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):  # a last flush that failed: already reported
                handle.close()

    def _write(self, path: Path, line: str) -> None:
        handle = self._handle
        if handle is not None and not _names(path, handle):
            self.close()
            handle = None
        if handle is None:  # while writes fail, a line cut short is that failure's, told
            handle = self._handle = _opened(path, quiet=self._last_error is not None)
        handle.write(line)
        handle.flush()


def _encodable(line: str) -> str:
    """The line as UTF-8 can carry it. A lone surrogate (a server's text cut mid-character,
    JSON's "\\ud83d") has no UTF-8 form, and its write raised out of the tick: it is
    written as that JSON escape (the codec's own backslashreplace, as common.secrets.shorten
    does), which reads back as the same text."""
    return line.encode("utf-8", "backslashreplace").decode("utf-8")


def _opened(path: Path, quiet: bool = False) -> TextIO:
    """The file opened to append; its folder is made only when it is missing (the first
    line, or after someone removed it), not checked on every line. A file that ends
    mid-line (a write cut short by a crash or a full disk) is ended with a newline first:
    the next record would otherwise be glued to the torn one and lost with it (said unless
    `quiet`: on a disk that stays full, every line tried again said it again). A path that
    names a FIFO (whose open waits for a reader) or a directory is refused at once."""
    try:
        handle = open_to_append(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open_to_append(path)
    if ends_mid_line(path):
        logger.log(
            logging.DEBUG if quiet else logging.WARNING,
            "decision log %s ends mid-line (a write cut short); that line is left as it is "
            "and the next starts on a line of its own",
            path,
        )
        handle.write("\n")
    return handle


def _names(path: Path, handle: TextIO) -> bool:
    """Whether `path` still names the file `handle` has open."""
    try:
        named = os.stat(path)
    except OSError:
        return False
    held = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
