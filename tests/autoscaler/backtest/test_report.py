"""The backtest's report: its summary line on traces nobody tuned for."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from autoscaler.backtest.baselines import PolicyResult
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
    each swept setting's best, and constant fleets around the smallest that meets it)
    costs at least the bound; and the bound is tight where the traffic is flat: a
    constant load of exactly 6 nodes at a 1 % target is 0.99 x 6 nodes."""
    trace = nasa_cut(2.5)
    baselines = ("oracle", "static", "hpa", "seasonal-naive")
    settings = untuned(float(trace.mean()) / 20, timedelta(days=1), *baselines)
    report = run_backtest(Path("nasa.csv"), settings, trace=trace)
    least = least_node_hours(report)
    scored = trace.iloc[report.replay.score_start :].sum() * 60
    assert least == pytest.approx(0.99 * scored / (settings.per_node_rps * 3600))
    meeting: list[PolicyResult] = [r for r in report.results if r.meets_target]
    assert {r.name for r in meeting} >= {"policy", "oracle", "static"}
    assert all(r.score.node_hours >= least for r in meeting)
    static = report.result("static").knobs["nodes"]
    for nodes in (
        static - 1,
        static,
    ):  # the largest constant fleet that misses, and the least that meets
        counts = np.full(len(report.replay.rps) - report.replay.sim_start, nodes)
        fleet = report.replay.score(counts, ready=counts)[0]
        assert not fleet.meets(0.01) or fleet.node_hours >= least
    assert any(
        "no fleet that meets the target costs under" in line for line in summary_lines(report)
    )

    flat = step_trace(600, jump_at=600, low=6.0, high=6.0)
    flat_report = run_backtest(
        Path("flat.csv"), untuned(1.0, timedelta(minutes=120), "oracle"), trace=flat
    )
    oracle = flat_report.result("oracle").score.node_hours
    assert least_node_hours(flat_report) == pytest.approx(0.99 * oracle)
