"""Where a backtest's service budget went, day by day (autoscaler.backtest.budget)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscaler.backtest.budget import budget_line, count_ratio, days_of
from autoscaler.backtest.runner import BacktestReport, BacktestSettings, run_backtest

WARMUP = timedelta(hours=2)


def _report(trace: pd.Series, *baselines: str) -> BacktestReport:
    settings = BacktestSettings(
        per_node_rps=1.0,
        warmup=WARMUP,
        predictor="linear",
        tune=False,
        baselines=baselines,
        jobs=1,
    )
    return run_backtest(Path("burst.csv"), settings, trace=trace)


def _trace(days: float, burst_day: int | None) -> pd.Series:
    """A level 4 req/s, scored from 02:00; a 20-minute burst at 5 x on `burst_day` of the
    scored span (counted from 02:00), which a fleet booting for 10 minutes is late for."""
    minutes = int(days * 1440)
    index = pd.date_range("2025-03-03", periods=minutes, freq="1min", tz="UTC")
    values = np.full(minutes, 4.0)
    if burst_day is not None:
        start = int(WARMUP / timedelta(minutes=1)) + burst_day * 1440 + 600
        values[start : start + 20] = 20.0
    return pd.Series(values, index=index)


def test_the_days_add_up_to_the_run_and_the_burst_day_took_the_budget() -> None:
    report = _report(_trace(2 + 2 / 24, burst_day=1))
    days = days_of(report)
    policy = report.result("policy")
    assert [day.minutes for day in days] == [1440, 1440]
    assert days[0].start == report.scored_from
    assert days[1].start == report.scored_from + timedelta(days=1)
    assert sum(day.requests for day in days) == pytest.approx(policy.score.requests)
    late = sum(day.late for day in days)
    assert late / policy.score.requests == pytest.approx(policy.score.late_share)
    assert days[1].late > 0 and days[1].late == pytest.approx(late)  # only the burst's day
    assert days[1].mean_nodes > days[0].mean_nodes  # nodes bought for the burst, late
    budget = report.settings.service_target * policy.score.requests
    line = budget_line(report)
    assert line is not None
    assert f"the worst, from {days[1].start:%Y-%m-%d %H:%M} UTC, took {late / budget:.0%}" in line
    assert "late on 1 of 2 days" in line


def test_a_run_with_no_late_request_has_no_line_and_a_short_last_day() -> None:
    report = _report(_trace(1.5, burst_day=None))
    days = days_of(report)
    assert [day.minutes for day in days] == [1440, 1440 // 2 - 120]
    assert all(day.late == 0 for day in days)
    assert budget_line(report) is None


def test_a_run_over_another_on_some_days_is_their_node_hours_ratio() -> None:
    """count_ratio: the policy's node-hours over the static fleet's, on the first day, the
    second and both, as the two runs' counts over those minutes say; none over a run that
    paid for no node."""
    report = _report(_trace(2 + 2 / 24, burst_day=1), "static")
    mine, theirs = days_of(report), days_of(report, "static")
    scored = report.replay.score_start - report.replay.sim_start
    policy = report.result("policy").desired[scored:].astype(float)
    static = report.result("static").desired[scored:].astype(float)
    for days in (slice(0, 1), slice(1, 2), slice(0, 2)):
        minutes = slice(days.start * 1440, days.stop * 1440)
        expected = policy[minutes].sum() / static[minutes].sum()
        assert count_ratio(mine[days], theirs[days]) == pytest.approx(expected)
    assert count_ratio(mine, mine) == pytest.approx(1.0)
    idle = [replace(day, mean_nodes=0.0) for day in theirs]
    assert count_ratio(mine, idle) is None
