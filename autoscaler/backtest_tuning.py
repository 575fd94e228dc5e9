"""Tuning the project's policy on its own knobs, the same sweep for every trace.

Forecasts depend on the demand history only, never on the fleet, so the knobs that
act after the forecast (target utilization, scale-down stabilization, node floor)
are swept by replaying the recorded forecasts of one full run through the same
size_fleet → decide → SimulatedFleet code. The predictor's own service target (its
upper quantile) can be swept too, one full run per value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pandas as pd

from autoscaler.backtest_baselines import UTILIZATIONS, PolicyResult, Replay
from autoscaler.backtest_engine import (
    MINUTE,
    BacktestSettings,
    PlaybackPredictor,
    PolicyRun,
    Progress,
    RecordingPredictor,
    policy_pool,
    replay_pool,
)
from autoscaler.backtest_queue import Score
from autoscaler.config import Pool
from predictors import Forecast, make_predictor

POLICY_UTILIZATIONS = UTILIZATIONS
"""The baselines' grid (a headroom h of theirs is a utilization 1/h here)."""
POLICY_STABILIZATIONS = (timedelta(0), timedelta(minutes=10), timedelta(minutes=30))
"""None at all is a fair choice in a backtest: the horizon-peak floor (policy.decide) already
keeps what removed nodes could not be back in time for."""
POLICY_FLOORS = (0, 1, 2, 4, 8)
"""Shorter than the baselines' floor grid, for speed: on the shared traces the full grid
(0 … 64) never picked a floor above 8 for the policy (bench/backtest_targets.py)."""


def run_policy(
    trace: pd.Series,
    replay: Replay,
    settings: BacktestSettings,
    *,
    pool: Pool | None = None,
    on_progress: Progress | None = None,
) -> tuple[PolicyResult, PolicyRun]:
    """The project's policy: a full run with the real predictor (one per predictor target
    tried), then (with tuning) the knob sweep replayed on its recorded forecasts; the
    cheapest setting that meets the target."""
    variants: tuple[float | None, ...] = settings.predictor_targets or (None,)
    best: tuple[dict[str, Any], Score, PolicyRun] | None = None
    tried = 0
    kind = pool.predictor.kind if pool else settings.predictor_kind
    for number, target in enumerate(variants):
        params = {} if target is None else {"service_target": target}
        base = pool or policy_pool(settings, params=params)
        recorder = RecordingPredictor(make_predictor(base.predictor.kind, base.predictor.params))
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
        if not settings.tune or pool is not None:
            continue
        for stabilization in POLICY_STABILIZATIONS:
            for floor in POLICY_FLOORS:
                if floor and not _floor_can_bind(recorder.records, replay, floor):
                    continue  # the same runs as with no floor
                if _floor_costs_more(floor, replay, best[1], settings.service_target):
                    break  # the floor alone costs more than the cheapest setting found
                found, count = _bisect_utilization(
                    settings, trace, replay, recorder, stabilization, floor
                )
                found = ({**found[0], **extra}, found[1], found[2])
                tried += count
                if _cheaper(found[1], best[1], settings.service_target):
                    best = found
    assert best is not None
    knobs, score, run = best
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


def _floor_can_bind(records: Sequence[Forecast | Exception], replay: Replay, floor: int) -> bool:
    """Whether a node floor could ever raise a target: the forecast's nodes at the highest
    utilization swept bound every target from below (target = max(forecast, demand))."""
    if any(isinstance(r, Exception) for r in records):
        return True
    least = min((r.peak_upper() for r in records if isinstance(r, Forecast)), default=0.0)
    if not math.isfinite(least):
        return True
    return math.ceil(least / (replay.per_node_rps * max(POLICY_UTILIZATIONS)) - 1e-9) < floor


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


def _bisect_utilization(
    settings: BacktestSettings,
    trace: pd.Series,
    replay: Replay,
    recorder: RecordingPredictor,
    stabilization: timedelta,
    floor: int,
) -> tuple[tuple[dict[str, Any], Score, PolicyRun], int]:
    """The highest utilization (fewest nodes) that meets the target, assuming lateness
    grows with utilization; replays recorded forecasts (history of two points suffices)."""
    cache: dict[int, tuple[dict[str, Any], Score, PolicyRun]] = {}

    def at(index: int) -> tuple[dict[str, Any], Score, PolicyRun]:
        if index not in cache:
            pool = policy_pool(
                settings,
                utilization=POLICY_UTILIZATIONS[index],
                stabilization=stabilization,
                floor=floor,
            )
            playback = PlaybackPredictor(recorder.name, recorder.records)
            run = replay_pool(pool, playback, trace, replay)
            cache[index] = (_knobs_of(pool), replay.score(run.desired, run.ready)[0], run)
        return cache[index]

    low, high = 0, len(POLICY_UTILIZATIONS) - 1
    if not at(low)[1].meets(settings.service_target):
        return at(low), len(cache)
    while low < high:
        middle = (low + high + 1) // 2
        if at(middle)[1].meets(settings.service_target):
            low = middle
        else:
            high = middle - 1
    return at(low), len(cache)
