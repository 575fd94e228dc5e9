"""`autoscaler backtest`: replay a trace through the daemon's own forecast/size/decide code.

Each tick at the start of minute j sees the trace up to minute j-1 (a bounded
window), sizes the fleet with sizing.size_fleet, decides with policy.decide and drives
the simulated backend (backends/simulated.py) on a SimulatedClock: no second copy of the
policy. Cost and lateness per minute come from autoscaler.backtest.queue, the same
for the project's policy and every baseline (autoscaler.backtest.baselines).

Forecasts depend on the demand history only, never on the fleet, so the policy's
knobs (target utilization, scale-down stabilization, floor) are tuned by replaying
the recorded forecasts of one run through the same size/decide/fleet code.

Where the machine has more than one CPU, the baselines run on a forked worker while
the policy's recording run goes on here, and the tuning's replays on forked workers
after it (autoscaler.backtest.tuning); the report is the same as with one CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from autoscaler.backtest.baselines import BASELINES, PolicyResult, Replay
from autoscaler.backtest.engine import (
    MINUTE,
    BacktestSettings,
    PolicyRun,
    Progress,
    TickRecord,
    policy_pool,
    replay_pool,
)
from autoscaler.backtest.recorded import PlaybackPredictor, RecordingPredictor
from autoscaler.backtest.tuning import forked_executor, processes_for, run_policy
from autoscaler.config.schema import Capacity, Pool
from autoscaler.policy import nodes_for
from autoscaler.replay import as_known, read_queue_depth, read_trace_rows
from common.durations import format_span

MOST_NODES = 10**12
"""The largest fleet a trace's peak may need: node counts (a baseline's at 0.3 utilization
and more headroom, too) and their sums over a year of minutes stay within 64-bit integers."""

__all__ = [
    "BacktestReport",
    "BacktestSettings",
    "PlaybackPredictor",
    "PolicyRun",
    "RecordingPredictor",
    "TickRecord",
    "frame_replay",
    "load_trace",
    "load_trace_rows",
    "policy_pool",
    "replay_pool",
    "run_backtest",
    "run_policy",
]


def load_trace(path: Path) -> pd.Series:
    """The trace in req/s on a regular minute grid; minutes missing from the file are NaN."""
    return load_trace_rows(path)[0]


def load_trace_rows(path: Path) -> tuple[pd.Series, int]:
    """load_trace's series and the minutes each row of the file covers (frame_replay's
    `row_minutes`)."""
    series, row_minutes = read_trace_rows(path)
    series = series[~series.index.duplicated(keep="last")].sort_index()
    if len(series) < 2:
        raise ValueError(f"{path}: a trace needs at least two minutes")
    grid = pd.date_range(series.index[0], series.index[-1], freq="1min")
    return series.reindex(grid), row_minutes


def load_queue_depth(path: Path, grid: pd.DatetimeIndex) -> pd.Series | None:
    """The trace's queue_depth column on the demand's minute grid (missing minutes NaN)."""
    queue = read_queue_depth(path)
    if queue is None:
        return None
    return queue[~queue.index.duplicated(keep="last")].reindex(grid)


def frame_replay(
    trace: pd.Series,
    settings: BacktestSettings,
    queue: pd.Series | None = None,
    row_minutes: int = 1,
) -> Replay:
    """Where the simulation starts and scoring starts; the fleet every policy starts with.
    `queue`: messages waiting per minute on the trace's grid, replayed as a signal;
    `row_minutes`: the minutes each row of the trace's file covers (load_trace_rows)."""
    minutes = len(trace)
    score_start = max(1, int(settings.warmup / MINUTE))
    if score_start >= minutes:
        raise ValueError(
            f"--warmup {format_span(settings.warmup)} (history before scoring starts; 7d "
            f"unless given) leaves nothing to score in a trace of {format_span(minutes * MINUTE)}"
            f" ({minutes:,} minutes): give a --warmup shorter than the trace"
        )
    sim_start = max(1, score_start - int(settings.burn_in / MINUTE))
    rps = trace.to_numpy(dtype=float)
    if not np.isfinite(rps[score_start:]).any():  # else scored as no load, every fleet "meets"
        raise ValueError(
            f"the trace has no sample from {trace.index[score_start]:%Y-%m-%dT%H:%M}Z on "
            "(every scored minute is missing or not a number): nothing to score"
        )
    _check_countable(trace, settings.per_node_rps)
    known = as_known(trace, row_minutes).to_numpy(dtype=float)
    before = known[max(0, sim_start - 60) : sim_start]
    peak = float(np.nanmax(before)) if np.isfinite(before).any() else 0.0
    return Replay(
        rps=rps,
        known=known,
        per_node_rps=settings.per_node_rps,
        boot_minutes=int(settings.boot_delay / MINUTE),
        tick_minutes=int(settings.tick / MINUTE),
        latency_target_s=settings.latency_target_s,
        service_target=settings.service_target,
        sim_start=sim_start,
        score_start=score_start,
        initial_nodes=nodes_for(peak, settings.per_node_rps, 1.0),
        max_staleness=settings.max_staleness,
        queue=None if queue is None else queue.reindex(trace.index).to_numpy(dtype=float),
    )


def _check_countable(trace: pd.Series, per_node_rps: float) -> None:
    """Refuse a trace whose peak needs more than MOST_NODES nodes (a count past 64 bits
    wraps negative: an oracle at -1.5e17 node-hours)."""
    if trace.isna().all():
        return
    at = trace.idxmax()
    peak = float(trace[at])
    if peak / per_node_rps > MOST_NODES:
        raise ValueError(
            f"the trace's peak, {peak:.3g} req/s at {at:%Y-%m-%dT%H:%M}Z, needs "
            f"{peak / per_node_rps:.3g} nodes of {per_node_rps:g} req/s: more than the "
            f"{MOST_NODES:,} the backtest counts"
        )


@dataclass(frozen=True)
class BacktestReport:
    trace: str
    settings: BacktestSettings
    start: datetime
    scored_from: datetime
    end: datetime
    results: list[PolicyResult]
    policy_ticks: list[TickRecord]
    elapsed_s: float
    replay: Replay = field(repr=False)
    times: pd.DatetimeIndex = field(repr=False)

    def result(self, name: str) -> PolicyResult:
        return next(r for r in self.results if r.name == name)

    @property
    def oracle_node_hours(self) -> float | None:
        found = [r for r in self.results if r.name == "oracle"]
        return found[0].score.node_hours if found else None

    def best_baseline(self) -> PolicyResult | None:
        """The cheapest real baseline (not the oracle) that meets the service target."""
        meeting = [r for r in self.results if r.name not in ("policy", "oracle") and r.meets_target]
        return min(meeting, key=lambda r: r.score.node_hours) if meeting else None


def run_backtest(
    trace_path: Path,
    settings: BacktestSettings,
    *,
    pool: Pool | None = None,
    on_progress: Progress | None = None,
    trace: pd.Series | None = None,
    queue: pd.Series | None = None,
    row_minutes: int = 1,
) -> BacktestReport:
    """The project's policy and every baseline on one trace; `pool` (from a config) runs
    as configured, without tuning. A `queue_depth` column in the trace file (or `queue`
    with `trace`) is replayed as the policy's queue-depth signal; `row_minutes`: the
    minutes each row of a given `trace` covers (load_trace_rows)."""
    began = time.perf_counter()
    if trace is None:
        series, row_minutes = load_trace_rows(trace_path)
        queue = load_queue_depth(trace_path, series.index)
    else:
        series = trace
    replay = frame_replay(series, settings, queue, row_minutes)
    if pool is not None:
        pool = pool.model_copy(update={"capacity": Capacity(per_node_rps=settings.per_node_rps)})
        replay = replace(replay, boot_minutes=int(pool.boot_time / MINUTE))
    # The baselines need no forecasts: a worker runs them beside the policy's recording run.
    parallel = settings.baselines and processes_for(settings) > 1
    beside = forked_executor(1) if parallel else None
    if beside is None:
        policy, run = run_policy(series, replay, settings, pool=pool, on_progress=on_progress)
        results = [policy, *_baselines(replay, settings.baselines)]
    else:
        with beside:
            baselines = beside.submit(_baselines, replay, settings.baselines)
            policy, run = run_policy(series, replay, settings, pool=pool, on_progress=on_progress)
            results = [policy, *baselines.result()]
    times = series.index
    return BacktestReport(
        trace=str(trace_path),
        settings=settings,
        start=times[replay.sim_start].to_pydatetime(),
        scored_from=times[replay.score_start].to_pydatetime(),
        end=(times[-1] + pd.Timedelta(minutes=1)).to_pydatetime(),
        results=results,
        policy_ticks=run.ticks,
        elapsed_s=time.perf_counter() - began,
        replay=replay,
        times=times,
    )


def _baselines(replay: Replay, names: tuple[str, ...]) -> list[PolicyResult]:
    return [BASELINES[name](replay) for name in names]
