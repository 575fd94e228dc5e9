"""The backtest's report: its summary line on traces nobody tuned for."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from autoscaler.backtest.report import summary_line
from autoscaler.backtest.runner import BacktestSettings, run_backtest
from tests.autoscaler.backtest.test_runner import step_trace


def test_a_trace_of_no_requests_gets_a_summary_not_a_traceback() -> None:
    """Every baseline that meets the target costs 0 node-hours: no ratio to print."""
    trace = step_trace(180, jump_at=180, low=0.0, high=0.0)
    settings = BacktestSettings(
        per_node_rps=1.0,
        warmup=timedelta(minutes=90),
        predictor="linear",
        tune=False,
        baselines=("static",),
        jobs=1,
    )
    report = run_backtest(Path("zeros.csv"), settings, trace=trace)
    line = summary_line(report)
    assert line.startswith("policy meets the target; 0 node-hours")
    assert "the best baseline that meets it (static) needs none" in line
