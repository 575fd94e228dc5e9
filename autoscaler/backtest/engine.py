"""The backtest's engine: the daemon's own size/decide code driving a simulated fleet.

Each tick at the start of minute j sees the trace up to minute j-1, sizes the fleet
with sizing.size_fleet, decides with policy.decide and drives a
the simulated backend (backends/simulated.py) on a SimulatedClock: no second copy of the policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from autoscaler.backtest.baselines import BASELINES, Replay
from autoscaler.backtest.recorded import PlaybackPredictor
from autoscaler.backtest.setting_error import SettingError, predictor_problem
from autoscaler.config.scaling import ScaleDown, ScaleUp
from autoscaler.config.schema import (
    DEFAULT_MARGIN,
    MAX_HORIZON_STEPS,
    Capacity,
    DemandQuery,
    Pool,
    PredictorConfig,
)
from autoscaler.metrics import MetricsError, check_demand
from autoscaler.plan import act, plan
from autoscaler.policy import Memory
from autoscaler.signals.observe import context_of, reading_of
from autoscaler.signals.queue_depth import QueueDepthSignal
from autoscaler.signals.weigh import SignalReading
from autoscaler.sizing import Sizing, size_fleet
from backends import backend_settings, make_backend
from backends.base import FleetState
from common.clock import SimulatedClock
from common.durations import format_duration
from predictors import PREDICTORS, Forecast, Predictor

MINUTE = timedelta(minutes=1)
Progress = Callable[[int, int], None]


DEFAULT_BURN_IN = timedelta(hours=1)
"""The policies' run before scoring, unless a backtest asks for more (BacktestSettings)."""


@dataclass(frozen=True)
class BacktestSettings:
    per_node_rps: float
    boot_delay: timedelta = timedelta(minutes=10)
    tick: timedelta = MINUTE
    latency_target_s: float = 3.0
    service_target: float = 0.01
    warmup: timedelta = timedelta(days=7)
    burn_in: timedelta = DEFAULT_BURN_IN
    """How long the policies run before scoring starts (from the trace's start at most).
    An hour settles their memory, as a daemon just started; as long as the warmup, the
    daemon as if it had run from the trace's start, its loop calibrated and its members
    compared when scoring starts, its first forecasts made on little history (a
    diagnostic of the settled loop, not what a new pool gets)."""
    backfill: timedelta = timedelta(days=14)
    """History the first tick sees (a daemon started on a pool with that much history;
    none before the trace's start); later ticks see the pool's demand window, as the
    daemon's query does."""
    demand_window: timedelta = timedelta(hours=2)
    max_staleness: timedelta = timedelta(minutes=5)
    """The config's metrics.max_staleness: a tick holds once the newest sample is older."""
    predictor: str | None = None
    """The project's predictor; default "seasonal" when registered, else "linear"."""
    predictor_params: dict[str, Any] = field(default_factory=dict)
    """Parameters of the project's predictor (the seasonal one gets service_target from
    the backtest's own unless given here)."""
    predictor_targets: tuple[float, ...] = ()
    """Service targets to hand the predictor in turn (its upper quantile), each a full
    run, as one more knob of the policy's sweep; empty: only the backtest's own."""
    margin: str = DEFAULT_MARGIN
    """The predictor's margin (PredictorConfig.margin): "band", "loop" or "widen"."""
    policy: str | None = None
    """What the fleet is sized for (PredictorConfig.policy, autoscaler.portfolio); None:
    the margin's default (autoscaler.config.schema.default_policy)."""
    tune: bool = True
    baselines: tuple[str, ...] = tuple(BASELINES)
    scale_up_max_step: int | None = None
    scale_up_max_percent: float | None = None
    """The pool's `scale_up` limits (nodes per action, % of the current count), replayed by
    the same decide code; the baselines are not limited."""
    jobs: int | None = None
    """Processes the backtest may use (the baselines beside the forecasting run, the knob
    sweep's replays); None: every CPU it may run on. The report is the same either way."""

    def __post_init__(self) -> None:
        if not (self.per_node_rps > 0 and math.isfinite(self.per_node_rps)):
            raise SettingError(
                "per_node_rps", "per-node capacity must be a positive number of req/s"
            )
        for name in ("boot_delay", "tick", "warmup", "burn_in", "backfill", "demand_window"):
            value: timedelta = getattr(self, name)
            if value < timedelta(0) or value % MINUTE:
                raise SettingError(
                    name,
                    f"{name.replace('_', ' ')} must be whole minutes, not {format_duration(value)}",
                )
        if self.tick < MINUTE:
            raise SettingError("tick", "tick must be at least one minute")
        if self.boot_delay + self.tick > MAX_HORIZON_STEPS * MINUTE:  # the policy's horizon
            raise SettingError(
                "boot_delay",
                f"boot delay and a tick look {(self.boot_delay + self.tick) // MINUTE:,} minutes "
                f"ahead, more than the {MAX_HORIZON_STEPS:,} a forecast may (a pool's horizon)",
            )
        if not 0 <= self.service_target < 1:
            raise SettingError(
                "service_target", "service target is a share of late requests in [0, 1)"
            )
        if self.latency_target_s <= 0:
            raise SettingError("latency_target_s", "latency target must be positive")
        if self.scale_up_max_step is not None and self.scale_up_max_step < 1:
            raise SettingError("scale_up_max_step", "scale-up max step must be at least 1 node")
        percent = self.scale_up_max_percent
        if percent is not None and not (percent > 0 and math.isfinite(percent)):
            # inf passed here and met the pool's ScaleUp: pydantic's report after the read
            raise SettingError(
                "scale_up_max_percent",
                f"scale-up max percent must be a positive number, not {percent}",
            )
        for target in self.predictor_targets or (None,):  # each run's, before the first
            params = policy_params(self, None if target is None else {"service_target": target})
            try:
                self.predictor_config(kind=self.predictor_kind, params=params)
            except ValidationError as exc:
                raise predictor_problem(exc, target) from None
        if self.jobs is not None and self.jobs < 1:
            raise SettingError("jobs", "jobs must be at least 1")

    def predictor_config(self, **fields: Any) -> PredictorConfig:
        """The project's predictor config: margin and policy as given (a policy not given
        is the margin's default), with `fields`."""
        chosen = {"margin": self.margin} | ({} if self.policy is None else {"policy": self.policy})
        return PredictorConfig(**chosen, **fields)

    @property
    def predictor_kind(self) -> str:
        return self.predictor or ("seasonal" if "seasonal" in PREDICTORS else "linear")


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
    predictor_params = policy_params(settings, params)
    return Pool(
        name="backtest",
        backend=backend_settings({"kind": "simulated", "boot_delay": settings.boot_delay}),
        demand=DemandQuery(query="trace", window=settings.demand_window),
        capacity=Capacity(per_node_rps=settings.per_node_rps),
        target_utilization=utilization,
        predictor=settings.predictor_config(kind=kind, params=predictor_params),
        boot_time=settings.boot_delay,
        horizon=settings.boot_delay + settings.tick,
        min_nodes=floor,
        max_nodes=1_000_000,
        scale_down=ScaleDown(stabilization=stabilization, max_step=1_000_000),
        scale_up=ScaleUp(
            max_step=settings.scale_up_max_step, max_percent=settings.scale_up_max_percent
        ),
        cooldown=timedelta(0),
    )


def policy_params(settings: BacktestSettings, params: dict[str, Any] | None) -> dict[str, Any]:
    """The project's predictor's params, with `params` (a predictor target's); the seasonal
    one's targets are the backtest's own unless given."""
    merged = {**settings.predictor_params, **(params or {})}
    if settings.predictor_kind == "seasonal":
        merged.setdefault("service_target", settings.service_target)
        merged.setdefault("latency_target_s", settings.latency_target_s)
    return merged


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


def replay_pool(
    pool: Pool,
    predictor: Predictor,
    trace: pd.Series,
    replay: Replay,
    *,
    backfill: timedelta = timedelta(0),
    on_progress: Progress | None = None,
) -> PolicyRun:
    """Run the daemon's tick (size_fleet → decide → fleet.scale) over the trace.

    The predictor sees the pool's demand window, ending with minute j-1 at minute j's
    tick, as known then (Replay.known); the first tick sees `backfill` (if longer), so a
    predictor kept across ticks starts with what a daemon running through the warmup
    would have seen. A
    PlaybackPredictor needs no history: where its window has a number every minute, it
    gets only the newest value (all size_fleet reads besides the forecast), which spares
    building a Series per tick.
    """
    times = trace.index
    values = replay.known  # a coarse row only once its minutes have passed (as_known)
    instants = times.to_pydatetime()
    # One Series for the whole trace, in ns (what the predictors read), sliced per tick: a
    # slice costs half a new Series, and no tick converts its index; the count of samples
    # that are not numbers up to each minute says whether a window holds one.
    series = pd.Series(values, index=pd.DatetimeIndex(times).as_unit("ns"), copy=False)
    not_numbers = np.concatenate(([0], np.cumsum(~np.isfinite(values))))
    window = max(1, int(pool.demand.window / MINUTE))
    first_window = max(window, int(backfill / MINUTE))
    playback = isinstance(predictor, PlaybackPredictor)
    clock = SimulatedClock(instants[replay.sim_start])
    fleet = make_backend(
        backend_settings(
            {
                "kind": "simulated",
                "initial_nodes": replay.initial_nodes,
                "boot_delay": pool.boot_time,
            }
        ),
        clock,
    )
    memory = Memory()
    queue = _queue_signal(pool, replay) if replay.queue is not None else None
    total = len(values) - replay.sim_start
    desired = np.empty(total, dtype=np.int64)
    ready = np.empty(total, dtype=np.int64)
    for offset in range(total):
        minute = replay.sim_start + offset
        now = instants[minute]
        clock.advance(now - clock.now())
        state = fleet.read()
        if offset % replay.tick_minutes == 0:
            lo = max(0, minute - (first_window if offset == 0 else window))
            numbers = not_numbers[minute] == not_numbers[lo]
            if playback and numbers:
                history = _Newest(values[minute - 1])
            else:
                history = series.iloc[lo:minute]
            sizing = _sizing(pool, predictor, history, now, replay, numbers)
            if queue is not None:
                reading = _queue_reading(pool, queue, replay, minute, state, sizing)
                sizing = replace(sizing, signals=(reading,))
            decision, memory = plan(pool, sizing, now, state.desired, None, memory)
            if decision.desired != decision.current:
                act(fleet, decision, before_write=lambda: None)
                state = fleet.read()
        desired[offset] = state.desired
        ready[offset] = state.ready
        if on_progress is not None and (offset % 1000 == 999 or offset == total - 1):
            on_progress(offset + 1, total)
    return PolicyRun(desired, ready, tick_records(instants, replay, desired, ready))


def _queue_signal(pool: Pool, replay: Replay) -> QueueDepthSignal:
    """The pool's queue-depth signal, or one that drains within the latency target."""
    for signal in pool.signals:
        if isinstance(signal, QueueDepthSignal):
            return signal
    return QueueDepthSignal(
        kind="queue_depth",
        name="queue",
        query="the trace's queue_depth column",
        drain_within=timedelta(seconds=replay.latency_target_s),
    )


def _queue_reading(
    pool: Pool,
    signal: QueueDepthSignal,
    replay: Replay,
    minute: int,
    fleet: FleetState,
    sizing: Sizing,
) -> SignalReading:
    """The queue as the tick at `minute` sees it: the row of the minute before, through the
    daemon's own signal rule; a minute without a sample is no data (held, then the fleet)."""
    assert replay.queue is not None
    value = float(replay.queue[minute - 1])
    if not math.isfinite(value):
        return SignalReading(
            signal.name, signal.kind, None, "no sample in the trace", hold_for=signal.hold_for
        )
    context = context_of(pool, fleet, sizing.demand_now, replay.per_node_rps)
    return reading_of(signal, value, context)


def tick_records(
    instants: np.ndarray, replay: Replay, desired: np.ndarray, ready: np.ndarray
) -> list[TickRecord]:
    """The fleet right after each tick's decision, which is the count its minute keeps: a
    run sent between processes needs only its arrays. `instants`: the trace's minutes."""
    step = replay.tick_minutes
    return [
        TickRecord(instants[replay.sim_start + offset], wanted, up, wanted - up)
        for offset, wanted, up in zip(
            range(0, len(desired), step),
            desired[::step].tolist(),
            ready[::step].tolist(),
            strict=True,
        )
    ]


class _Newest:
    """Stands in for the history when replaying recorded forecasts: `.iloc[-1]` only."""

    def __init__(self, value: float) -> None:
        self.iloc = (float(value),)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.iloc)


def _sizing(
    pool: Pool,
    predictor: Predictor,
    history: pd.Series,
    now: datetime,
    replay: Replay,
    all_numbers: bool,
) -> Sizing:
    """The daemon's checks on the history (metrics.check_demand), then size_fleet;
    `all_numbers`: every sample of `history` is a finite number (nothing to check). A
    minute without a number is one without a sample, as `run` reads it (its replay source
    leaves it out, as Prometheus does a missing scrape): the tick holds only once the
    newest sample is older than metrics.max_staleness."""
    if not all_numbers:
        try:
            samples = history[np.isfinite(history.to_numpy())]
            history = check_demand(samples, now, replay.max_staleness)
        except MetricsError as exc:
            return Sizing(missing_reason=f"{exc.kind}: {exc}")
    return size_fleet(pool, predictor, history, replay.per_node_rps)  # type: ignore[arg-type]
