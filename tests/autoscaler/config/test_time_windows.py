"""Times of day in a pool's schedules (and the digest): local to the block's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from pydantic import ValidationError

from autoscaler.config.reporting import DigestConfig
from autoscaler.config.time_windows import Schedule
from autoscaler.schedules import bounds_at


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("09:00+05:00", "17:00"),  # once crashed every tick: naive and aware times compared
        ("02:30Z", "03:30Z"),  # once crashed on the spring-forward day; the Z was ignored
        (time(9, tzinfo=UTC), time(17)),
        (time(9, tzinfo=timezone(timedelta(hours=1))), time(17, tzinfo=UTC)),
    ],
)
def test_a_schedule_time_with_a_utc_offset_is_refused(start: object, end: object) -> None:
    fields = {"name": "w", "start": start, "end": end, "timezone": "Europe/Berlin"}
    with pytest.raises(ValidationError, match="without a UTC offset"):
        Schedule.model_validate({**fields, "min_nodes": 1})


def test_a_local_schedule_time_still_works_on_the_spring_forward_day() -> None:
    window = Schedule(
        name="w", start=time(2, 30), end=time(3, 30), timezone="Europe/Berlin", min_nodes=4
    )
    assert bounds_at([window], datetime(2026, 3, 29, 1, 15, tzinfo=UTC)).floor == 4


def test_the_digest_time_with_a_utc_offset_is_refused() -> None:
    with pytest.raises(ValidationError, match="without a UTC offset"):
        DigestConfig.model_validate({"at": "09:00+05:30", "timezone": "Asia/Kolkata"})
    assert DigestConfig.model_validate({"at": "09:00"}).at == time(9)


@pytest.mark.parametrize(
    "days",
    [
        "mon tue wed",  # once Monday alone: each day was read by its first three letters
        "mon..fri",  # the form the range error used to suggest
        "mon\u2013fri",  # an en dash, as a document's "Mon–Fri" pastes
        "mon;wed",
        "montag",
        "dairy",  # once "daily"
        ["mon", "thurs day"],
    ],
)
def test_a_day_list_that_is_not_whole_days_is_refused(days: object) -> None:
    fields = {"name": "w", "start": "09:00", "end": "17:00", "min_nodes": 1}
    with pytest.raises(ValidationError, match="unknown day"):
        Schedule.model_validate({**fields, "days": days})


def test_a_schedule_on_no_day_is_refused() -> None:
    """`days: []` (a template's empty list) passed validate: a floor that never opened, with
    no word; `days: ""` and `days: null` were refused."""
    fields = {"name": "w", "start": "09:00", "end": "17:00", "min_nodes": 1}
    with pytest.raises(ValidationError, match="names no day"):
        Schedule.model_validate({**fields, "days": []})


@pytest.mark.parametrize(
    ("days", "read"),
    [
        ("Monday-Friday", ["mon", "tue", "wed", "thu", "fri"]),
        ("tues - thurs", ["tue", "wed", "thu"]),
        ("fri-mon", ["mon", "fri", "sat", "sun"]),
        (" sat , Sunday ", ["sat", "sun"]),
        (["mon", "wed"], ["mon", "wed"]),
        ("daily", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    ],
)
def test_days_spelled_out_or_as_ranges(days: object, read: list[str]) -> None:
    fields = {"name": "w", "start": "09:00", "end": "17:00", "min_nodes": 1}
    assert Schedule.model_validate({**fields, "days": days}).days == read
