"""The digest's reading of the decision log: a line of the wrong shape is skipped and
counted, naming the file and line, never fatal to the report; the hours a logrotate moved
out of the log are read from its rotated files, as logrotate leaves them."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import autoscaler.decision_log_read
from autoscaler.config.schema import Config
from autoscaler.daily_report import DayReport, build_report, report_text, silent_spans
from autoscaler.decision_log_read import LogRead, read_records
from autoscaler.digest import LoggedTick
from autoscaler.metrics import MetricsError
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
    read = read_records(log, DAY, END)
    broken, first = read.unreadable, read.first_unreadable
    assert len(read.records) == len(records) and broken == 1
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
    done: list[LogRead] = []
    reader = threading.Thread(target=lambda: done.append(read_records(log, DAY, END)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert done, "read_records waited on the FIFO"
    read, broken, first = done[0].records, done[0].unreadable, done[0].first_unreadable
    assert read == [] and broken == 1 and first is not None and "not a regular file" in first


def test_lines_of_an_older_version_without_the_newer_fields_are_read(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    old = {"time": "2026-11-26T10:00:30+00:00", "pool": "ocr", "current": 3, "desired": 3}
    log.write_text(json.dumps(old) + "\n")
    read = read_records(log, DAY, END + timedelta(days=1))
    assert read.records == [LoggedTick.of(old)] and read.unreadable == 0


def test_a_span_the_log_has_no_record_of_is_said() -> None:
    report = DayReport(DAY, END, [], [], 0, None, None, DAY + timedelta(hours=6, minutes=25))
    assert report_text(report, "EUR").endswith(
        "no decision-log record from 2026-11-26 00:00 to 2026-11-26 06:25 UTC, in the log or "
        "its rotated files: each pool's fleet in those hours is the count its first tick "
        "after found"
    )
    later = DayReport(
        DAY, END, [], [], 0, None, "ocr (in decisions.jsonl)", END + timedelta(days=3)
    )
    assert (
        "no decision-log record from 2026-11-26 00:00 to 2026-11-27 00:00 UTC, in the log or "
        "its rotated files: its first line is at 2026-11-30 00:00" in report_text(later, "EUR")
    )


def digest_fires(at: time, zone: str, day: date) -> list[datetime]:
    """The digest's first four sends after noon two days before `day`, in local time."""
    from autoscaler.config.schema import Config
    from autoscaler.digest_trigger import digest_trigger

    pool = {
        "name": "ocr",
        "backend": {"kind": "simulated"},
        "demand": {"query": "q"},
        "capacity": {"per_node_rps": 1},
        "max_nodes": 2,
    }
    digest = {"at": at.strftime("%H:%M"), "timezone": zone}
    config = Config.model_validate(
        {"slack": {"channel": "#gpu"}, "digest": digest, "pools": [pool]}
    )
    trigger = digest_trigger(config, dry_run=False)
    assert trigger is not None
    fire, fires = datetime.combine(day - timedelta(days=2), time(12), ZoneInfo(zone)), []
    for _ in range(4):
        fire = trigger.get_next_fire_time(fire, fire)
        assert fire is not None
        fires.append(fire.astimezone(ZoneInfo(zone)))
    return fires


@pytest.mark.parametrize(
    ("zone", "day"),
    [("America/New_York", date(2026, 11, 1)), ("Australia/Lord_Howe", date(2026, 4, 5))],
)
def test_a_digest_time_in_the_repeated_hour_is_sent_once_that_day(zone: str, day: date) -> None:
    """apscheduler's CronTrigger fires at both 01:30s of a fall-back night: two digests."""
    local = digest_fires(time(1, 45), zone, day)
    assert [f.date() for f in local] == [day - timedelta(days=1 - k) for k in range(4)]
    assert all((f.hour, f.minute) == (1, 45) for f in local)
    assert local[1].utcoffset() > local[2].utcoffset()  # the first 01:45 of the night


@pytest.mark.parametrize(
    ("zone", "at", "day", "sent"),
    [
        ("Europe/Berlin", time(0, 30), date(2026, 3, 29), time(0, 30)),
        ("America/New_York", time(0, 0), date(2026, 3, 8), time(0, 0)),
        ("Pacific/Chatham", time(0, 30), date(2026, 9, 27), time(0, 30)),
        ("Africa/Casablanca", time(0, 15), date(2026, 3, 22), time(0, 15)),
        ("America/Santiago", time(0, 30), date(2026, 9, 6), time(1, 0)),  # 00:30 is skipped
    ],
)
def test_a_digest_time_after_midnight_is_sent_each_day_across_spring_forward(
    zone: str, at: time, day: date, sent: time
) -> None:
    """apscheduler's CronTrigger went from one midnight to the next by adding 24 hours,
    which on a 23-hour day lands an hour past `at`: no digest the day after the change.
    Each day gets one; an `at` the jump skips is sent at the jump (the schedules' rule)."""
    fires = digest_fires(at, zone, day)
    assert [f.date() for f in fires] == [day - timedelta(days=1 - k) for k in range(4)]
    assert [f.time() for f in fires] == [at, sent, at, at]


def write_log(log: Path, start: datetime, end: datetime) -> None:
    """The daemon's lines for [start, end), a tick every 10 minutes, 3 nodes; the file
    last modified at the last one, as the daemon leaves it."""
    ticks = int((end - start) / timedelta(minutes=10))
    times = [start + k * timedelta(minutes=10) for k in range(ticks)]
    with log.open("a") as out:
        for now in times:
            out.write(json.dumps({"time": now.isoformat(), "pool": "ocr", "current": 3}) + "\n")
    os.utime(log, (times[-1].timestamp(), times[-1].timestamp()))


def logrotate(log: Path, dateext: bool) -> None:
    """What logrotate does with `compress` and `delaycompress`: the last rotated file
    gzipped (with that file's modification time), older numbered ones moved up one, the
    log renamed `.1` (or, with `dateext`, `-YYYYMMDD` of the rotation)."""
    if dateext:
        for plain in log.parent.glob(log.name + "-*[0-9]"):
            _gzip(plain, plain.with_name(plain.name + ".gz"))
        day = datetime.fromtimestamp(log.stat().st_mtime, UTC)
        log.rename(log.with_name(f"{log.name}-{day:%Y%m%d}"))
        return
    numbers = sorted(int(p.name.split(".")[2]) for p in log.parent.glob(log.name + ".*"))
    for n in reversed(numbers):
        if n == 1:
            _gzip(log.with_name(f"{log.name}.1"), log.with_name(f"{log.name}.2.gz"))
        else:
            log.with_name(f"{log.name}.{n}.gz").rename(log.with_name(f"{log.name}.{n + 1}.gz"))
    log.rename(log.with_name(f"{log.name}.1"))


def _gzip(plain: Path, packed: Path) -> None:
    with plain.open("rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    kept = plain.stat()
    os.utime(packed, (kept.st_atime, kept.st_mtime))
    plain.unlink()


def rotated_daily(tmp_path: Path, dateext: bool) -> Path:
    """Lines from the 24th to the 27th at 09:00, logrotate from cron.daily at 06:25."""
    log = tmp_path / "decisions.jsonl"
    begin = datetime(2026, 11, 24, tzinfo=UTC)
    for day in range(3):
        rotation = begin + timedelta(days=day + 1, hours=6, minutes=25)
        write_log(log, max(begin, rotation - timedelta(days=1)), rotation)
        logrotate(log, dateext)
    write_log(log, rotation, rotation + timedelta(hours=2, minutes=35))
    return log


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the reader opens."""
    names: list[str] = []
    real = autoscaler.decision_log_read.text_lines

    def spy(path: Path) -> Iterator[tuple[int, str]]:
        names.append(path.name)
        return real(path)

    monkeypatch.setattr(autoscaler.decision_log_read, "text_lines", spy)
    return names


@pytest.mark.parametrize(
    ("dateext", "files"),
    [
        (False, ["decisions.jsonl.2.gz", "decisions.jsonl.1", "decisions.jsonl"]),
        (True, ["decisions.jsonl-20261126.gz", "decisions.jsonl-20261127", "decisions.jsonl"]),
    ],
    ids=["numbered", "dateext"],
)
def test_a_day_rotated_away_is_read_from_the_rotated_files_it_is_in(
    tmp_path: Path, opened: list[str], dateext: bool, files: list[str]
) -> None:
    """The digest of the 26th at 09:00 on the 27th, after logrotate at 06:25: the log
    held the 27th from 06:25 only, and the 26th was not there at all. The day (and its 6
    hours before) is read, in order, from the two files that hold it; the older files,
    last written before those hours, are not opened."""
    log = rotated_daily(tmp_path, dateext)
    read = read_records(log, DAY, END)
    assert opened == files
    times = [r.at for r in read.records]
    ticks = [DAY - timedelta(hours=6) + k * timedelta(minutes=10) for k in range(180)]
    assert times == [tick + timedelta(minutes=5) for tick in ticks]  # 06:25, 06:35, ...
    assert read.unreadable == 0
    assert read.oldest == datetime(2026, 11, 25, 6, 25, tzinfo=UTC)


def test_a_rotated_gzip_cut_short_is_read_up_to_the_damage_and_said(tmp_path: Path) -> None:
    log = rotated_daily(tmp_path, dateext=False)
    packed = log.with_name("decisions.jsonl.2.gz")
    kept = packed.stat()
    data = packed.read_bytes()
    packed.write_bytes(data[: len(data) // 2])  # a disk that filled while gzip wrote
    os.utime(packed, (kept.st_atime, kept.st_mtime))
    read = read_records(log, DAY, END)
    assert read.unreadable == 1 and read.first_unreadable is not None
    assert read.first_unreadable.startswith(f"{packed}:")
    assert "the rest of it not read" in read.first_unreadable
    times = [r.at for r in read.records]
    assert times[-1] == END - timedelta(minutes=5)  # .1, after it, is read
    assert DAY + timedelta(hours=6, minutes=15) not in times  # the end of .2.gz is lost


def test_hours_without_any_decision_are_said_not_taken_for_decisions(tmp_path: Path) -> None:
    """The daemon stopped from 02:00 to 04:30 and after 22:00 (ticks every 10 minutes):
    the report filled those hours with the counts the fleets kept, which is right, but
    said nothing, so a reader took them for the daemon's decisions ("why did it not
    scale?"). A gap of up to three ticks is a tick late, not a stop."""
    log = tmp_path / "decisions.jsonl"
    write_log(log, DAY, DAY + timedelta(hours=2))
    write_log(log, DAY + timedelta(hours=4, minutes=30), DAY + timedelta(hours=22))
    times = [r.at for r in read_records(log, DAY, END).records]
    ten = timedelta(minutes=10)
    spans = silent_spans(times, DAY, END, ten)
    last_before, back = DAY + timedelta(hours=1, minutes=50), DAY + timedelta(hours=4, minutes=30)
    assert spans == ((last_before, back), (DAY + timedelta(hours=21, minutes=50), END))
    assert silent_spans(
        times[:-3] + times[-2:], DAY, DAY + timedelta(hours=21, minutes=55), ten
    ) == ((last_before, back),)  # one tick missing: 20 minutes, not said
    report = DayReport(DAY, END, [], [], 0, silent=spans)
    assert (
        "no decision logged from 11-26 01:50 to 11-26 04:30, 11-26 21:50 to 11-27 00:00 UTC "
        "(the daemon stopped or its ticks did not finish, or another replica led): fleets "
        "kept the counts they had" in report_text(report, "EUR")
    )
    many = tuple((DAY + k * ten * 5, DAY + k * ten * 5 + ten * 4) for k in range(7))
    assert "and 2 more spans UTC" in report_text(DayReport(DAY, END, [], [], 0, silent=many), "EUR")


@pytest.mark.parametrize(
    ("stopped", "back"),
    [
        pytest.param(timedelta(hours=4), timedelta(hours=5), id="stopped-at-20:00"),
        pytest.param(timedelta(hours=9), timedelta(hours=5), id="before-the-6h-read"),
        pytest.param(timedelta(hours=4), None, id="stopped-all-day"),
    ],
)
def test_hours_unwatched_since_the_evening_before_are_said(
    tmp_path: Path, stopped: timedelta, back: timedelta | None
) -> None:
    """The daemon stopped the evening before (20:00, or 15:00, before the 6 hours read
    ahead of the window) and started again at 05:00 (or not that day): the digest said
    nothing of 00:00-05:00, the silent-span note looking only between lines inside the
    window and the no-record note only where the log had nothing older."""
    log = tmp_path / "decisions.jsonl"
    write_log(log, DAY - timedelta(hours=12), DAY - stopped)
    if back is not None:
        write_log(log, DAY + back, END)
    pool = {"backend": {"kind": "simulated"}, "demand": {"query": "q"}, "max_nodes": 9}
    config = Config.model_validate(
        {
            "interval": "10m",
            "decision_log": str(log),
            "metrics": {"kind": "replay", "trace": "t.csv"},
            "pools": [{**pool, "name": "ocr", "capacity": {"per_node_rps": 1}}],
        }
    )
    report = build_report(config, NoDemand(), DAY, END, [])
    until = "11-26 05:00" if back is not None else "11-27 00:00"
    assert report.silent == ((DAY, DAY + back if back is not None else END),)
    assert f"no decision logged from 11-26 00:00 to {until} UTC" in report_text(report, "EUR")
    assert report.no_record_before is None


def test_a_pool_added_or_renamed_mid_day_is_said_with_the_hour_its_lines_begin(
    tmp_path: Path,
) -> None:
    """Pool 'ocr' logged all day; 'ocr-v2' was added (or renamed from another name) by a
    reload at 14:00, its first line then. The report filled its hours before with the
    count its first tick found (a whole day of node-hours and service for a pool that
    joined at 14:00) and said nothing, the log's record being whole for the others. A
    daemon that began late for every pool is the no-record note's, not this one's."""
    log = tmp_path / "decisions.jsonl"
    write_log(log, DAY - timedelta(hours=1), END)
    joined = DAY + timedelta(hours=14)
    with log.open("a") as out:
        for k in range(60):
            at = joined + k * timedelta(minutes=10)
            out.write(json.dumps({"time": at.isoformat(), "pool": "ocr-v2", "current": 7}) + "\n")
    pool = {"backend": {"kind": "simulated"}, "demand": {"query": "q"}, "max_nodes": 9}
    config = Config.model_validate(
        {
            "interval": "10m",
            "decision_log": str(log),
            "metrics": {"kind": "replay", "trace": "t.csv"},
            "pools": [
                {**pool, "name": name, "capacity": {"per_node_rps": 1}}
                for name in ("ocr", "ocr-v2")
            ],
        }
    )
    report = build_report(config, NoDemand(), DAY, END, [])
    assert (
        "decision-log lines only since they were added or renamed: ocr-v2 from 11-26 14:00 "
        "UTC; each one's fleet before then is the count its first tick found"
    ) in report_text(report, "EUR")
    assert report.joined == (("ocr-v2", joined),)
    later = tmp_path / "later.jsonl"  # every pool from 05:00: the daemon began then
    write_log(later, DAY + timedelta(hours=5), END)
    with later.open("a") as out:
        out.write(json.dumps({"time": f"{DAY:%Y-%m-%d}T05:00:30Z", "pool": "ocr-v2"}) + "\n")
    config = config.model_copy(update={"decision_log": later})
    assert build_report(config, NoDemand(), DAY, END, []).joined == ()


class NoDemand:
    """The metrics source (its protocol): no answer, so demand is the log's."""

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> None:
        raise MetricsError("unreachable", query, "the server answered 503")


@pytest.mark.parametrize(
    ("late", "on_time", "reactive"),
    [
        (1.0, "> 99.99 % on time", "< 0.01 % late"),
        (0.0, "100.00 % on time", "0.00 % late"),
        (100.0, "99.99 % on time", "0.01 % late"),
    ],
)
def test_a_late_share_too_small_for_two_decimals_never_reads_as_none(
    late: float, on_time: str, reactive: str
) -> None:
    """1 late request in a million printed '100.00 % on time' (and a reactive fleet's
    share of as few '0.00 % late'): read as none late, beside a count that says one."""
    from dataclasses import replace

    from autoscaler.daily_report import pool_lines
    from autoscaler.digest import FleetCost, pool_digest
    from tests.autoscaler.test_digest import SETTINGS, day_demand

    digest = pool_digest("ocr", day_records(), day_demand(), SETTINGS, DAY, END)
    digest = replace(
        digest,
        requests=1_000_000.0,
        late_requests=late,
        reactive=FleetCost(72.0, None, late_share=late / 1_000_000),
    )
    lines = pool_lines(digest, "EUR")
    assert f"service: {on_time} ({late:,.0f} of 1,000,000 requests late" in lines[1]
    assert lines[-1].startswith("  reactive fleet") and lines[-1].endswith(f", {reactive}")


def test_the_demos_shares_follow_the_digests_rule_without_its_space() -> None:
    """The demo's summary (autoscaler/cli/demo.py) prints its late shares by the digest's
    rule: a share that two decimals would round to none, or to all, never reads so."""
    from autoscaler.daily_report import share_text

    assert share_text(1e-6, "") == "< 0.01%" and share_text(1 - 1e-6, "") == "> 99.99%"
    assert share_text(0.1427, "") == "14.27%" and share_text(0.1427) == "14.27 %"
    assert share_text(0.0, "") == "0.00%" and share_text(1.0, "") == "100.00%"
