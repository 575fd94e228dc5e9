"""bench/batch_traces.py: a cycle with a batch at a set time, the same at every run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoscaler.backtest.runner import load_trace
from tests.bench.test_smooth_traces import _bench_module  # loads smooth_traces first

batches = _bench_module("batch_traces")


def test_the_batch_traces_are_the_same_at_every_run_and_read_as_traces(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = batches.write_batch_traces(tmp_path / "a")
    again = batches.write_batch_traces(tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    for path in first:
        demand = load_trace(path)
        assert len(demand) == 28 * 1440 and bool(np.all(np.isfinite(demand.to_numpy())))


def test_the_monday_batch_is_ten_times_the_cycle_on_mondays_six_to_eight_only() -> None:
    """The batch is where it says (the class the forecaster's point choice was made for);
    the cycle under it is the plain trace's, minute for minute in expectation."""
    monday = batches.batch_counts(batches.monday_batch)
    plain = batches.batch_counts(batches.no_batch)
    hour = monday.index.hour
    batch = (monday.index.day_of_week == 0) & (hour >= 6) & (hour < 8)
    ratio = monday[batch].sum() / plain[batch].sum()
    assert 9.5 < ratio < 10.5
    assert abs(monday[~batch].sum() / plain[~batch].sum() - 1.0) < 0.01
