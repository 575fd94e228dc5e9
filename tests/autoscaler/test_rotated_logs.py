"""Which of a log's rotated files a report reads, and in what order, from their names and
modification times alone (the files themselves: tests/autoscaler/test_daily_report.py)."""

from __future__ import annotations

from autoscaler.rotated_logs import files_to_read

LOG = "decisions.jsonl"
DAY = 86_400.0
ROTATED_AT = 6 * 3600 + 25 * 60  # logrotate from cron.daily, 06:25
SINCE = 10 * DAY - 6 * 3600  # a day's report from day 10: 6 hours before it too


def numbered(days: int) -> dict[str, float]:
    """`rotate N`, `compress`, `delaycompress`: `.1` plain, older ones gzipped; each last
    modified at the rotation that ended it (logrotate's gzip keeps that time)."""
    names = {f"{LOG}.1": 11 * DAY + ROTATED_AT}
    names |= {f"{LOG}.{n}.gz": (12 - n) * DAY + ROTATED_AT for n in range(2, days + 1)}
    return names


def test_only_the_rotated_files_written_in_the_span_are_read_oldest_first() -> None:
    """Day 10's report on day 11 after the 06:25 rotation: day 10 until 06:25 is in .2.gz
    (last written day 10 at 06:25), the rest in .1; .3.gz to .7.gz end before the span."""
    assert files_to_read(LOG, numbered(7), SINCE) == [f"{LOG}.2.gz", f"{LOG}.1", LOG]


def test_a_report_over_days_reads_as_many_and_a_number_is_not_sorted_as_text() -> None:
    found = files_to_read(LOG, numbered(12), SINCE - 8 * DAY)
    assert found == [f"{LOG}.{n}.gz" for n in range(10, 1, -1)] + [f"{LOG}.1", LOG]


def test_dated_files_are_ordered_by_their_date() -> None:
    """`dateext`: named for the day of the rotation that ended it, `.gz` but the newest;
    day 10 until 06:25 is in the file of day 10's rotation."""
    names = {f"{LOG}-202612{d:02}.gz": d * DAY + ROTATED_AT for d in range(2, 11)}
    names[f"{LOG}-20261211"] = 11 * DAY + ROTATED_AT
    assert files_to_read(LOG, names, SINCE) == [f"{LOG}-20261210.gz", f"{LOG}-20261211", LOG]
    dashed = {f"{LOG}-2026-12-{d:02}": d * DAY for d in (9, 10, 11)}  # dateformat -%Y-%m-%d
    assert files_to_read(LOG, dashed, 0.0)[:3] == sorted(dashed)


def test_a_file_both_plain_and_gzipped_is_read_once_plain() -> None:
    """logrotate compressing `.2` right now: the gzip may be half written."""
    names = {f"{LOG}.2": 10 * DAY, f"{LOG}.2.gz": 10 * DAY, f"{LOG}.1": 11 * DAY}
    assert files_to_read(LOG, names, SINCE) == [f"{LOG}.2", f"{LOG}.1", LOG]


def test_other_files_beside_the_log_are_not_read() -> None:
    names = {
        f"{LOG}.bak": 11 * DAY,
        f"{LOG}-old": 11 * DAY,
        f"{LOG}.1.gz.tmp": 11 * DAY,
        f"{LOG}.1.xz": 11 * DAY,
        f"{LOG}.lock": 11 * DAY,
        f"other-{LOG}.1": 11 * DAY,
        f"{LOG}x.1": 11 * DAY,
    }
    assert files_to_read(LOG, names, SINCE) == [LOG]


def test_where_the_scheme_changed_the_one_written_last_is_the_newer() -> None:
    """`dateext` added to the config on day 9: the numbered files are the older."""
    names = {f"{LOG}.1": 8 * DAY, f"{LOG}.2.gz": 7 * DAY}
    names |= {f"{LOG}-202612{d:02}": d * DAY for d in (9, 10)}
    assert files_to_read(LOG, names, 0.0) == [
        f"{LOG}.2.gz",
        f"{LOG}.1",
        f"{LOG}-20261209",
        f"{LOG}-20261210",
        LOG,
    ]
