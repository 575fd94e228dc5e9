"""When the daily digest goes out (autoscaler/daily_report.py builds and words it): at
`digest.at` in its zone each local day, by the schedules' rule for a skipped or repeated
wall time, and which day's `digest.at` a late send covers.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from autoscaler.config.schema import Config
from autoscaler.schedules import wall_time_to_instant


def digest_trigger(config: Config, dry_run: bool) -> BaseTrigger | None:
    """When the daily digest goes out: `digest.at` in its zone; none in a dry run, a
    simulation, or without Slack."""
    digest = config.digest
    if digest is None or config.slack is None or dry_run or config.simulation is not None:
        return None
    return DailyTrigger(digest.at, digest.timezone)


def digest_due(config: Config, now: datetime) -> datetime:
    """When the digest sent at `now` was due: the last `digest.at` at or before it. One
    sent late (a host woken from suspend, a clock stepped forward) covers the day that
    ended then, not the day before the send, whose hours the next digest counts again."""
    if config.digest is None:
        return now.replace(second=0, microsecond=0)
    zone = ZoneInfo(config.digest.timezone)
    day = now.astimezone(zone).date()
    while (due := wall_time_to_instant(day, config.digest.at, zone)) > now:
        day -= timedelta(days=1)
    return due


class DailyTrigger(BaseTrigger):
    """Once each local day at `at`, by the schedules' rule (the first moment the clock
    shows it or later: the jump for a skipped `at`, the first of a repeated one).
    apscheduler's CronTrigger fired at both 01:30s of a fall-back night, and skipped the
    day after a spring-forward night for an `at` before 01:00 (it adds 24 hours to a
    23-hour day, landing past the `at`)."""

    def __init__(self, at: time, timezone: str) -> None:
        self.at, self.zone = at, ZoneInfo(timezone)

    def __str__(self) -> str:
        return f"daily at {self.at:%H:%M} {self.zone.key}"

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first `at` at or after `now`, or after the previous fire."""
        start = now
        if previous_fire_time is not None:  # the one after it, even if late or the clock fell
            start = previous_fire_time + timedelta(microseconds=1)
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        while (fire := wall_time_to_instant(day, self.at, self.zone)) < start:
            day += timedelta(days=1)
        return fire
