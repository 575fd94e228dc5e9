"""The backtest replays a trace's queue_depth column as the policy's queue-depth signal,
through the daemon's own signal rule and decide code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from autoscaler.backtest.report import backtest_table, summary_lines
from autoscaler.backtest.runner import (
    BacktestSettings,
    frame_replay,
    policy_pool,
    replay_pool,
    run_backtest,
)
from tests.autoscaler.backtest.test_runner import LastValue, step_trace

SETTINGS = BacktestSettings(
    per_node_rps=1.0,
    warmup=timedelta(minutes=90),
    boot_delay=timedelta(minutes=7),
    latency_target_s=60.0,  # the backlog is drained within a minute
    tune=False,
    baselines=(),
)


def flat_with_backlog(value: float = 600.0) -> tuple[pd.Series, pd.Series]:
    trace = step_trace(180, jump_at=180, low=2.0, high=2.0)  # 2 req/s throughout
    queue = pd.Series(0.0, index=trace.index)
    queue.iloc[120:130] = value  # ten minutes with 600 messages waiting
    return trace, queue


def test_a_backlog_in_the_trace_adds_the_nodes_that_drain_it() -> None:
    trace, queue = flat_with_backlog()
    pool = policy_pool(SETTINGS, utilization=1.0, stabilization=timedelta(minutes=10))
    with_queue = replay_pool(pool, LastValue(), trace, frame_replay(trace, SETTINGS, queue))
    without = replay_pool(pool, LastValue(), trace, frame_replay(trace, SETTINGS))
    start = frame_replay(trace, SETTINGS).sim_start
    at = np.arange(start, 180)
    # The tick at minute 121 sees minute 120's 600 messages: 600 / 60 s at 1/s a node is
    # 10 nodes, on top of 2 for arrivals.
    assert with_queue.desired[at == 120][0] == 2 and with_queue.desired[at == 121][0] == 12
    assert (without.desired == 2).all()
    # The queue is empty from minute 130: held through the 10-minute stabilization window.
    assert with_queue.desired[at == 139][0] == 12 and with_queue.desired[at == 141][0] == 2


def test_a_minute_without_a_queue_sample_is_no_data_not_an_empty_queue() -> None:
    trace, queue = flat_with_backlog()
    queue.iloc[130:] = np.nan  # the exporter stopped while the backlog was there
    pool = policy_pool(SETTINGS, utilization=1.0, stabilization=timedelta(minutes=10))
    run = replay_pool(pool, LastValue(), trace, frame_replay(trace, SETTINGS, queue))
    at = np.arange(frame_replay(trace, SETTINGS).sim_start, 180)
    assert (run.desired[(at >= 121)] == 12).all()  # held (then the fleet), never shrunk


def test_a_trace_file_with_a_queue_depth_column_is_replayed(tmp_path: Path) -> None:
    trace, queue = flat_with_backlog()
    path = tmp_path / "trace.csv"
    frame = pd.DataFrame(
        {
            "timestamp": trace.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requests": trace * 60,
            "queue_depth": queue.to_numpy(),
        }
    )
    frame.to_csv(path, index=False)
    settings = BacktestSettings(**{**SETTINGS.__dict__, "predictor": "linear"})
    report = run_backtest(path, settings)
    assert report.replay.queue is not None
    # the policy plans for 80 % utilization: 2 req/s need 3 nodes, the backlog 10 more
    assert max(t.desired for t in report.policy_ticks) == 13
    assert "replays the trace's queue_depth" in str(backtest_table(report).title)
    frame.drop(columns="queue_depth").to_csv(path, index=False)
    plain = run_backtest(path, settings)
    assert plain.replay.queue is None
    assert max(t.desired for t in plain.policy_ticks) == 3


def test_scored_minutes_without_a_queue_sample_are_said_under_the_table() -> None:
    """The title said the policy replays the trace's queue_depth, the figures came from a
    signal with no reading (scale-down blocked), and nothing said so: an empty column read
    as a policy that never shrinks its fleet."""
    trace, queue = flat_with_backlog()
    queue.iloc[150:] = np.nan
    settings = BacktestSettings(**{**SETTINGS.__dict__, "predictor": "linear"})
    report = run_backtest(Path("gaps.csv"), settings, trace=trace, queue=queue)
    said = [line for line in summary_lines(report) if "queue_depth" in line]
    assert said == [
        "30 of 90 scored minutes have no queue_depth sample in the trace: the policy's queue "
        "signal had no reading there (past its hold, no scale-down, as for missing demand)"
    ]
    whole = run_backtest(Path("whole.csv"), settings, trace=trace, queue=flat_with_backlog()[1])
    assert not any("queue_depth" in line for line in summary_lines(whole))
