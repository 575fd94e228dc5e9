"""A pool's week of loop ticks on disk: read back as written (times, numbers, schedule
bounds, when the replay last ran), and a file that is not as written is refused with the
field named, never read as something else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from autoscaler.kept_ticks import AIM, BAND_PEAK, DEMAND, USED_PEAK, KeptTicks
from autoscaler.kept_ticks_file import KeptWeek, read_week, write_week
from autoscaler.schedules import ScheduleBounds

START = datetime(2026, 1, 5, tzinfo=UTC)
QUIET = ScheduleBounds(None, None, ())
BUSY = ScheduleBounds(4, 12, ("busy", "launch"))


def kept(rows: int, dropped: int = 0) -> KeptTicks:
    """Ticks a minute apart, busy from the 100th; the first `dropped` let go."""
    ticks = KeptTicks()
    for row in range(rows):
        ticks.append(START + timedelta(minutes=row), 3.0 + row % 7, BUSY if row >= 100 else QUIET)
        ticks.set_newest(BAND_PEAK, 10.0 + row)
        ticks.set_newest(USED_PEAK, 9.0 + row)
        if row % 2:
            ticks.set_newest(AIM, 0.8)
    for _ in range(dropped):
        ticks.drop_oldest()
    return ticks


def test_a_week_reads_back_as_it_was_written(tmp_path: Path) -> None:
    """Through drops from the front (the first run of bounds starting before the oldest
    row kept), in the daemon's zone; the writer's temporary file is gone."""
    ticks = kept(300, dropped=40)
    at = START + timedelta(hours=4)
    path = tmp_path / "loop-ticks" / "gen.npz"
    write_week(path, KeptWeek(ticks, at, True, "abc"))
    week = read_week(path, UTC)
    assert (week.recalibrated_at, week.window_full, week.pool_settings) == (at, True, "abc")
    assert list(week.ticks.times()) == list(ticks.times())
    assert week.ticks.oldest_at() == START + timedelta(minutes=40)
    assert week.ticks.schedules() == ticks.schedules()
    for column in (DEMAND, BAND_PEAK, USED_PEAK, AIM):
        np.testing.assert_array_equal(week.ticks.column(column), ticks.column(column))
    week.ticks.append(START + timedelta(minutes=300), 1.0, QUIET)  # and goes on as any
    assert week.ticks.schedules()[-2:] == [BUSY, QUIET]
    assert [p.name for p in path.parent.iterdir()] == ["gen.npz"]


def rewrite(path: Path, **changes: object) -> None:
    with np.load(path, allow_pickle=False) as saved:
        fields = {name: saved[name] for name in saved.files}
    fields.update({k: np.asarray(v) for k, v in changes.items()})
    fields = {k: v for k, v in fields.items() if v.dtype != object}  # None: the field removed
    np.savez(path, **fields)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": 2}, "format"),
        ({"micros": np.array([3, 2, 1], dtype=np.int64)}, "micros"),
        ({"micros": np.array([1.0, 2.0])}, "micros"),
        ({"micros": np.arange(200, dtype=np.int64) + 2**62}, "micros"),  # year 146,000
        ({"numbers": np.zeros((6, 5))}, "numbers"),
        ({"numbers": np.zeros((5, 200))}, "numbers"),
        ({"runs": json.dumps([[5, None, None, []]])}, "runs"),
        ({"runs": json.dumps([[0, None, None, []], [0, 2, None, []]])}, "runs"),
        ({"runs": json.dumps([[0, 1.5, None, []]])}, "runs"),
        ({"runs": json.dumps([[0, None, None, [3]]])}, "runs"),
        ({"runs": "[]"}, "runs"),
        ({"aware": False}, "aware"),
        ({"window_full": None}, "window_full"),
        ({"recalibrated_at": "2026-01-05T04:00:00"}, "recalibrated_at"),
    ],
)
def test_a_week_not_as_written_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    path = tmp_path / "gen.npz"
    write_week(path, KeptWeek(kept(200), START, False, "abc"))
    rewrite(
        path, **{k: (np.array(None, dtype=object) if v is None else v) for k, v in change.items()}
    )
    with pytest.raises(ValueError, match=rf"^{field}:"):
        read_week(path, UTC)


def test_times_without_a_zone_are_refused_by_a_clock_with_one(tmp_path: Path) -> None:
    ticks = KeptTicks()
    ticks.append(datetime(2026, 1, 5), 1.0, QUIET)
    path = tmp_path / "gen.npz"
    write_week(path, KeptWeek(ticks, None, False, "abc"))
    assert read_week(path, None).ticks.newest_at() == datetime(2026, 1, 5)
    with pytest.raises(ValueError, match=r"^aware:"):
        read_week(path, UTC)
