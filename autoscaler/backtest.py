"""`autoscaler backtest`: replay a trace through the daemon's own forecast/size/decide code.

Each tick at the start of minute j sees the trace up to minute j-1 (a bounded
window), sizes the fleet with tick.size_fleet, decides with policy.decide and drives
a backends.simulated.SimulatedFleet on a SimulatedClock: no second copy of the
policy. Cost and lateness per minute come from autoscaler.backtest_queue, the same
for the project's policy and every baseline (autoscaler.backtest_baselines).

Forecasts depend on the demand history only, never on the fleet, so the policy's
knobs (target utilization, scale-down stabilization, floor) are tuned by replaying
the recorded forecasts of one run through the same size/decide/fleet code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autoscaler.backtest_baselines import BASELINES, PolicyResult, Replay
from autoscaler.backtest_queue import Score
from autoscaler.clock import SimulatedClock
from autoscaler.config import (
    Capacity,
    DemandQuery,
    Pool,
    PredictorConfig,
    ScaleDown,
    SimulatedBackend,
)
from autoscaler.metrics import MetricsError, check_demand
from autoscaler.policy import Memory, Observation, decide
from autoscaler.replay import read_trace
from autoscaler.schedules import bounds_at
from autoscaler.tick import Sizing, limits_of, size_fleet
from backends.simulated import SimulatedFleet
from predictors import PREDICTORS, Forecast, Predictor, make_predictor

MINUTE = timedelta(minutes=1)
BURN_IN = timedelta(hours=1)
"""Policies run this long before scoring starts, so their memory has settled."""
POLICY_UTILIZATIONS = (0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
POLICY_STABILIZATIONS = (timedelta(minutes=10), timedelta(minutes=30))
POLICY_FLOORS = (0, 1)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestSettings:
    per_node_rps: float
    boot_delay: timedelta = timedelta(minutes=10)
    tick: timedelta = MINUTE
    latency_target_s: float = 3.0
    service_target: float = 0.01
    warmup: timedelta = timedelta(days=7)
    history_window: timedelta = timedelta(days=14)
    predictor: str | None = None
    """The project's predictor; default "seasonal" when registered, else "linear"."""
    tune: bool = True
    baselines: tuple[str, ...] = tuple(BASELINES)

    def __post_init__(self) -> None:
        if not (self.per_node_rps > 0 and math.isfinite(self.per_node_rps)):
            raise ValueError("per-node capacity must be a positive number of req/s")
        for name in ("boot_delay", "tick", "warmup", "history_window"):
            value: timedelta = getattr(self, name)
            if value < timedelta(0) or value % MINUTE:
                raise ValueError(f"{name.replace('_', ' ')} must be whole minutes, not {value}")
        if self.tick < MINUTE:
            raise ValueError("tick must be at least one minute")
        if not 0 <= self.service_target < 1:
            raise ValueError("service target is a share of late requests in [0, 1)")
        if self.latency_target_s <= 0:
            raise ValueError("latency target must be positive")

    @property
    def predictor_kind(self) -> str:
        return self.predictor or ("seasonal" if "seasonal" in PREDICTORS else "linear")


def load_trace(path: Path) -> pd.Series:
    """The trace in req/s on a regular minute grid; minutes missing from the file are NaN."""
    series = read_trace(path)
    series = series[~series.index.duplicated(keep="last")].sort_index()
    if len(series) < 2:
        raise ValueError(f"{path}: a trace needs at least two minutes")
    grid = pd.date_range(series.index[0], series.index[-1], freq="1min")
    return series.reindex(grid)


def frame_replay(trace: pd.Series, settings: BacktestSettings) -> Replay:
    """Where the simulation starts and scoring starts; the fleet every policy starts with."""
    minutes = len(trace)
    score_start = max(1, int(settings.warmup / MINUTE))
    if score_start >= minutes:
        raise ValueError(
            f"warmup {settings.warmup} leaves nothing to score in a trace of {minutes} minutes"
        )
    sim_start = max(1, score_start - int(BURN_IN / MINUTE))
    rps = trace.to_numpy(dtype=float)
    before = rps[max(0, sim_start - 60) : sim_start]
    peak = float(np.nanmax(before)) if np.isfinite(before).any() else 0.0
    return Replay(
        rps=rps,
        per_node_rps=settings.per_node_rps,
        boot_minutes=int(settings.boot_delay / MINUTE),
        tick_minutes=int(settings.tick / MINUTE),
        latency_target_s=settings.latency_target_s,
        service_target=settings.service_target,
        sim_start=sim_start,
        score_start=score_start,
        initial_nodes=max(0, math.ceil(peak / settings.per_node_rps - 1e-9)),
    )


def policy_pool(
    settings: BacktestSettings,
    *,
    utilization: float = 0.8,
    stabilization: timedelta = timedelta(minutes=30),
    floor: int = 0,
    params: dict[str, Any] | None = None,
) -> Pool:
    """The daemon's pool config for the project's policy under the backtest's settings."""
    kind = settings.predictor_kind
    predictor_params = dict(params or {})
    if kind == "seasonal":
        predictor_params.setdefault("service_target", settings.service_target)
    return Pool(
        name="backtest",
        backend=SimulatedBackend(kind="simulated", boot_delay=settings.boot_delay),
        demand=DemandQuery(query="trace", window=settings.history_window),
        capacity=Capacity(per_node_rps=settings.per_node_rps),
        target_utilization=utilization,
        predictor=PredictorConfig(kind=kind, params=predictor_params),
        boot_time=settings.boot_delay,
        horizon=settings.boot_delay + settings.tick,
        min_nodes=floor,
        max_nodes=1_000_000,
        scale_down=ScaleDown(stabilization=stabilization, max_step=1_000_000),
        cooldown=timedelta(0),
    )


@dataclass(frozen=True)
class TickRecord:
    at: datetime
    desired: int
    ready: int
    pending: int


@dataclass
class PolicyRun:
    """What the fleet did, minute by minute from sim_start, and at each tick."""

    desired: np.ndarray
    ready: np.ndarray
    ticks: list[TickRecord] = field(default_factory=list)
    forecasts: list[Forecast | Exception] = field(default_factory=list)


class RecordingPredictor:
    """Passes through to a real predictor and keeps every forecast, for replays."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.name = inner.name
        self.records: list[Forecast | Exception] = []

    def fit(self, history: pd.Series) -> RecordingPredictor:
        try:
            self.inner.fit(history)
        except (ValueError, ArithmeticError) as exc:
            self.records.append(exc)
            raise
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        try:
            result = self.inner.forecast(horizon)
        except (ValueError, ArithmeticError) as exc:
            self.records.append(exc)
            raise
        self.records.append(result)
        return result


class PlaybackPredictor:
    """Gives back recorded forecasts in order: the same answers, without refitting."""

    def __init__(self, name: str, records: Sequence[Forecast | Exception]) -> None:
        self.name = name
        self.records = records
        self.position = 0

    def fit(self, history: pd.Series) -> PlaybackPredictor:
        record = self.records[self.position]
        if isinstance(record, Exception):
            self.position += 1
            raise record
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        record = self.records[self.position]
        self.position += 1
        assert isinstance(record, Forecast)
        return record


def replay_pool(
    pool: Pool,
    predictor: Predictor,
    trace: pd.Series,
    replay: Replay,
    *,
    on_progress: Progress | None = None,
) -> PolicyRun:
    """Run the daemon's tick (size_fleet → decide → fleet.scale) over the trace.

    The predictor sees the pool's demand window, ending with minute j-1 at minute j's
    tick. A PlaybackPredictor needs no history: it gets only the newest value (all
    size_fleet reads besides the forecast), which spares building a Series per tick.
    """
    times = trace.index
    values = trace.to_numpy(dtype=float)
    instants = times.to_pydatetime()
    window = max(1, int(pool.demand.window / MINUTE))
    playback = isinstance(predictor, PlaybackPredictor)
    clock = SimulatedClock(instants[replay.sim_start])
    fleet = SimulatedFleet(clock, replay.initial_nodes, pool.boot_time)
    limits = limits_of(pool)
    memory = Memory()
    total = len(values) - replay.sim_start
    desired = np.empty(total, dtype=np.int64)
    ready = np.empty(total, dtype=np.int64)
    run = PolicyRun(desired, ready)
    for offset in range(total):
        minute = replay.sim_start + offset
        now = instants[minute]
        clock.advance(now - clock.now())
        if offset % replay.tick_minutes == 0:
            lo = max(0, minute - window)
            history = (
                _Newest(values[minute - 1])
                if playback
                else pd.Series(values[lo:minute], index=times[lo:minute], copy=False)
            )
            sizing = _sizing(pool, predictor, history, now, replay.per_node_rps)
            state = fleet.read()
            observation = Observation(
                at=now,
                current=state.desired,
                forecast_nodes=sizing.nodes,
                demand_nodes=sizing.demand_nodes,
                missing_reason=sizing.missing_reason,
                schedule=bounds_at(pool.schedules, now),
            )
            decision, memory = decide(observation, limits, memory)
            if decision.desired != decision.current:
                fleet.scale(decision.desired, "; ".join(decision.reasons))
            state = fleet.read()
            run.ticks.append(TickRecord(now, state.desired, state.ready, state.pending))
        else:
            state = fleet.read()
        desired[offset] = state.desired
        ready[offset] = state.ready
        if on_progress is not None and (offset % 1000 == 999 or offset == total - 1):
            on_progress(offset + 1, total)
    return run


class _Newest:
    """Stands in for the history when replaying recorded forecasts: `.iloc[-1]` only."""

    def __init__(self, value: float) -> None:
        self.iloc = (float(value),)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.iloc)


def _sizing(
    pool: Pool, predictor: Predictor, history: pd.Series, now: datetime, per_node_rps: float
) -> Sizing:
    """The daemon's checks on the history (metrics.check_demand), then size_fleet."""
    if isinstance(history, _Newest):
        if not math.isfinite(history.iloc[-1]):
            return Sizing(missing_reason="nan: newest sample is not a number")
        return size_fleet(pool, predictor, history, per_node_rps)  # type: ignore[arg-type]
    if not np.isfinite(history.to_numpy()).all():
        try:
            history = check_demand(history, now, timedelta(minutes=5))
        except MetricsError as exc:
            return Sizing(missing_reason=f"{exc.kind}: {exc}")
    return size_fleet(pool, predictor, history, per_node_rps)


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


def run_policy(
    trace: pd.Series,
    replay: Replay,
    settings: BacktestSettings,
    *,
    pool: Pool | None = None,
    on_progress: Progress | None = None,
) -> tuple[PolicyResult, PolicyRun]:
    """The project's policy: one full run with the real predictor, then (with tuning) the
    knob sweep replayed on its recorded forecasts; the cheapest setting meeting the target."""
    base = pool or policy_pool(settings)
    recorder = RecordingPredictor(make_predictor(base.predictor.kind, base.predictor.params))
    first = replay_pool(base, recorder, trace, replay, on_progress=on_progress)
    knobs = _knobs_of(base)
    best = (knobs, replay.score(first.desired, first.ready)[0], first)
    tried = 1
    if settings.tune and pool is None:
        for stabilization in POLICY_STABILIZATIONS:
            for floor in POLICY_FLOORS:
                found, count = _bisect_utilization(
                    settings, trace, replay, recorder, stabilization, floor
                )
                tried += count
                if _cheaper(found[1], best[1], settings.service_target):
                    best = found
    knobs, score, run = best
    result = PolicyResult(
        "policy",
        f"this project: {base.predictor.kind} forecast → size_fleet → decide",
        knobs,
        score,
        score.meets(settings.service_target),
        run.desired,
        run.ready,
        tried,
    )
    return result, run


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


def run_backtest(
    trace_path: Path,
    settings: BacktestSettings,
    *,
    pool: Pool | None = None,
    on_progress: Progress | None = None,
    trace: pd.Series | None = None,
) -> BacktestReport:
    import time

    began = time.perf_counter()
    series = trace if trace is not None else load_trace(trace_path)
    replay = frame_replay(series, settings)
    if pool is not None:
        pool = pool.model_copy(update={"capacity": Capacity(per_node_rps=settings.per_node_rps)})
        replay = replace(replay, boot_minutes=int(pool.boot_time / MINUTE))
    policy, run = run_policy(series, replay, settings, pool=pool, on_progress=on_progress)
    results = [BASELINES[name](replay) for name in settings.baselines]
    results.insert(0, policy)
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
