"""The digest's reading of the decision log: a line of the wrong shape is skipped and
counted, naming the file and line, never fatal to the report."""

from __future__ import annotations

import json
import os
import threading
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from autoscaler.daily_report import DayReport, read_records, report_text
from tests.autoscaler.test_digest import DAY, END, day_records


@pytest.mark.parametrize(
    ("line", "says"),
    [
        pytest.param('{"time": 12345, "pool": "ocr"}', "time: 12345", id="time-a-number"),
        pytest.param(
            '{"time": "2026-11-26T10:00:30", "pool": "ocr", "current": 3}',
            "has no UTC offset",
            id="time-without-offset",
        ),
        pytest.param('{"time": "now", "pool": "ocr"}', "has no UTC offset", id="time-now"),
        pytest.param(
            '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": "many"}',
            "current: 'many' is not a node count",
            id="count-text",
        ),
        pytest.param(
            '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": [3]}',
            "current: [3]",
            id="count-list",
        ),
        pytest.param(
            '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": NaN}',
            "current: nan",
            id="count-nan",
        ),
        pytest.param(
            '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": 3, "forecast_rps": {}}',
            "forecast_rps: {}",
            id="rate-a-mapping",
        ),
        pytest.param(
            '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": 3, "reasons": 5}',
            "reasons: 5 is not a list",
            id="reasons-a-number",
        ),
        pytest.param("[1, 2]", "not list", id="not-an-object"),
    ],
)
def test_a_line_of_the_wrong_shape_is_skipped_naming_file_and_line(
    tmp_path: Path, line: str, says: str
) -> None:
    records = day_records()
    log = tmp_path / "decisions.jsonl"
    text = [json.dumps(r) for r in records]
    text.insert(600, line)
    log.write_text("\n".join(text) + "\n")
    read, broken, first = read_records(log, DAY, END)
    assert len(read) == len(records) and broken == 1
    assert first is not None and first.startswith(f"{log}:601: ") and says in first
    report = DayReport(DAY, END, [], [], broken, first)
    assert f"1 unreadable decision-log lines skipped (first: {log}:601: " in report_text(
        report, "EUR"
    )


def test_a_decision_log_that_is_a_fifo_is_said_not_waited_on(tmp_path: Path) -> None:
    """A FIFO in the decision log's place held the digest (and `autoscaler report`) for a
    writer that never came; now it is one unreadable entry naming the file."""
    log = tmp_path / "decisions.jsonl"
    os.mkfifo(log)
    done: list[tuple[list[dict[str, Any]], int, str | None]] = []
    reader = threading.Thread(target=lambda: done.append(read_records(log, DAY, END)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert done, "read_records waited on the FIFO"
    read, broken, first = done[0]
    assert read == [] and broken == 1 and first is not None and "not a regular file" in first


def test_lines_of_an_older_version_without_the_newer_fields_are_read(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    old = {"time": "2026-11-26T10:00:30+00:00", "pool": "ocr", "current": 3, "desired": 3}
    log.write_text(json.dumps(old) + "\n")
    read, broken, _ = read_records(log, DAY, END + timedelta(days=1))
    assert read == [old] and broken == 0


@pytest.mark.parametrize(
    ("zone", "day"),
    [("America/New_York", date(2026, 11, 1)), ("Australia/Lord_Howe", date(2026, 4, 5))],
)
def test_a_digest_time_in_the_repeated_hour_is_sent_once_that_day(zone: str, day: date) -> None:
    """apscheduler's CronTrigger fires at both 01:30s of a fall-back night: two digests."""
    from autoscaler.config.schema import Config
    from autoscaler.daily_report import digest_trigger

    pool = {
        "name": "ocr",
        "backend": {"kind": "simulated"},
        "demand": {"query": "q"},
        "capacity": {"per_node_rps": 1},
        "max_nodes": 2,
    }
    config = Config.model_validate(
        {
            "slack": {"channel": "#gpu"},
            "digest": {"at": "01:45", "timezone": zone},
            "pools": [pool],
        }
    )
    trigger = digest_trigger(config, dry_run=False)
    assert trigger is not None
    fire, fires = datetime.combine(day - timedelta(days=2), time(12), ZoneInfo(zone)), []
    for _ in range(4):
        fire = trigger.get_next_fire_time(fire, fire)
        assert fire is not None
        fires.append(fire)
    local = [f.astimezone(ZoneInfo(zone)) for f in fires]
    assert [f.date() for f in local] == [day - timedelta(days=1 - k) for k in range(4)]
    assert all((f.hour, f.minute) == (1, 45) for f in local)
    assert local[1].utcoffset() > local[2].utcoffset()  # the first 01:45 of the night
