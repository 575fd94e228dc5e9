"""Where a run's service budget went, day by day.

A late share over a month says whether the target was met, not how: spread thin over
ordinary days, or most of it taken by one burst that no margin on the days before
would have caught (issue 15: alibaba's day 13). The second is what a schedule or an
override for an event known in advance is for, and says why a loop that spends half
its budget on ordinary days would have missed. Days count from the scored span's
start; late requests follow the backtest's own queue rule over the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from autoscaler.backtest.queue import queue_lateness
from autoscaler.backtest.runner import BacktestReport

DAY_MINUTES = 1440


@dataclass(frozen=True)
class Day:
    """One day of the scored span, as a policy's run served it."""

    start: datetime
    minutes: int
    requests: float
    late: float
    mean_nodes: float
    """The count the policy set, on average (node-hours count it)."""


def days_of(report: BacktestReport, name: str = "policy") -> list[Day]:
    """The scored span of `name`'s run, a day at a time (the last may be shorter)."""
    result, replay = report.result(name), report.replay
    arrivals = replay.arrivals[replay.sim_start :]
    ready = np.asarray(result.ready, dtype=float)
    late = queue_lateness(arrivals, ready * replay.per_node_rps, replay.latency_target_s).late
    scored = replay.score_start - replay.sim_start
    arrivals, late = arrivals[scored:], late[scored:]
    desired = np.asarray(result.desired, dtype=float)[scored:]
    days = []
    for first in range(0, len(late), DAY_MINUTES):
        day = slice(first, first + DAY_MINUTES)
        days.append(
            Day(
                start=report.scored_from + timedelta(minutes=first),
                minutes=len(late[day]),
                requests=float(arrivals[day].sum()),
                late=float(late[day].sum()),
                mean_nodes=float(desired[day].mean()),
            )
        )
    return days


def count_ratio(mine: list[Day], theirs: list[Day]) -> float | None:
    """One run's node-hours over another's on the same days (days_of both); None where
    the other paid for no node: which days cost more than an anchor, not only the run."""
    paid = sum(day.mean_nodes * day.minutes for day in theirs)
    return sum(day.mean_nodes * day.minutes for day in mine) / paid if paid > 0 else None


def budget_line(report: BacktestReport, name: str = "policy") -> str | None:
    """How the run's late requests fell on its days, against the budget (the service
    target x the scored requests); None where none was late."""
    days = days_of(report, name)
    late = sum(day.late for day in days)
    budget = report.settings.service_target * sum(day.requests for day in days)
    if late <= 0 or budget <= 0:
        return None
    worst = max(days, key=lambda day: day.late)
    with_late = sum(1 for day in days if day.late > 0)
    return (
        f"{name}'s late requests by day: the worst, from {worst.start:%Y-%m-%d %H:%M} UTC, took "
        f"{worst.late / budget:.0%} of the budget ({worst.late / worst.requests:.2%} late "
        f"that day); {late / budget:.0%} of the budget spent in all, late on "
        f"{with_late} of {len(days)} days"
    )
