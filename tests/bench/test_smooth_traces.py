"""bench/smooth_traces.py: smooth, clock-driven traffic, the same at every run, read as a trace."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from autoscaler.backtest.runner import load_trace

ROOT = Path(__file__).resolve().parents[2]


def _bench_module(name: str) -> ModuleType:
    """A bench script's module, loaded from its file as `python bench/...` would."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


smooth = _bench_module("smooth_traces")


def test_the_traces_are_written_alike_at_every_run_and_read_back_whole(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = smooth.write_smooth_traces(tmp_path / "a")
    again = smooth.write_smooth_traces(tmp_path / "b")
    assert [p.name for p in first] == [f"{name}.csv" for name in smooth.TRACES]
    for one, other in zip(first, again, strict=True):
        assert one.read_bytes() == other.read_bytes()
        trace = load_trace(one)
        days = smooth.TRACES[one.stem][0]
        assert len(trace) == days * 1440 and not trace.isna().any()


@pytest.mark.parametrize("name", sorted(smooth.TRACES))
def test_each_trace_follows_its_clock_with_little_minute_noise(name: str) -> None:
    """Smooth: the hour of the day explains most of the traffic (the same hour's mean
    over the weekdays against each minute), and minute-to-minute changes are small next to
    the day's swing; weekends are quieter."""
    days, scale, shape = smooth.TRACES[name]
    counts = smooth.smooth_counts(days, scale, shape)
    weekday = counts[counts.index.day_of_week < 5]
    by_hour = weekday.groupby(weekday.index.hour).transform("mean")
    explained = 1.0 - float(np.var(weekday - by_hour) / np.var(weekday))
    assert explained > 0.8
    minute_change = float(np.median(np.abs(np.diff(counts.to_numpy()))))
    hourly = weekday.groupby(weekday.index.hour).mean()
    assert minute_change < 0.1 * float(hourly.max() - hourly.min())
    weekend = counts[counts.index.day_of_week >= 5]
    assert weekend.mean() < 0.9 * weekday.mean()
