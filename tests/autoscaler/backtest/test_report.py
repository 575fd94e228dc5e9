"""The backtest's report: its summary line on traces nobody tuned for."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from autoscaler.backtest.baselines import PolicyResult
from autoscaler.backtest.queue import ready_nodes
from autoscaler.backtest.report import least_node_hours, summary_line, summary_lines
from autoscaler.backtest.runner import BacktestSettings, run_backtest
from tests.autoscaler.backtest.test_runner import nasa_cut, step_trace


def untuned(per_node_rps: float, warmup: timedelta, *baselines: str) -> BacktestSettings:
    """A quick backtest: the linear predictor, untuned, on one process."""
    return BacktestSettings(
        per_node_rps=per_node_rps,
        warmup=warmup,
        predictor="linear",
        tune=False,
        baselines=baselines,
        jobs=1,
    )


def test_a_trace_of_no_requests_gets_a_summary_not_a_traceback() -> None:
    """Every baseline that meets the target costs 0 node-hours: no ratio to print."""
    trace = step_trace(180, jump_at=180, low=0.0, high=0.0)
    settings = untuned(1.0, timedelta(minutes=90), "static")
    report = run_backtest(Path("zeros.csv"), settings, trace=trace)
    line = summary_line(report)
    assert line.startswith("policy meets the target; 0 node-hours")
    assert "the best baseline that meets it (static) needs none" in line


def test_no_fleet_that_meets_the_target_costs_less_than_the_least() -> None:
    """Every fleet scored that meets the target (the policy, the oracle, each baseline at
    its swept setting's best) costs at least the bound, less 3 s of its largest count;
    and where the traffic is flat, a constant load of exactly 6 nodes at a 1 % target,
    the bound equals 0.99 x the oracle."""
    trace = nasa_cut(2.5)
    baselines = ("oracle", "static", "hpa", "seasonal-naive")
    settings = untuned(float(trace.mean()) / 20, timedelta(days=1), *baselines)
    report = run_backtest(Path("nasa.csv"), settings, trace=trace)
    least = least_node_hours(report)
    scored = trace.iloc[report.replay.score_start :].sum() * 60
    assert least == pytest.approx(0.99 * scored / (settings.per_node_rps * 3600))
    meeting: list[PolicyResult] = [r for r in report.results if r.meets_target]
    assert {r.name for r in meeting} >= {"policy", "oracle", "static"}
    assert all(r.score.node_hours >= least - 3 * r.desired.max() / 3600 for r in meeting)
    assert any(
        "no fleet that meets the target costs under" in line for line in summary_lines(report)
    )

    flat = step_trace(600, jump_at=600, low=6.0, high=6.0)
    flat_report = run_backtest(
        Path("flat.csv"), untuned(1.0, timedelta(minutes=120), "oracle"), trace=flat
    )
    oracle = flat_report.result("oracle").score.node_hours
    assert least_node_hours(flat_report) == pytest.approx(0.99 * oracle)


def test_the_queue_left_at_the_end_is_the_least_s_only_slack() -> None:
    """The simulator never serves the queue the span ends with, and its on-time part is
    at most L seconds of the capacity it joined: a fleet one node short for the last
    190 minutes (a queue that grows on time up to L x c), then none for 4 (the budget),
    meets the target under the least at a 600 s latency target, never under the least
    less L seconds of its largest count."""
    flat = step_trace(600, jump_at=600, low=20.0, high=20.0)  # 20 nodes of 1 req/s
    settings = untuned(1.0, timedelta(minutes=100), "oracle")
    settings = dataclasses.replace(settings, latency_target_s=600.0)
    report = run_backtest(Path("flat.csv"), settings, trace=flat)
    replay = report.replay
    counts = np.full(len(replay.rps) - replay.sim_start, 20, dtype=np.int64)
    counts[-194:-4], counts[-4:] = 19, 0
    fleet = replay.score(counts, ready=ready_nodes(counts, replay.boot_minutes, 20))[0]
    least = least_node_hours(report)
    assert fleet.meets(0.01) and fleet.node_hours < least
    assert fleet.node_hours >= least - 600 * 20 / 3600


def test_minutes_without_samples_are_not_scored_as_no_load_unsaid() -> None:
    """Minutes with no sample were scored as no requests without a word: a trace of NaN
    (an export whose query matched nothing) "met the target" on 0 node-hours. A scored
    span of no sample at all is refused; a part missing is said under the table."""
    empty = step_trace(180, jump_at=180, low=np.nan, high=np.nan)
    settings = untuned(1.0, timedelta(minutes=90), "static")
    with pytest.raises(ValueError, match="no sample from 2025-03-03T01:30Z on"):
        run_backtest(Path("nan.csv"), settings, trace=empty)
    holes = step_trace(180, jump_at=180, low=2.0, high=2.0)
    holes.iloc[120:150] = np.nan
    report = run_backtest(Path("holes.csv"), settings, trace=holes)
    said = [line for line in summary_lines(report) if "no sample" in line]
    assert said == [
        "30 of 90 scored minutes have no sample in the trace: counted as no requests in "
        "every figure above"
    ]
    whole = run_backtest(Path("whole.csv"), settings, trace=step_trace(180, 180, 2.0, 2.0))
    assert not any("no sample" in line for line in summary_lines(whole))
