"""Spans of time in a pool's config: weekly or one-off schedules, masked history.

Its own room because day ranges, clock times and time zones are one set of rules
that the schedule logic (autoscaler/schedules.py) and the history masks share.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime, time, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from common.durations import Duration
from common.settings import MAX_NODES, Strict
from common.time_zones import time_zone

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HISTORY_YEARS = (1900, 2200)
"""Where a time the daemon reads history at may lie: within pandas' timestamps (1677-2262)
with room for a history window, a horizon and the week a schedule looks around (year 1
or 9999 overflows: a simulated clock there, or a masked span's note, failed every tick)."""


def within_history_years(value: datetime, what: str) -> datetime:
    """`value` if its year is within HISTORY_YEARS, else a ValueError saying so."""
    first, last = HISTORY_YEARS
    if not first <= value.year < last:
        raise ValueError(f"{what} between the years {first} and {last}")
    return value


class HistoryMask(Strict):
    """A span the forecaster must not learn from (an outage, a launch spike)."""

    name: str = Field(min_length=1)
    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "needs a UTC offset, such as 2026-11-02T10:00:00+05:30 or ...Z; a time "
                "without one is ambiguous"
            )
        return within_history_years(value, "a masked span lies")

    @model_validator(mode="after")
    def _ordered(self) -> HistoryMask:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _clock_text(value: Any) -> Any:
    """pydantic reads 9 as 9 seconds after midnight; a person meant 09:00."""
    if isinstance(value, str | time):
        return value
    raise ValueError(f"write a time of day as 'HH:MM', such as '09:00' (got {value!r})")


def _local_clock(value: time) -> time:
    """A time of day is read in its block's `timezone`; an offset on it would be ignored
    (and a time with one cannot be compared with one without)."""
    if value.tzinfo is not None:
        raise ValueError(
            f"write a local time of day without a UTC offset, such as '09:00' (got "
            f"{value.isoformat()!r}); the time zone is the `timezone` setting"
        )
    return value


def _known_zone(value: str) -> str:
    time_zone(value)
    return value


ClockTime = Annotated[time, BeforeValidator(_clock_text), AfterValidator(_local_clock)]
"""A local time of day written as text ('09:00'), never a bare number nor with an offset."""
ZoneName = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name that this machine's tz database knows."""


class Schedule(Strict):
    """A named window of the week with a floor (and optional ceiling) on the node count."""

    name: str
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS))
    date: dt.date | None = Field(
        default=None,
        description="a one-off window on this local date (a campaign) instead of weekdays",
    )
    start: ClockTime
    end: ClockTime
    timezone: ZoneName = "UTC"
    min_nodes: int = Field(ge=0, le=MAX_NODES)
    max_nodes: int | None = Field(default=None, ge=0, le=MAX_NODES)
    lead_time: Duration = timedelta(0)

    @field_validator("days", mode="before")
    @classmethod
    def _expand_days(cls, value: Any) -> list[str]:
        return expand_days(value)

    @model_validator(mode="before")
    @classmethod
    def _date_or_days(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("date") is not None and "days" in data:
            raise ValueError("give days (every week) or date (once), not both")
        return data

    @model_validator(mode="after")
    def _ceiling_above_floor(self) -> Schedule:
        if self.max_nodes is not None and self.max_nodes < self.min_nodes:
            raise ValueError("max_nodes must be at least min_nodes")
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


def expand_days(value: Any) -> list[str]:
    """Accept ["mon", "tue"], "mon-fri", "mon-sat,sun", "Monday-Friday" or "daily".

    Each day is a whole word: "mon tue", "mon..fri" or "mon–fri" (an en dash) once
    read as Monday alone (their first three letters), a floor missing four days a week."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("expected a list of days such as [mon, tue] or a range mon-fri")
    days: list[str] = []
    for item in (str(item).strip() for item in items):
        text = item.lower()
        if text == "daily":
            days.extend(WEEKDAYS)
        elif "-" in text:
            first, last = (_day(part) for part in text.partition("-")[::2])
            if first is None or last is None:
                raise ValueError(f"unknown day range {item!r}; write a range as mon-fri")
            i, j = WEEKDAYS.index(first), WEEKDAYS.index(last)
            span = range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)]
            days.extend(WEEKDAYS[k] for k in span)
        elif (day := _day(text)) is not None:
            days.append(day)
        else:
            raise ValueError(
                f"unknown day {item!r}; use mon, tue, wed, thu, fri, sat, sun (several: "
                "[mon, wed] or mon,wed; a range: mon-fri)"
            )
    if not days:  # `days: []` (a template's empty list): a floor that never opens
        raise ValueError("names no day; give at least one, such as mon-fri or daily")
    return sorted(set(days), key=WEEKDAYS.index)


def _day(text: str) -> str | None:
    """One day by the start of its name, 3 letters or more: mon, Monday, tues, thurs."""
    word = text.strip()
    for short, full in zip(WEEKDAYS, DAY_NAMES, strict=True):
        if len(word) >= 3 and full.startswith(word):
            return short
    return None
