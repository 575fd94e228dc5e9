"""Tuning the project's policy on its own knobs, the same sweep for every trace.

Forecasts depend on the demand history only, never on the fleet, so the knobs that
act after the forecast (target utilization, scale-down stabilization, node floor)
are swept by replaying the recorded forecasts of one full run through the same
size_fleet → decide → simulated fleet code. The predictor's own service target (its
upper quantile) can be swept too, one full run per value.

The replays of the sweep are independent, so they run on forked worker processes
(the recorded forecasts shared copy-on-write); the setting chosen, and its run, are
the ones a serial sweep chooses: every choice is made in the serial order.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from autoscaler.backtest.baselines import UTILIZATIONS, PolicyResult, Replay
from autoscaler.backtest.engine import (
    MINUTE,
    BacktestSettings,
    PolicyRun,
    Progress,
    policy_pool,
    replay_pool,
    tick_records,
)
from autoscaler.backtest.queue import Score
from autoscaler.backtest.recorded import PlaybackPredictor, RecordingPredictor
from autoscaler.calibration import pool_predictor
from autoscaler.config.schema import Pool
from autoscaler.plan import limits_of
from autoscaler.policy import nodes_for
from predictors import Forecast

POLICY_UTILIZATIONS = UTILIZATIONS
"""The baselines' grid (a headroom h of theirs is a utilization 1/h here)."""
POLICY_STABILIZATIONS = (timedelta(0), timedelta(minutes=10), timedelta(minutes=30))
"""None at all is a fair choice in a backtest: the horizon-peak floor (policy.decide) already
keeps what removed nodes could not be back in time for."""
POLICY_FLOORS = (0, 1, 2, 4, 8)
"""Shorter than the baselines' floor grid, for speed: on the shared traces the full grid
(0 … 64) never picked a floor above 8 for the policy (bench/backtest_targets.py)."""

Chain = tuple[timedelta, int]
"""One bisection over the utilization grid: a scale-down stabilization and a node floor."""
Found = tuple[dict[str, Any], Score, PolicyRun]
Point = tuple[dict[str, Any], Score, np.ndarray, np.ndarray]
"""One replayed setting: knobs, score, desired and ready per minute (a run, less its ticks)."""


def parallel_workers() -> int:
    """Processes for the backtest's independent work: the CPUs this process may use, or 1
    where processes cannot be forked (workers share the recorded forecasts by forking)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    counted = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if counted is not None:
        return max(1, counted() or 1)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def processes_for(settings: BacktestSettings) -> int:
    """The processes a backtest may use: its `jobs`, else every CPU (parallel_workers)."""
    return settings.jobs or parallel_workers()


def forked_executor(workers: int, **options: Any) -> ProcessPoolExecutor | None:
    """Workers forked from this process; None where this system cannot run them (no
    working semaphores, say), so the caller does the work itself."""
    try:
        context = multiprocessing.get_context("fork")
        return ProcessPoolExecutor(workers, mp_context=context, **options)
    except (OSError, ImportError, NotImplementedError, ValueError):
        return None


def run_policy(
    trace: pd.Series,
    replay: Replay,
    settings: BacktestSettings,
    *,
    pool: Pool | None = None,
    on_progress: Progress | None = None,
    workers: int | None = None,
) -> tuple[PolicyResult, PolicyRun]:
    """The project's policy: a full run with the real predictor (one per predictor target
    tried), then (with tuning) the knob sweep replayed on its recorded forecasts; the
    cheapest setting that meets the target. `workers`: processes for the sweep's replays
    (default processes_for(settings); 1: all in this process)."""
    variants: tuple[float | None, ...] = settings.predictor_targets or (None,)
    best: Found | None = None
    tried = 0
    kind = pool.predictor.kind if pool else settings.predictor_kind
    for number, target in enumerate(variants):
        params = {} if target is None else {"service_target": target}
        base = pool or policy_pool(settings, params=params)
        recorder = RecordingPredictor(pool_predictor(base, replay.per_node_rps, limits_of(base)))
        first = replay_pool(
            base,
            recorder,
            trace,
            replay,
            backfill=settings.backfill,
            on_progress=_part(on_progress, number, len(variants)),
        )
        extra = {} if target is None else {"predictor_target": target}
        found = ({**_knobs_of(base), **extra}, replay.score(first.desired, first.ready)[0], first)
        tried += 1
        if best is None or _cheaper(found[1], best[1], settings.service_target):
            best = found
        if settings.tune and pool is None:
            shared = _Shared(settings, trace, replay, recorder.name, recorder.records)
            processes = workers or processes_for(settings)
            best, count = _sweep(shared, best, extra, processes)
            tried += count
    assert best is not None
    knobs, score, run = best
    if not run.ticks:  # a sweep's replay keeps only its arrays (they cross processes)
        run.ticks = tick_records(trace.index.to_pydatetime(), replay, run.desired, run.ready)
    result = PolicyResult(
        "policy",
        f"this project: {kind} forecast → size_fleet → decide",
        knobs,
        score,
        score.meets(settings.service_target),
        run.desired,
        run.ready,
        tried,
    )
    return result, run


@dataclass(frozen=True)
class _Shared:
    """What every replay of one sweep reads; a worker inherits it when forked."""

    settings: BacktestSettings
    trace: pd.Series
    replay: Replay
    name: str
    records: Sequence[Forecast | Exception]


def _sweep(shared: _Shared, best: Found, extra: dict[str, Any], workers: int) -> tuple[Found, int]:
    """Every stabilization and floor, one bisection each, folded into `best` in the serial
    order. A floor that cannot bind replays the same as none (skipped); a floor that alone
    costs more than the best found cannot be cheaper (skipped: before the replays when the
    first run already shows it, at the fold when a chain before it does)."""
    target = shared.settings.service_target
    least = _least_forecast_nodes(shared.records, shared.replay)
    chains = [
        (stabilization, floor)
        for stabilization in POLICY_STABILIZATIONS
        for floor in POLICY_FLOORS
        if not floor or least is None or least < floor
        if not _floor_costs_more(floor, shared.replay, best[1], target)
    ]
    tried = 0
    bisected = _bisect_all(shared, chains, workers)
    for (_, floor), (point, count) in zip(chains, bisected, strict=True):
        if _floor_costs_more(floor, shared.replay, best[1], target):
            continue
        tried += count
        knobs, score, desired, ready = point
        if _cheaper(score, best[1], target):
            best = ({**knobs, **extra}, score, PolicyRun(desired, ready))
    return best, tried


def _bisect_all(shared: _Shared, chains: list[Chain], workers: int) -> list[tuple[Point, int]]:
    """Each chain's bisection, in order; a chain per forked worker where there are several."""
    executor = None
    if workers > 1 and len(chains) > 1:
        executor = forked_executor(
            min(workers, len(chains)), initializer=_inherit, initargs=(shared,)
        )
    if executor is None:
        return [_bisect(shared, chain) for chain in chains]
    with executor:
        return list(executor.map(_bisect_in_worker, chains))


def _bisect(shared: _Shared, chain: Chain) -> tuple[Point, int]:
    """The highest utilization that meets the target, assuming lateness grows with
    utilization (the lowest when none does), and how many settings it replayed."""
    target = shared.settings.service_target
    replayed: dict[int, Point] = {}

    def at(index: int) -> Point:
        if index not in replayed:
            replayed[index] = _replay_point(shared, chain, index)
        return replayed[index]

    low, high = 0, len(POLICY_UTILIZATIONS) - 1
    if at(low)[1].meets(target):
        while low < high:
            middle = (low + high + 1) // 2
            if at(middle)[1].meets(target):
                low = middle
            else:
                high = middle - 1
    return at(low), len(replayed)


_inherited: _Shared | None = None
"""A worker's sweep, inherited from the parent when forked."""


def _inherit(shared: _Shared) -> None:
    global _inherited
    _inherited = shared


def _bisect_in_worker(chain: Chain) -> tuple[Point, int]:
    assert _inherited is not None, "a tuning worker is forked with the sweep"
    return _bisect(_inherited, chain)


def _replay_point(shared: _Shared, chain: Chain, index: int) -> Point:
    stabilization, floor = chain
    pool = policy_pool(
        shared.settings,
        utilization=POLICY_UTILIZATIONS[index],
        stabilization=stabilization,
        floor=floor,
    )
    playback = PlaybackPredictor(shared.name, shared.records)
    run = replay_pool(pool, playback, shared.trace, shared.replay)
    return _knobs_of(pool), shared.replay.score(run.desired, run.ready)[0], run.desired, run.ready


def _part(on_progress: Progress | None, number: int, parts: int) -> Progress | None:
    if on_progress is None:
        return None
    report = on_progress

    def scaled(done: int, total: int) -> None:
        report(number * total + done, parts * total)

    return scaled


def _floor_costs_more(floor: int, replay: Replay, best: Score, target: float) -> bool:
    scored_hours = (len(replay.rps) - replay.score_start) / 60.0
    return best.meets(target) and floor * scored_hours >= best.node_hours


def _least_forecast_nodes(records: Sequence[Forecast | Exception], replay: Replay) -> int | None:
    """Nodes that the forecast alone asks for at every tick, at the highest utilization swept:
    a floor at or below it never raises a target (target = max(forecast, demand)), so it
    replays the same as none. None: any floor might bind (a failed or infinite forecast)."""
    if any(isinstance(r, Exception) for r in records):
        return None
    least = min((r.peak_upper() for r in records if isinstance(r, Forecast)), default=0.0)
    if not math.isfinite(least):
        return None
    return nodes_for(least, replay.per_node_rps, max(POLICY_UTILIZATIONS))


def _knobs_of(pool: Pool) -> dict[str, Any]:
    return {
        "utilization": pool.target_utilization,
        "stabilization_min": int(pool.scale_down.stabilization / MINUTE),
        "floor": pool.min_nodes,
    }


def _cheaper(new: Score, old: Score, target: float) -> bool:
    if new.meets(target) != old.meets(target):
        return new.meets(target)
    if new.meets(target):
        return new.node_hours < old.node_hours
    return new.late_share < old.late_share
