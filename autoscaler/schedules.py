"""Schedule windows: floors (and ceilings) on a pool's size by local wall-clock time.

Pure functions; the instant is an argument. A window is weekly (`days`) or one-off (a
local `date`, e.g. a campaign on 2026-11-27). A window named for day D runs from its
local `start` to its local `end` on D (or on D+1 when end <= start) in its own IANA
zone, and is in force from `start - lead_time` (real elapsed time, so nodes have
booted when the doors open) until `end`.

Daylight-saving time, decided once for starts and ends alike: a wall time maps to
the first instant at which the local clock shows that time or later.
- Repeated hour (fall back): the first occurrence. 01:30 on a New York fall-back day
  is 01:30 EDT; a window opens the earlier of the two moments, never late.
- Missing hour (spring forward): the moment the clock jumps. 02:30 on a Berlin
  spring-forward day becomes 03:00 CEST, as cron runs jobs from the skipped hour.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from autoscaler.config.time_windows import WEEKDAYS, Schedule

LOOKAHEAD = timedelta(days=8)
ZERO = timedelta(0)


@dataclass(frozen=True)
class ScheduleBounds:
    floor: int | None
    ceiling: int | None
    active: tuple[str, ...]


@dataclass(frozen=True)
class Window:
    """One occurrence of a schedule: in force over [opens, ends)."""

    schedule: Schedule
    opens: datetime
    starts: datetime
    ends: datetime

    def covers(self, at: datetime) -> bool:
        return self.opens <= at < self.ends


def wall_time_to_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the clock in `zone` shows `day wall` or later."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)  # exists; fold=0 is the first of a repeated hour
    # In a gap: fold=1 gives an instant before the jump, fold=0 one after. Find the jump
    # (zone transitions fall on whole seconds).
    low = int(naive.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def windows(schedule: Schedule, first_day: date, last_day: date) -> Iterator[Window]:
    """Occurrences of `schedule` whose local start date lies in [first_day, last_day]."""
    zone = ZoneInfo(schedule.timezone)
    day = first_day
    if schedule.date is not None:  # a one-off window: that local date only
        day = max(first_day, schedule.date)
        last_day = min(last_day, schedule.date)
    while day <= last_day:
        if schedule.date is not None or WEEKDAYS[day.weekday()] in schedule.days:
            starts = wall_time_to_instant(day, schedule.start, zone)
            end_day = day if schedule.end > schedule.start else day + timedelta(days=1)
            ends = wall_time_to_instant(end_day, schedule.end, zone)
            yield Window(schedule, starts - schedule.lead_time, starts, ends)
        day += timedelta(days=1)


def _windows_around(schedule: Schedule, at: datetime, ahead: timedelta) -> Iterator[Window]:
    """Every occurrence that can be in force anywhere in [at, at + ahead]."""
    local_day = at.astimezone(ZoneInfo(schedule.timezone)).date()
    first = local_day - timedelta(days=2)
    last = local_day + timedelta(days=ahead.days + schedule.lead_time.days + 2)
    return windows(schedule, first, last)


def _check_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("schedules need a time-zone-aware instant")
    return at.astimezone(UTC)


def bounds_at(schedules: Sequence[Schedule], at: datetime) -> ScheduleBounds:
    """Floors and ceilings in force at `at`; where a ceiling is below a floor, the floor wins."""
    at = _check_aware(at)
    active = [s for s in schedules if any(w.covers(at) for w in _windows_around(s, at, ZERO))]
    return _combine(active)


def _combine(active: Sequence[Schedule]) -> ScheduleBounds:
    if not active:
        return ScheduleBounds(None, None, ())
    floor = max(s.min_nodes for s in active)
    ceilings = [s.max_nodes for s in active if s.max_nodes is not None]
    ceiling = max(min(ceilings), floor) if ceilings else None
    names = tuple(dict.fromkeys(s.name for s in active))
    return ScheduleBounds(floor, ceiling, names)


def next_change(schedules: Sequence[Schedule], at: datetime) -> tuple[datetime, str] | None:
    """The next instant within 8 days at which the floor or ceiling changes, and why."""
    at = _check_aware(at)
    horizon = at + LOOKAHEAD
    events: dict[datetime, list[tuple[Window, bool]]] = {}
    occurrences = [w for s in schedules for w in _windows_around(s, at, LOOKAHEAD)]
    for window in occurrences:
        for instant, opening in ((window.opens, True), (window.ends, False)):
            if at < instant <= horizon:
                events.setdefault(instant, []).append((window, opening))
    before = bounds_at(schedules, at)
    for instant in sorted(events):
        now_active = [w.schedule for w in occurrences if w.covers(instant)]
        after = _combine(_unique_schedules(now_active))
        if (after.floor, after.ceiling) != (before.floor, before.ceiling):
            return instant, _describe(events[instant], before, after)
        before = after
    return None


def _unique_schedules(schedules: Sequence[Schedule]) -> list[Schedule]:
    seen: list[Schedule] = []
    for schedule in schedules:
        if not any(schedule is s for s in seen):
            seen.append(schedule)
    return seen


def _describe(
    events: Sequence[tuple[Window, bool]], before: ScheduleBounds, after: ScheduleBounds
) -> str:
    """E.g. "'business' opens (floor 50); floor 0 -> 50"."""
    parts = []
    for window, opening in sorted(events, key=lambda event: event[1]):  # closes first
        schedule = window.schedule
        if opening:
            limits = f"floor {schedule.min_nodes}"
            if schedule.max_nodes is not None:
                limits += f", ceiling {schedule.max_nodes}"
            lead = f", {_minutes(schedule.lead_time)} before {schedule.start:%H:%M}"
            parts.append(f"{schedule.name!r} opens ({limits}{lead if schedule.lead_time else ''})")
        else:
            parts.append(f"{schedule.name!r} closes")
    change = f"floor {_text(before.floor)} -> {_text(after.floor)}"
    if before.ceiling != after.ceiling:
        change += f", ceiling {_text(before.ceiling)} -> {_text(after.ceiling)}"
    return "; ".join([*parts, change])


def _text(value: int | None) -> str:
    return "none" if value is None else str(value)


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
