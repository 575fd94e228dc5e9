"""The tick job against a wall clock stepped back (an NTP step, a VM restored from a
snapshot, someone setting the time).

apscheduler's interval trigger counts in wall-clock time: the next run is due one
interval after the last, by the clock. Stepped back an hour, the clock showed that run an
hour and an interval ahead, and the daemon ticked no pool until the clock caught up (under
systemd, its watchdog killed and restarted it first). A run is never due more than one
interval ahead, so one further out can only be such a step; the loop has it run now.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

log = logging.getLogger("autoscaler.daemon")  # the daemon's logger: it is the loop's doing

STEP_SLACK = timedelta(seconds=1)
"""A step back smaller than this costs the tick no more than itself: left alone."""


def stepped_back(next_run: datetime, now: datetime, period: timedelta) -> bool:
    """Whether a run due `next_run` shows the clock stepped back: due further than one
    period ahead of `now` (by more than STEP_SLACK)."""
    return next_run - now - period > STEP_SLACK


def run_now_if_clock_stepped_back(scheduler: BaseScheduler, job_id: str, period_s: float) -> bool:
    """Move the job's next run to now where the wall clock was stepped back (said once
    for each step); True where it did."""
    job = scheduler.get_job(job_id)
    now = datetime.now(UTC)
    period = timedelta(seconds=period_s)
    next_run = job.next_run_time if job is not None else None
    if next_run is None or not stepped_back(next_run, now, period):
        return False
    log.warning(
        "the system clock went back: the next tick was due in %s, more than an interval "
        "(%s) ahead; ticking now, not once the clock has caught up",
        timedelta(seconds=math.ceil((next_run - now).total_seconds())),
        period,
    )
    scheduler.modify_job(job_id, next_run_time=now)
    return True
