"""bench/trace_variants.py: each stress variant is the change it says, and nothing else."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from autoscaler.backtest.runner import load_trace

ROOT = Path(__file__).resolve().parents[2]
DAY = 1440


def _bench_module(name: str) -> ModuleType:
    """A bench script's module, loaded from its file as `python bench/...` would."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


variants = _bench_module("trace_variants")


@pytest.fixture
def counts() -> np.ndarray:
    """Ten days of distinct positive counts: any moved or scaled minute shows."""
    return np.arange(1, 10 * DAY + 1, dtype=float)


def test_step_up_doubles_the_second_half_only(counts: np.ndarray) -> None:
    out = variants.step_up(counts)
    half = len(counts) // 2
    assert np.array_equal(out[:half], counts[:half])
    assert np.array_equal(out[half:], 2 * counts[half:])


def test_ramp_grows_from_one_to_three_times(counts: np.ndarray) -> None:
    factor = variants.ramp(counts) / counts
    assert factor[0] == pytest.approx(1.0) and factor[-1] == pytest.approx(3.0)
    assert np.all(np.diff(factor) > 0)


def test_phase_shift_moves_the_second_half_seven_hours_and_keeps_the_length(
    counts: np.ndarray,
) -> None:
    out = variants.phase_shift(counts)
    half, shift = len(counts) // 2, 7 * 60
    assert len(out) == len(counts)
    assert np.array_equal(out[:half], counts[:half])
    assert np.array_equal(out[half : len(counts) - shift], counts[half + shift :])


def test_spike_day_is_one_whole_day_at_four_times(counts: np.ndarray) -> None:
    factor = variants.spike_day(counts) / counts
    spiked = np.flatnonzero(factor != 1.0)
    assert len(spiked) == DAY and spiked[0] % DAY == 0
    assert np.all(factor[spiked] == 4.0)
    assert len(counts) // 2 < spiked[0] < len(counts) - DAY


def test_campaigns_are_two_hours_a_day_after_the_first_week(counts: np.ndarray) -> None:
    factor = variants.campaigns(counts) / counts
    assert np.all(factor[: 7 * DAY] == 1.0)
    for day in range(7, 10):
        raised = np.flatnonzero(factor[day * DAY : (day + 1) * DAY] != 1.0)
        assert len(raised) == 120 and raised[-1] - raised[0] == 119
        assert np.all(factor[day * DAY + raised] == 3.0)
    assert np.array_equal(variants.campaigns(counts), variants.campaigns(counts))  # seeded


def test_write_variants_writes_each_as_a_trace_the_backtest_reads(tmp_path: Path) -> None:
    index = pd.date_range("2025-01-06", periods=9 * DAY, freq="min", tz="UTC")
    source = tmp_path / "source.csv"
    pd.DataFrame(
        {"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "requests": np.full(len(index), 60)}
    ).to_csv(source, index=False)
    written = variants.write_variants(source, "flat", tmp_path / "out")
    assert [p.name for p in written] == [f"flat_{v}.csv" for v in variants.VARIANTS]
    step = load_trace(tmp_path / "out" / "flat_step2x.csv")  # req/s
    assert step.index.equals(index)
    assert step.iloc[0] == pytest.approx(1.0) and step.iloc[-1] == pytest.approx(2.0)


def test_a_trace_played_twice_goes_on_a_minute_after_its_end(tmp_path: Path) -> None:
    """The same counts again, from the minute after the last: no gap, no minute twice,
    and a trace the backtest reads (one regular minute grid over both spans)."""
    index = pd.date_range("2025-01-06", periods=2 * DAY + 7, freq="min", tz="UTC")
    source = tmp_path / "source.csv"
    counts = np.arange(len(index)) % 97
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "requests": counts}).to_csv(
        source, index=False
    )
    path = variants.write_played_twice(source, "wave", tmp_path / "out")
    assert path.name == "wave_twice.csv"
    twice = load_trace(path)  # req/s
    assert twice.index.equals(pd.date_range(index[0], periods=2 * len(index), freq="min", tz="UTC"))
    np.testing.assert_allclose(twice.to_numpy() * 60, np.concatenate([counts, counts]))
