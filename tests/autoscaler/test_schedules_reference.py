"""bounds_at and next_change against a brute-force reference, near real clock changes in
zones that shift by an hour, by half an hour (Lord Howe), at midnight (Santiago, Havana),
backwards in winter (Dublin, Casablanca) and by a whole day (Apia skipped 2011-12-30)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.config.time_windows import WEEKDAYS, Schedule
from autoscaler.schedules import bounds_at, next_change

ZONES = (
    "America/New_York", "Europe/London", "Australia/Lord_Howe", "Pacific/Apia",
    "America/Santiago", "Africa/Casablanca", "Europe/Dublin", "America/Havana",
)  # fmt: skip
QUARTER = timedelta(minutes=15)


@cache
def clock_changes(zone: str) -> tuple[datetime, ...]:
    """Every change of the zone's UTC offset in 2011-2026, to the minute."""
    tz, changes = ZoneInfo(zone), []
    at = datetime(2011, 1, 1, tzinfo=UTC)
    offset = at.astimezone(tz).utcoffset()
    while at.year < 2027:
        if (at + timedelta(hours=1)).astimezone(tz).utcoffset() != offset:
            while at.astimezone(tz).utcoffset() == offset:
                at += timedelta(minutes=1)
            changes.append(at)
            offset = at.astimezone(tz).utcoffset()
        at += timedelta(hours=1)
    return tuple(changes)


def first_showing(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The reference: scan minute by minute for the first the clock shows `wall` or later."""
    wanted = datetime.combine(day, wall)
    at = (wanted - timedelta(hours=16)).replace(tzinfo=UTC)
    while at.astimezone(zone).replace(tzinfo=None) < wanted:
        at += timedelta(minutes=1)
    return at


def in_force(schedule: Schedule, at: datetime) -> bool:
    zone = ZoneInfo(schedule.timezone)
    today = at.astimezone(zone).date()
    for shift in range(-4, schedule.lead_time.days + 5):
        day = today + timedelta(days=shift)
        if (schedule.date or day) != day or WEEKDAYS[day.weekday()] not in schedule.days:
            continue
        end_day = day if schedule.end > schedule.start else day + timedelta(days=1)
        opens = first_showing(day, schedule.start, zone) - schedule.lead_time
        if opens <= at < first_showing(end_day, schedule.end, zone):
            return True
    return False


def reference(schedules: list[Schedule], at: datetime) -> tuple[int | None, int | None]:
    active = [s for s in schedules if in_force(s, at)]
    if not active:
        return None, None
    floor = max(s.min_nodes for s in active)
    ceilings = [s.max_nodes for s in active if s.max_nodes is not None]
    return floor, max(min(ceilings), floor) if ceilings else None


clocks = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Schedule], datetime]:
    zone = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(clock_changes(zone)))
    schedules = []
    for name in draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3)):
        start = draw(clocks)
        floor = draw(st.integers(0, 20))
        fields = {
            "name": name,
            "start": start,
            "end": draw(clocks.filter(start.__ne__)),
            "timezone": zone,
            "min_nodes": floor,
            "max_nodes": draw(st.none() | st.integers(floor, 40)),
            "lead_time": draw(st.sampled_from([0, 15, 150, 1470, 2880])) * timedelta(minutes=1),
        }
        if draw(st.booleans()):
            fields["date"] = change.date() + timedelta(days=draw(st.integers(-2, 2)))
        else:
            fields["days"] = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, unique=True))
        schedules.append(Schedule.model_validate(fields))
    at = change + draw(st.integers(-3 * 96, 3 * 96)) * QUARTER
    return schedules, at + timedelta(seconds=draw(st.sampled_from([0, 1, 899])))


@settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(cases())
def test_bounds_match_a_brute_force_reference_near_clock_changes(
    case: tuple[list[Schedule], datetime],
) -> None:
    schedules, at = case
    bounds = bounds_at(schedules, at)
    assert (bounds.floor, bounds.ceiling) == reference(schedules, at)


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(cases())
def test_next_change_is_the_first_quarter_hour_whose_bounds_differ(
    case: tuple[list[Schedule], datetime],
) -> None:
    """Wall times, lead times and these zones' offsets all fall on quarter hours in UTC."""
    schedules, at = case
    now = bounds_at(schedules, at)
    step = at.replace(minute=at.minute - at.minute % 15, second=0) + QUARTER
    expected = None
    while step <= at + timedelta(days=8):
        later = bounds_at(schedules, step)
        if (later.floor, later.ceiling) != (now.floor, now.ceiling):
            expected = step
            break
        step += QUARTER
    change = next_change(schedules, at)
    assert (change[0] if change else None) == expected
