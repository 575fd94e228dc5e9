"""Schedule windows by local wall-clock time, across DST changes, overlaps and midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from autoscaler.config.time_windows import Schedule
from autoscaler.schedules import ScheduleBounds, bounds_at, next_change, wall_time_to_instant

KOLKATA = ZoneInfo("Asia/Kolkata")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def schedule(name: str = "w", **fields: Any) -> Schedule:
    fields.setdefault("start", "09:00")
    fields.setdefault("end", "17:00")
    fields.setdefault("min_nodes", 10)
    return Schedule.model_validate({"name": name, **fields})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold)


# The example: "50 nodes ready by 08:50 Mon-Sat, Asia/Kolkata".
BUSINESS = schedule(
    "business", days="mon-sat", start="09:00", end="18:00", timezone="Asia/Kolkata",
    min_nodes=50, lead_time="10m",
)  # fmt: skip


@pytest.mark.parametrize(
    ("at", "floor"),
    [
        (local("2026-11-23T08:49:59", KOLKATA), None),  # Monday, just before the lead
        (local("2026-11-23T08:50", KOLKATA), 50),  # ready by 08:50
        (utc("2026-11-23T03:20"), 50),  # the same instant seen from UTC (+05:30)
        (utc("2026-11-23T03:19"), None),
        (local("2026-11-23T12:00", KOLKATA), 50),
        (local("2026-11-23T17:59:59", KOLKATA), 50),
        (local("2026-11-23T18:00", KOLKATA), None),  # end is exclusive
        (local("2026-11-28T08:50", KOLKATA), 50),  # Saturday
        (local("2026-11-29T08:55", KOLKATA), None),  # Sunday: not a business day
        (local("2026-11-29T12:00", KOLKATA), None),
        (local("2026-11-30T08:50", KOLKATA), 50),  # Monday again
    ],
)
def test_kolkata_business_hours_with_lead_time(at: datetime, floor: int | None) -> None:
    bounds = bounds_at([BUSINESS], at)
    assert bounds.floor == floor
    assert bounds.active == (("business",) if floor else ())
    assert bounds.ceiling is None


# Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
# America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
DST_CASES = [
    # 09:00 wall clock on both sides of a change is a different UTC hour.
    ("Europe/Berlin", "09:00", "17:00", "2026-03-28T07:59", None),
    ("Europe/Berlin", "09:00", "17:00", "2026-03-28T08:00", 10),  # 09:00 CET
    ("Europe/Berlin", "09:00", "17:00", "2026-03-29T06:59", None),
    ("Europe/Berlin", "09:00", "17:00", "2026-03-29T07:00", 10),  # 09:00 CEST
    ("Europe/Berlin", "09:00", "17:00", "2026-03-29T14:59", 10),
    ("Europe/Berlin", "09:00", "17:00", "2026-03-29T15:00", None),  # 17:00 CEST
    ("Europe/Berlin", "09:00", "17:00", "2026-10-25T07:00", None),
    ("Europe/Berlin", "09:00", "17:00", "2026-10-25T08:00", 10),  # 09:00 CET again
    ("Europe/Berlin", "09:00", "17:00", "2026-10-25T15:59", 10),
    ("Europe/Berlin", "09:00", "17:00", "2026-10-25T16:00", None),
    # Spring forward: 02:30 does not exist; the window opens when the clock jumps (03:00).
    ("Europe/Berlin", "02:30", "05:00", "2026-03-29T00:59", None),
    ("Europe/Berlin", "02:30", "05:00", "2026-03-29T01:00", 10),
    ("Europe/Berlin", "02:30", "05:00", "2026-03-29T02:59", 10),
    ("Europe/Berlin", "02:30", "05:00", "2026-03-29T03:00", None),  # 05:00 CEST
    # Fall back: 02:30 happens twice; the window opens at the first (CEST, 00:30 UTC)
    # and ends at the first 03:30 that follows, an hour later in real time (CET).
    ("Europe/Berlin", "02:30", "03:30", "2026-10-25T00:29", None),
    ("Europe/Berlin", "02:30", "03:30", "2026-10-25T00:30", 10),
    ("Europe/Berlin", "02:30", "03:30", "2026-10-25T02:29", 10),
    ("Europe/Berlin", "02:30", "03:30", "2026-10-25T02:30", None),
    # Overnight window across spring forward: Sat 22:00 CET to Sun 06:00 CEST, 7 real hours.
    ("Europe/Berlin", "22:00", "06:00", "2026-03-28T20:59", None),
    ("Europe/Berlin", "22:00", "06:00", "2026-03-28T21:00", 10),
    ("Europe/Berlin", "22:00", "06:00", "2026-03-29T03:59", 10),
    ("Europe/Berlin", "22:00", "06:00", "2026-03-29T04:00", None),
    # New York, both directions.
    ("America/New_York", "09:00", "17:00", "2026-03-07T14:00", 10),  # 09:00 EST
    ("America/New_York", "09:00", "17:00", "2026-03-08T12:59", None),
    ("America/New_York", "09:00", "17:00", "2026-03-08T13:00", 10),  # 09:00 EDT
    ("America/New_York", "09:00", "17:00", "2026-10-31T13:00", 10),  # 09:00 EDT
    ("America/New_York", "09:00", "17:00", "2026-11-01T13:59", None),
    ("America/New_York", "09:00", "17:00", "2026-11-01T14:00", 10),  # 09:00 EST
    ("America/New_York", "09:00", "17:00", "2026-11-01T21:59", 10),
    ("America/New_York", "09:00", "17:00", "2026-11-01T22:00", None),
    # 01:30-01:45 on the fall-back day: only the first pass (EDT, 05:30 UTC) counts.
    ("America/New_York", "01:30", "01:45", "2026-11-01T05:30", 10),
    ("America/New_York", "01:30", "01:45", "2026-11-01T05:45", None),
    ("America/New_York", "01:30", "01:45", "2026-11-01T06:35", None),  # 01:35 EST
    # A window wholly inside the skipped hour does not happen that day.
    ("America/New_York", "02:10", "02:50", "2026-03-08T06:59", None),
    ("America/New_York", "02:10", "02:50", "2026-03-08T07:00", None),
    ("America/New_York", "02:10", "02:50", "2026-03-09T06:10", 10),  # next day, 02:10 EDT
    # Overnight across fall back: Sat 23:00 EDT to Sun 03:00 EST, 5 real hours.
    ("America/New_York", "23:00", "03:00", "2026-11-01T03:00", 10),
    ("America/New_York", "23:00", "03:00", "2026-11-01T07:59", 10),
    ("America/New_York", "23:00", "03:00", "2026-11-01T08:00", None),
]


@pytest.mark.parametrize(("zone", "start", "end", "at", "floor"), DST_CASES)
def test_wall_clock_windows_across_dst(
    zone: str, start: str, end: str, at: str, floor: int | None
) -> None:
    window = schedule(start=start, end=end, timezone=zone)
    assert bounds_at([window], utc(at)).floor == floor


@pytest.mark.parametrize(
    ("day", "wall", "zone", "expected"),
    [
        (date(2026, 3, 29), time(2, 30), BERLIN, "2026-03-29T01:00"),  # gap: the jump
        (date(2026, 3, 29), time(2, 0), BERLIN, "2026-03-29T01:00"),
        (date(2026, 3, 29), time(3, 0), BERLIN, "2026-03-29T01:00"),
        (date(2026, 3, 29), time(1, 59), BERLIN, "2026-03-29T00:59"),
        (date(2026, 10, 25), time(2, 30), BERLIN, "2026-10-25T00:30"),  # repeated: first
        (date(2026, 11, 1), time(1, 0), NEW_YORK, "2026-11-01T05:00"),
        (date(2026, 3, 8), time(2, 59, 59), NEW_YORK, "2026-03-08T07:00"),
        (date(2026, 11, 23), time(9, 0), KOLKATA, "2026-11-23T03:30"),
        # Lord Howe Island moves by half an hour.
        (date(2026, 10, 4), time(2, 15), ZoneInfo("Australia/Lord_Howe"), "2026-10-03T15:30"),
    ],
)
def test_wall_time_to_instant(day: date, wall: time, zone: ZoneInfo, expected: str) -> None:
    assert wall_time_to_instant(day, wall, zone) == utc(expected)


def test_overnight_window_belongs_to_its_start_day() -> None:
    friday_night = schedule(days=["fri"], start="22:00", end="06:00", timezone="UTC")
    assert bounds_at([friday_night], utc("2026-11-27T21:59")).floor is None  # Friday
    assert bounds_at([friday_night], utc("2026-11-27T22:00")).floor == 10
    assert bounds_at([friday_night], utc("2026-11-28T05:59")).floor == 10  # Saturday morning
    assert bounds_at([friday_night], utc("2026-11-28T06:00")).floor is None
    assert bounds_at([friday_night], utc("2026-11-28T23:00")).floor is None  # Saturday night
    assert bounds_at([friday_night], utc("2026-11-21T03:00")).floor == 10  # a week before


def test_lead_time_reaches_back_over_midnight_and_week_start() -> None:
    early = schedule(days=["mon"], start="00:30", end="02:00", lead_time="2h", timezone="UTC")
    assert bounds_at([early], utc("2026-11-22T22:29")).floor is None  # Sunday
    assert bounds_at([early], utc("2026-11-22T22:30")).floor == 10
    long_lead = schedule(days=["mon"], start="09:00", end="10:00", lead_time="2d", timezone="UTC")
    assert bounds_at([long_lead], utc("2026-11-21T09:00")).floor == 10  # Saturday


def test_lead_time_is_real_time_across_a_clock_change() -> None:
    # 04:00 CEST on the spring-forward day is 02:00 UTC; 3 real hours before is 23:00 UTC,
    # which is 00:00 CET, not 01:00 as wall-clock arithmetic would say.
    window = schedule(start="04:00", end="05:00", lead_time="3h", timezone="Europe/Berlin")
    assert bounds_at([window], utc("2026-03-28T22:59")).floor is None
    assert bounds_at([window], utc("2026-03-28T23:00")).floor == 10


@pytest.mark.parametrize(
    ("windows", "at", "expected"),
    [
        (  # floors: the highest; ceilings: the lowest
            [
                schedule("a", min_nodes=10, max_nodes=30),
                schedule("b", start="12:00", end="20:00", min_nodes=20, max_nodes=25),
            ],
            "2026-11-23T13:00",
            ScheduleBounds(20, 25, ("a", "b")),
        ),
        (  # only one of them in force
            [
                schedule("a", min_nodes=10, max_nodes=30),
                schedule("b", start="12:00", end="20:00", min_nodes=20, max_nodes=25),
            ],
            "2026-11-23T18:00",
            ScheduleBounds(20, 25, ("b",)),
        ),
        (  # a ceiling below another window's floor: the floor wins
            [
                schedule("peak", min_nodes=40),
                schedule("budget", start="00:00", end="23:59", min_nodes=0, max_nodes=10),
            ],
            "2026-11-23T10:00",
            ScheduleBounds(40, 40, ("peak", "budget")),
        ),
        (  # a ceiling alone
            [schedule("night", start="22:00", end="06:00", min_nodes=0, max_nodes=4)],
            "2026-11-23T23:00",
            ScheduleBounds(0, 4, ("night",)),
        ),
        ([], "2026-11-23T10:00", ScheduleBounds(None, None, ())),
        (  # different zones overlap at the same instant
            [
                schedule("berlin", timezone="Europe/Berlin", min_nodes=5),
                schedule("kolkata", timezone="Asia/Kolkata", min_nodes=7),
            ],
            "2026-11-23T09:00",  # 10:00 Berlin, 14:30 Kolkata
            ScheduleBounds(7, None, ("berlin", "kolkata")),
        ),
    ],
)
def test_overlapping_windows(windows: list[Schedule], at: str, expected: ScheduleBounds) -> None:
    assert bounds_at(windows, utc(at)) == expected


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        bounds_at([BUSINESS], datetime(2026, 11, 23, 9))
    with pytest.raises(ValueError, match="aware"):
        next_change([BUSINESS], datetime(2026, 11, 23, 9))


# ---- next_change ------------------------------------------------------------------------


def test_next_change_opens_with_lead_time() -> None:
    sunday_noon = local("2026-11-29T12:00", KOLKATA)
    when, why = next_change([BUSINESS], sunday_noon)  # type: ignore[misc]
    assert when == local("2026-11-30T08:50", KOLKATA)
    assert why == "'business' opens (floor 50, 10m before 09:00); floor none -> 50"


def test_next_change_closes() -> None:
    change = next_change([BUSINESS], local("2026-11-30T09:00", KOLKATA))
    assert change == (local("2026-11-30T18:00", KOLKATA), "'business' closes; floor 50 -> none")


def test_next_change_skips_instants_where_bounds_stay_the_same() -> None:
    morning = schedule("morning", start="08:00", end="12:00", min_nodes=10)
    afternoon = schedule("afternoon", start="12:00", end="18:00", min_nodes=10)
    evening = schedule("evening", start="18:00", end="22:00", min_nodes=4, max_nodes=8)
    when, why = next_change([morning, afternoon, evening], utc("2026-11-23T09:00"))  # type: ignore[misc]
    assert when == utc("2026-11-23T18:00")
    assert why == (
        "'afternoon' closes; 'evening' opens (floor 4, ceiling 8); floor 10 -> 4, ceiling none -> 8"
    )


def test_next_change_across_dst() -> None:
    daily = schedule(timezone="Europe/Berlin")
    when, _ = next_change([daily], utc("2026-03-28T17:00"))  # type: ignore[misc]
    assert when == utc("2026-03-29T07:00")  # 09:00 CEST


def test_next_change_none_within_eight_days() -> None:
    assert next_change([], utc("2026-11-23T00:00")) is None
    always = schedule(start="00:00", end="00:00:01", min_nodes=0)
    # A window's floor 0 is still a floor: opening it changes None -> 0.
    assert next_change([always], utc("2026-11-23T12:00")) is not None
    weekly_far = schedule(days=["mon"], start="09:00", end="10:00")
    assert next_change([weekly_far], utc("2026-11-23T10:00"))[0] == utc("2026-11-30T09:00")  # type: ignore[index]


MIXED = [
    BUSINESS,
    schedule("berlin", days="mon-fri", timezone="Europe/Berlin", min_nodes=5, max_nodes=30),
    schedule("ny-night", start="22:00", end="02:30", timezone="America/New_York", min_nodes=2,
             max_nodes=6, lead_time="45m"),
    schedule("gap", start="02:15", end="03:15", timezone="Europe/Berlin", min_nodes=8),
]  # fmt: skip


@settings(max_examples=150, deadline=None, database=None)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)))
@example(datetime(2026, 3, 29, 0, 30))  # Berlin spring forward, "gap" window
@example(datetime(2026, 10, 25, 0, 0))  # Berlin fall back
@example(datetime(2026, 3, 8, 5, 0))  # New York spring forward, overnight window
@example(datetime(2026, 11, 1, 4, 0))  # New York fall back
def test_bounds_hold_until_next_change(start: datetime) -> None:
    at = start.replace(tzinfo=UTC)
    change = next_change(MIXED, at)
    assert change is not None  # these windows change bounds every day
    when, _ = change
    assert at < when <= at + timedelta(days=8)
    before = bounds_at(MIXED, at)
    for step in range(1, 6):
        between = bounds_at(MIXED, at + (when - at) * step / 6)
        assert (between.floor, between.ceiling) == (before.floor, before.ceiling)
    just_before = bounds_at(MIXED, when - timedelta(microseconds=1))
    after = bounds_at(MIXED, when)
    assert (just_before.floor, just_before.ceiling) == (before.floor, before.ceiling)
    assert (after.floor, after.ceiling) != (before.floor, before.ceiling)
    if before.floor is not None and before.ceiling is not None:
        assert before.ceiling >= before.floor


# ---- dated (one-off) windows ----------------------------------------------------------

CAMPAIGN = Schedule(
    name="campaign",
    date=date(2026, 11, 27),
    start=time(8, 0),
    end=time(22, 0),
    timezone="Asia/Kolkata",
    min_nodes=40,
)


@pytest.mark.parametrize(
    ("at", "floor"),
    [
        (datetime(2026, 11, 27, 2, 29, tzinfo=UTC), None),  # 07:59 IST
        (datetime(2026, 11, 27, 2, 30, tzinfo=UTC), 40),  # 08:00 IST
        (datetime(2026, 11, 27, 16, 29, tzinfo=UTC), 40),  # 21:59 IST
        (datetime(2026, 11, 27, 16, 30, tzinfo=UTC), None),  # 22:00 IST
        (datetime(2026, 12, 4, 6, 0, tzinfo=UTC), None),  # a week later: one-off
        (datetime(2026, 11, 26, 6, 0, tzinfo=UTC), None),  # the day before
        (datetime(2027, 11, 27, 6, 0, tzinfo=UTC), None),  # a year later
    ],
)
def test_a_dated_window_is_in_force_on_its_local_date_only(at: datetime, floor: int | None) -> None:
    assert bounds_at([CAMPAIGN], at).floor == floor


def test_next_change_announces_a_dated_window() -> None:
    change = next_change([CAMPAIGN], datetime(2026, 11, 25, 0, 0, tzinfo=UTC))
    assert change is not None
    assert change[0] == datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
    assert "'campaign' opens (floor 40)" in change[1]
    assert next_change([CAMPAIGN], datetime(2026, 11, 28, 0, 0, tzinfo=UTC)) is None


def test_a_dated_window_overnight_and_with_lead_time() -> None:
    night = CAMPAIGN.model_copy(
        update={"start": time(22, 0), "end": time(2, 0), "lead_time": timedelta(minutes=30)}
    )
    assert bounds_at([night], datetime(2026, 11, 27, 16, 0, tzinfo=UTC)).floor == 40  # 21:30 IST
    assert bounds_at([night], datetime(2026, 11, 27, 20, 0, tzinfo=UTC)).floor == 40  # 01:30 next
    assert bounds_at([night], datetime(2026, 11, 27, 20, 30, tzinfo=UTC)).floor is None


def test_date_and_days_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        Schedule.model_validate(
            {
                "name": "x",
                "days": "mon",
                "date": "2026-11-27",
                "start": "08:00",
                "end": "09:00",
                "min_nodes": 1,
            }
        )
