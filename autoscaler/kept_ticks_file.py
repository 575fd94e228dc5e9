"""A pool's week of loop ticks on disk, so that a daemon restart does not start it over.

Under `margin: loop` or `widen` a pool keeps a week of ticks (autoscaler.kept_ticks): its
portfolio's members are compared only once a whole week is kept, and the error budget's
spend is judged on it. Kept in memory only, every restart started the week over, and a
daemon redeployed weekly would never compare the members. So the week is written beside
the state file, one file a pool in numpy's own format (read without pickle), and the
first tick after a restart takes it up (autoscaler.loop_restarts).

The file is a cache, not a record: written without fsync (a few hundred KB a pool, and
1,000 pools at a stop), and one that does not read whole is ignored with a warning (the
week starts over, as it did before), never a reason for the daemon to stop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import numpy as np

from autoscaler.kept_ticks import COLUMNS, KeptTicks
from autoscaler.schedules import ScheduleBounds
from common.atomic import replace_atomically
from common.small_files import open_regular

FORMAT = 1
WEEK_KEPT_FOR = timedelta(days=8)
"""A week file not written for this long is removed as the daemon starts: no restart can
take it up, as its newest tick is older than the replay's week (LoopSettings.window)."""


@dataclass
class KeptWeek:
    """What a restart takes up: the ticks, when their replay last ran, whether they have
    reached back a whole window (the members are compared only then), and a digest of the
    pool's settings they were kept under (another forecaster's bands are not this one's)."""

    ticks: KeptTicks
    recalibrated_at: datetime | None
    window_full: bool
    pool_settings: str


def write_week(path: Path, week: KeptWeek) -> None:
    """Write atomically (a crash leaves the old file or the new one), without fsync."""
    micros, numbers, runs = week.ticks.rows()
    newest = week.ticks.newest_at()
    at = week.recalibrated_at
    arrays = {
        "format": np.array(FORMAT),
        "aware": np.array(newest is not None and newest.tzinfo is not None),
        "micros": micros,
        "numbers": numbers,
        "runs": np.array(
            json.dumps([[row, b.floor, b.ceiling, list(b.active)] for row, b in runs])
        ),
        "recalibrated_at": np.array("" if at is None else at.isoformat()),
        "window_full": np.array(week.window_full),
        "pool_settings": np.array(week.pool_settings),
    }
    replace_atomically(path, lambda handle: np.savez(handle, **arrays), durable=False)


def read_week(path: Path, zone: tzinfo | None) -> KeptWeek:
    """The week written to `path`, its times read in `zone` (the daemon's clock). Raises
    OSError if it cannot be read (or is not a regular file: a FIFO would hold the start
    for ever), ValueError naming the field that is not as written."""
    with open_regular(path) as handle, np.load(handle, allow_pickle=False) as saved:
        fields = {name: saved[name] for name in saved.files}
    if _field(fields, "format").shape != () or int(fields["format"]) != FORMAT:
        raise ValueError(f"format: {fields['format']!r}, not {FORMAT}")
    if bool(_field(fields, "aware")) != (zone is not None):
        raise ValueError("aware: its times and the daemon's clock differ in having a zone")
    micros, numbers = _field(fields, "micros"), _field(fields, "numbers")
    rows = len(micros)
    if micros.dtype != np.int64 or micros.ndim != 1 or not rows:
        raise ValueError("micros: not one or more 64-bit integer times")
    if rows > 1 and not bool(np.all(np.diff(micros) > 0)):
        raise ValueError("micros: the times do not rise")
    if numbers.dtype != np.float64 or numbers.shape != (COLUMNS, rows):
        raise ValueError(f"numbers: shape {numbers.shape}, not ({COLUMNS}, {rows})")
    runs = _runs(str(_field(fields, "runs")), rows)
    at = str(_field(fields, "recalibrated_at"))
    recalibrated_at = datetime.fromisoformat(at) if at else None
    if recalibrated_at is not None and (recalibrated_at.tzinfo is not None) != (zone is not None):
        raise ValueError("recalibrated_at: its zone differs from the daemon's clock")
    ticks = KeptTicks.from_rows(micros, numbers, runs, zone)
    try:  # times a datetime and a pandas index can hold, as the replay reads them
        ticks.oldest_at(), ticks.newest_at(), ticks.times()
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"micros: times out of range ({exc})") from None
    full, settings = bool(_field(fields, "window_full")), str(_field(fields, "pool_settings"))
    return KeptWeek(ticks, recalibrated_at, full, settings)


def _field(fields: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in fields:
        raise ValueError(f"{name}: missing")
    return fields[name]


def _runs(text: str, rows: int) -> list[tuple[int, ScheduleBounds]]:
    """The runs of equal schedule bounds: from row 0, rising, each as it was written."""
    runs: list[tuple[int, ScheduleBounds]] = []
    for first, floor, ceiling, active in json.loads(text):
        starts = 0 if not runs else runs[-1][0] + 1
        whole = all(isinstance(n, int | None) and not isinstance(n, bool) for n in (floor, ceiling))
        if not isinstance(first, int) or not starts <= first < rows or (not runs and first):
            raise ValueError(f"runs: a run starts at row {first!r}")
        if not whole or not all(isinstance(name, str) for name in active):
            raise ValueError(
                f"runs: bounds {[floor, ceiling, active]!r}, not (nodes, nodes, names)"
            )
        runs.append((first, ScheduleBounds(floor, ceiling, tuple(active))))
    if not runs:
        raise ValueError("runs: none, for rows that had bounds")
    return runs
