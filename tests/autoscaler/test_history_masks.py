"""Windows the forecaster must not learn from: the history there is masked before the fit,
and the forecast and the decision say so."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from autoscaler.calibration import LoopCalibrated
from autoscaler.config.time_windows import HistoryMask
from autoscaler.decision_log import DecisionLog
from autoscaler.history_masks import mask_history
from autoscaler.kept_ticks import DEMAND
from autoscaler.overrides import OverridesFile
from autoscaler.plan import plan
from autoscaler.policy import Memory
from autoscaler.reason_rules import rule_of
from autoscaler.replay_source import TraceReplaySource
from autoscaler.sizing import size_fleet
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from predictors import make_predictor
from tests.autoscaler.test_tick import make_pool
from tests.support import RecordingNotifier

NOW = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)


def history(days: int = 3) -> pd.Series:
    """Daily sine around 10 req/s with a launch spike to 60 req/s from 3 h to 1 h ago."""
    index = pd.date_range(end=NOW, periods=days * 1440, freq="1min", tz="UTC")
    minutes = np.arange(len(index))
    values = 10 + 3 * np.sin(minutes / 1440 * 2 * np.pi)
    spike = (index >= NOW - timedelta(hours=3)) & (index < NOW - timedelta(hours=1))
    return pd.Series(np.where(spike, 60.0, values), index=index)


SPIKE = {
    "name": "launch spike",
    "start": "2026-11-04T14:30:00+05:30",
    "end": "2026-11-04T11:00:00Z",
}


def test_samples_inside_a_mask_become_missing_and_the_end_is_kept() -> None:
    series = history()
    masked, notes = mask_history(series, [HistoryMask.model_validate(SPIKE)])
    inside = (series.index >= NOW - timedelta(hours=3)) & (series.index < NOW - timedelta(hours=1))
    assert masked[inside].isna().all() and int(inside.sum()) == 120
    assert masked[~inside].equals(series[~inside])
    assert masked.index[-1] == NOW
    assert notes == (
        "history masked: 'launch spike' 2026-11-04 09:00 UTC to 2026-11-04 11:00 UTC "
        "(120 samples not learned from)",
    )
    outside = HistoryMask(name="old", start=NOW - timedelta(days=30), end=NOW - timedelta(days=29))
    assert mask_history(series, [outside]) == (series, ())


def test_the_forecast_does_not_learn_the_masked_spike_and_the_decision_says_so() -> None:
    series = history()
    plain = make_pool(predictor={"kind": "seasonal"})
    masked = make_pool(predictor={"kind": "seasonal"}, demand={"query": "q", "exclude": [SPIKE]})
    learned = size_fleet(plain, make_predictor("seasonal", {}), series, 1.0)
    skipped = size_fleet(masked, make_predictor("seasonal", {}), series, 1.0)
    assert learned.nodes is not None and skipped.nodes is not None
    assert skipped.nodes < learned.nodes
    assert skipped.nodes <= 20  # the daily shape (10-13 req/s) at 0.8 utilization, banded
    assert skipped.demand_nodes == learned.demand_nodes  # demand now is never masked
    decision, _ = plan(masked, skipped, NOW, 2, None, Memory())
    notes = [r for r in decision.reasons if r.startswith("history masked")]
    assert notes and "'launch spike'" in notes[0]
    assert rule_of(notes[0]) == "history_masked"


def test_history_all_masked_holds_and_says_why() -> None:
    series = history(days=1)
    everything = {"name": "outage", "start": "2026-11-01T00:00:00Z", "end": "2026-11-05T00:00:00Z"}
    pool = make_pool(demand={"query": "q", "exclude": [everything]})
    sizing = size_fleet(pool, make_predictor("linear", {}), series, 1.0)
    assert sizing.nodes is None
    assert "every sample of the history window is masked" in (sizing.missing_reason or "")
    decision, _ = plan(pool, sizing, NOW, 5, None, Memory())
    assert decision.desired == 5


@pytest.mark.parametrize(
    ("mask", "needle"),
    [
        ({"name": "x", "start": "2026-11-04T09:00:00", "end": "2026-11-04T10:00:00Z"}, "offset"),
        ({"name": "x", "start": "2026-11-04T10:00:00Z", "end": "2026-11-04T09:00:00Z"}, "after"),
    ],
)
def test_a_mask_needs_an_offset_and_an_order(mask: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        HistoryMask.model_validate(mask)


SPAN_START = NOW - timedelta(minutes=30)
"""A launch spike to 11.3 req/s, excluded from 30 minutes ago for 3.5 h: over now."""


@pytest.mark.parametrize("policy", ["reactive", "auto"])
def test_a_pool_following_demand_now_scales_for_it_inside_an_exclude_span(
    tmp_path: Path, policy: str
) -> None:
    """The daemon's tick on a trace (the replay source `run` uses) whose exclude span
    covers now: the loop kept its masked history, so the reactive member's band was NaN
    and sizing said 'forecast is not a finite number', holding 2 nodes at 11.3 req/s for
    the whole span. The band now follows the demand seen (15 nodes: 11.3 / 0.8), while
    the masked minutes stay out of what the loop keeps to calibrate its margin. `auto`
    follows the reactive member as a restart left it (a resumed calibration)."""
    index = pd.date_range(NOW - timedelta(days=2), NOW + timedelta(hours=4), freq="1min")
    calm = 5 + 2 * np.sin(np.arange(len(index)) / 1440 * 2 * np.pi)
    trace = pd.Series(np.where(index >= SPAN_START, 11.3, calm), index=index)
    clock = SimulatedClock(NOW)
    spike = {"name": "launch spike", "start": SPAN_START.isoformat(), "end": "2026-11-04T15:00Z"}
    pool = make_pool(
        predictor={"kind": "seasonal", "margin": "loop", "policy": policy},
        demand={"query": "q", "window": "2d", "exclude": [spike]},
    )
    fleet = SimulatedFleet(clock, initial_nodes=2, boot_delay=timedelta(minutes=10))
    ticker = PoolTicker(
        pool,
        fleet,
        1.0,
        TraceReplaySource(trace, clock),
        timedelta(minutes=5),
        RecordingNotifier(),
        DecisionLog(tmp_path / "decisions.jsonl"),
        False,
    )
    loop = ticker.predictor
    assert isinstance(loop, LoopCalibrated)
    if policy == "auto":
        saved = {"margin": 1.0, "member": "reactive", "aim": 1.0, "at": NOW.isoformat()}
        assert loop.resume(saved, NOW)
    state, overrides = PoolState(), OverridesFile()
    for _ in range(3):
        result = ticker.tick(clock.now(), state, overrides)
        assert result.decision is not None and not result.errors, result.errors
        assert result.decision.desired == 15, result.decision.reasons
        clock.advance(timedelta(minutes=1))
    assert fleet.read().desired == 15
    assert math.isnan(loop._ticks.newest(DEMAND))  # the masked minute is kept as missing
