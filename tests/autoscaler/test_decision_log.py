"""The decision log writes one valid JSON object per line, readable back."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

import numpy as np
import pytest

import autoscaler.decision_log
from autoscaler.decision_log import DecisionLog
from tests.support import read_decisions


@dataclass(frozen=True)
class Decision:
    desired: int
    reasons: tuple[str, ...]


def test_one_json_object_per_line_with_utc_times_and_null_for_nan(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "decisions.jsonl"
    log = DecisionLog(path)
    kolkata = datetime(2024, 5, 6, 8, 50, tzinfo=ZoneInfo("Asia/Kolkata"))
    log.append(
        {
            "time": kolkata,
            "pool": "gpu-ocr",
            "forecast_rps": float("nan"),
            "upper_rps": float("inf"),
            "demand_rps": np.float64(12.5),
            "current": np.int64(4),
            "decision": Decision(7, ("forecast", "floor")),
            "stabilization": timedelta(minutes=15),
            "history": [1.0, float("nan")],
        }
    )
    written = log.append({"time": datetime(2024, 5, 6, 3, 21, tzinfo=UTC), "pool": "llm"})
    assert written == {"time": "2024-05-06T03:21:00Z", "pool": "llm"}  # the line, as JSON

    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])  # each line parses alone
    assert first["time"] == "2024-05-06T03:20:00Z"
    assert first["forecast_rps"] is None
    assert first["upper_rps"] is None
    assert first["demand_rps"] == 12.5
    assert first["current"] == 4
    assert first["decision"] == {"desired": 7, "reasons": ["forecast", "floor"]}
    assert first["stabilization"] == 900.0
    assert first["history"] == [1.0, None]
    assert "NaN" not in lines[0] and "Infinity" not in lines[0]
    assert [r["pool"] for r in read_decisions(path)] == ["gpu-ocr", "llm"]


def test_lines_are_on_disk_after_each_append(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path)
    for n in range(3):
        log.append({"n": n})
        assert len(read_decisions(path)) == n + 1


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon killed mid-write leaves a last line without its newline; the restarted
    daemon's first record starts on a line of its own instead of being glued to it."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"n": 0}\n{"n": 1, "reas')
    with caplog.at_level(logging.WARNING):
        DecisionLog(path).append({"n": 2})
    lines = path.read_text().splitlines()
    assert lines == ['{"n": 0}', '{"n": 1, "reas', '{"n": 2}']
    assert "ends mid-line" in caplog.text
    DecisionLog(path).append({"n": 3})  # a whole last line: nothing added before the next
    assert path.read_text().endswith('{"n": 2}\n{"n": 3}\n')


def test_a_folder_removed_while_running_is_made_again(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "pools" / "d.jsonl"
    log = DecisionLog(path)
    log.append({"n": 1})
    shutil.rmtree(tmp_path / "logs")
    log.append({"n": 2})
    assert [r["n"] for r in read_decisions(path)] == [2]


@pytest.mark.parametrize("rotation", ["moved", "removed", "replaced"])
def test_a_log_rotated_away_is_written_again_at_its_path(tmp_path: Path, rotation: str) -> None:
    """The file is kept open between lines; a logrotate that moves it (then creates a new
    one, or not), removes it, or puts another file in its place gets the next line at the
    path, and the moved file keeps the lines it had."""
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path)
    log.append({"n": 1})
    old = tmp_path / "d.jsonl.1"
    if rotation == "moved":
        path.rename(old)
    elif rotation == "removed":
        path.unlink()
    else:
        (tmp_path / "new").write_text('{"n": 0}\n')
        (tmp_path / "new").replace(path)
    log.append({"n": 2})
    log.append({"n": 3})
    expected = [0, 2, 3] if rotation == "replaced" else [2, 3]
    assert [r["n"] for r in read_decisions(path)] == expected
    if rotation == "moved":
        assert [r["n"] for r in read_decisions(old)] == [1]


def test_a_write_that_fails_is_tried_again_on_a_fresh_open(tmp_path: Path) -> None:
    """A failed write (disk full) lets the open file go: the next line opens it again."""
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path)
    log.append({"n": 1})
    assert log._handle is not None
    log._handle = FailingHandle(log._handle)  # type: ignore[assignment]
    log.append({"n": 2})  # lost, reported
    assert log._handle is None
    log.append({"n": 3})
    assert [r["n"] for r in read_decisions(path)] == [1, 3]


class FailingHandle:
    """The log's open file, whose writes fail as a full disk's do."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def fileno(self) -> int:
        return self.real.fileno()

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        self.real.close()


def test_no_path_writes_nothing(tmp_path: Path) -> None:
    assert DecisionLog(None).append({"pool": "x", "demand_rps": np.float64(2.5)}) == {
        "pool": "x",
        "demand_rps": 2.5,
    }  # what would be written, for the pool's last decision
    assert list(tmp_path.iterdir()) == []


def test_naive_datetimes_are_taken_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    DecisionLog(path).append({"time": datetime(2024, 1, 1, 12, 0)})
    assert read_decisions(path)[0]["time"] == "2024-01-01T12:00:00Z"


def test_unwritable_log_warns_instead_of_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = DecisionLog(blocker / "decisions.jsonl")  # parent is a file: cannot mkdir
    with caplog.at_level(logging.WARNING):
        log.append({"pool": "x"})
        log.append({"pool": "x"})
    warnings = [r for r in caplog.records if "decision log" in r.getMessage()]
    assert len(warnings) == 1  # once per distinct failure, not every tick


def test_read_decisions_missing_file_and_bad_line(tmp_path: Path) -> None:
    assert read_decisions(tmp_path / "absent.jsonl") == []
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ok": 1}\n\n{not json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3"):
        read_decisions(bad)


def test_a_lone_surrogate_in_a_reason_is_written_as_its_escape(tmp_path: Path) -> None:
    """Text that never went through common.secrets.shorten (an override's reason written
    "\\ud83d" in the YAML file) has no UTF-8 form: the write raised out of the tick. It is
    written as the JSON escape, which reads back as the same text."""
    log = DecisionLog(tmp_path / "decisions.jsonl")
    log.append({"pool": "a", "reasons": ["cut at \ud83d", "ü"]})
    (record,) = read_decisions(tmp_path / "decisions.jsonl")
    assert record["reasons"] == ["cut at \ud83d", "ü"]


def test_a_disk_full_after_a_line_cut_short_is_said_once_not_each_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A write the disk filled in leaves the log mid-line (the bytes that fitted); each
    line after it, while the disk stayed full, opened the log again and warned that it
    ends mid-line again: every pool, every tick. The failure is said once; when there is
    room the next line starts on a line of its own."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"n": 0}\n{"n": 1, "rea')  # the line the disk filled in
    real_open = autoscaler.decision_log.open_to_append
    full = True

    def open_on_full_disk(target: Path) -> TextIO:
        """The log opened, its writes going to /dev/full (ENOSPC) while `full`."""
        handle = real_open(target)
        if full:
            device = os.open("/dev/full", os.O_WRONLY)
            os.dup2(device, handle.fileno())
            os.close(device)
        return handle

    monkeypatch.setattr(autoscaler.decision_log, "open_to_append", open_on_full_disk)
    log = DecisionLog(path)
    with caplog.at_level(logging.WARNING):
        for n in range(2, 6):  # four pools' lines, lost
            log.append({"n": n})
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "ends mid-line" in m]) == 1, said
    assert len([m for m in said if "No space left on device" in m]) == 1, said
    assert log.problem == "OSError: No space left on device"
    full = False
    log.append({"n": 6})
    assert log.problem is None
    assert path.read_text().splitlines() == ['{"n": 0}', '{"n": 1, "rea', '{"n": 6}']
