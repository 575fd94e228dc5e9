"""The daemon's configuration: one YAML file with global settings and a list of pools.

Every model forbids unknown keys, so a typo is an error rather than a silently
ignored setting. Relative paths are resolved against the config file's folder
(paths.py). The parts with rules of their own live beside this file: the metrics
source (metrics_source.py), schedules and history masks (time_windows.py), scaling
steps (scaling.py) and Slack, digest and telemetry (reporting.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    AwareDatetime,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from autoscaler.capacity_check import CapacityCheck
from autoscaler.config.metrics_source import MetricsConfig, PrometheusMetrics, ReplayMetrics
from autoscaler.config.reporting import DigestConfig, SlackConfig, TelemetryConfig
from autoscaler.config.scaling import ScaleDown, ScaleUp
from autoscaler.config.time_windows import HistoryMask, Schedule, within_history_years
from autoscaler.config.transport import insecure_settings, refusal_text
from autoscaler.signals.settings import SignalConfig
from backends import BackendConfig
from backends.leases import LeaderElection
from common.durations import Duration, PositiveDuration, format_duration
from common.settings import MAX_NODES, PromQL, Strict
from predictors import check_kind, check_params

# ---- pools -----------------------------------------------------------------------

POOL_NAME_MAX = 200
"""A pool's name names its files in state_dir (`<pool>.backend.json`, `loop-ticks/<pool>.npz`),
each written through a temporary `.<file>.<random>.tmp`: a file name holds 255 bytes, so
past 228 characters no record of a scale-in could be written and a Nomad cluster pool
never scaled in."""


MAX_HISTORY_STEPS = 1_000_000
"""Samples in one pool's history window (two years of minutes, 11 days of seconds): a
`step: 1ms` over 7 days was accepted, and every first read became 60,000 Prometheus
queries for 600 million samples, a tick left behind at its deadline for good."""


MAX_HORIZON_STEPS = 1_440
"""Steps of `demand.step` one forecast looks ahead (a day of minutes). The seasonal
forecaster replays every lead over a week of origins at each refit, so its cost grows with
the steps (14 days of minutes, one pool: 6 h 0.7 s and 0.4 GB, 24 h 3.6 s and 0.8 GB, 3 d
6-12 s and 2 GB, 7 d 19-40 s and 4.5 GB); `horizon: 36500d` was 52 million steps, a
MemoryError at every tick."""


class DemandQuery(Strict):
    query: PromQL = Field(description="PromQL giving the pool's demand in requests per second")
    window: PositiveDuration = Field(
        default=timedelta(days=7), description="history the predictor learns the week from"
    )
    step: PositiveDuration = timedelta(minutes=1)
    exclude: list[HistoryMask] = Field(
        default_factory=list,
        description="spans masked out of the history before the forecaster fits it",
    )

    @model_validator(mode="after")
    def _step_inside_window(self) -> DemandQuery:
        if self.step > self.window:
            raise ValueError(
                f"step ({format_duration(self.step)}) must not be longer than the window "
                f"({format_duration(self.window)})"
            )
        steps = self.window / self.step
        if steps > MAX_HISTORY_STEPS:
            raise ValueError(
                f"a window of {format_duration(self.window)} at a step of "
                f"{self.step.total_seconds():g}s is {steps:,.0f} samples, more than the "
                f"{MAX_HISTORY_STEPS:,} a pool's history may hold; take a longer step"
            )
        return self


class Capacity(Strict):
    """Requests/s one node serves at the latency target: a number, or a gpu_bench profile."""

    per_node_rps: float | None = Field(default=None, gt=0)
    profile: Path | None = None
    startup_in_boot_time: bool = Field(
        default=False,
        description="add the profile's start-up time (p90, worker start to first good "
        "answer) to the pool's boot_time, which then is the node's own boot",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Capacity:
        if (self.per_node_rps is None) == (self.profile is None):
            raise ValueError("give exactly one of per_node_rps or profile")
        if self.startup_in_boot_time and self.profile is None:
            raise ValueError("startup_in_boot_time needs a profile (gpu-bench measures it)")
        return self


DEFAULT_SERVICE_TARGET = 0.01
DEFAULT_LATENCY_TARGET_S = 3.0
CALIBRATED_MARGINS = ("loop", "widen")
DEFAULT_MARGIN = "widen"


def default_policy(margin: str) -> str:
    """A pool's policy when its config names none: `auto` where a margin is calibrated
    (the members need one), else `forecast`."""
    return "auto" if margin in CALIBRATED_MARGINS else "forecast"


class PredictorConfig(Strict):
    """A predictor and its parameters, checked against its constructor's (predictors/)."""

    kind: str = "seasonal"
    params: dict[str, Any] = Field(default_factory=dict)
    margin: Literal["band", "loop", "widen"] = Field(
        default=DEFAULT_MARGIN,
        description="band: size for the forecaster's upper band as it is; loop: scale the "
        "band by a margin that the pool's own loop, replayed over the last days, needs to "
        "end at the service target (autoscaler/calibration.py); widen: the same, but never "
        "below the level of the member followed (margin >= 1) while the error budget is "
        "being spent, and only as far under it as a budget left unspent earns back",
    )
    policy: Literal["forecast", "auto", "reactive", "recent_peak", "static"] = Field(
        default=default_policy(DEFAULT_MARGIN),
        description="what the fleet is sized for (autoscaler/portfolio.py): the forecast's "
        "band; the demand now (reactive target tracking); the last 24 h's peak; static: "
        "the kept window's peak, held from one recalibration to the next; or auto: "
        "whichever of them, replayed over the last days at its calibrated margin, meets "
        "the service target at the least cost. All but forecast need margin: loop or "
        "widen. Default: auto, or forecast under margin: band",
    )

    @model_validator(mode="before")
    @classmethod
    def _policy_of_margin(cls, data: Any) -> Any:
        """No policy named: the margin's own (default_policy), so that `margin: band`
        alone is a valid config, as it was before widen became the default."""
        if isinstance(data, dict) and "policy" not in data:
            data = {**data, "policy": default_policy(str(data.get("margin", DEFAULT_MARGIN)))}
        return data

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        return check_kind(kind)  # the registry, not a copy of its names

    @model_validator(mode="after")
    def _known_params(self) -> PredictorConfig:
        check_params(self.kind, self.params)  # a ValueError names each bad parameter
        return self

    @property
    def service_target(self) -> float:
        """The share of late requests the pool is held to: its predictor's
        `service_target` (the seasonal model's name), else 1 %."""
        return float(self.params.get("service_target", DEFAULT_SERVICE_TARGET))

    @property
    def latency_target_s(self) -> float:
        """Queueing past this many seconds makes a request late: the predictor's
        `latency_target_s`, else 3 s."""
        return float(self.params.get("latency_target_s", DEFAULT_LATENCY_TARGET_S))

    @property
    def calibrated(self) -> bool:
        """The band is scaled by a loop-calibrated margin (autoscaler/calibration.py)."""
        return self.margin in CALIBRATED_MARGINS

    @field_validator("policy")
    @classmethod
    def _policy_needs_loop(cls, policy: str, info: ValidationInfo) -> str:
        if policy != "forecast" and info.data.get("margin") not in CALIBRATED_MARGINS:
            raise ValueError(
                f"policy {policy} needs margin: loop or widen (its headroom is the "
                "calibrated margin; with margin: band only policy: forecast has one)"
            )
        return policy


class Pool(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    backend: BackendConfig
    demand: DemandQuery
    capacity: Capacity
    target_utilization: float = Field(default=0.8, gt=0, le=1)
    predictor: PredictorConfig = Field(default_factory=PredictorConfig)
    boot_time: Duration = timedelta(minutes=10)
    horizon: PositiveDuration = timedelta(minutes=15)
    min_nodes: int = Field(default=0, ge=0, le=MAX_NODES)
    max_nodes: int = Field(ge=0, le=MAX_NODES)
    spare_nodes: int = Field(
        default=0,
        ge=0,
        le=MAX_NODES,
        description="nodes kept above what the forecast needs: a cushion of fixed size for "
        "bursts no forecast sees (a node is a larger share of a small fleet's load)",
    )
    schedules: list[Schedule] = Field(default_factory=list)
    scale_down: ScaleDown = Field(default_factory=ScaleDown)
    scale_up: ScaleUp = Field(default_factory=ScaleUp)
    cooldown: Duration = timedelta(minutes=5)
    dry_run: bool = False
    price_per_node_hour: float | None = Field(
        default=None, ge=0, description="what one node costs an hour, for the daily digest"
    )
    signals: list[SignalConfig] = Field(
        default_factory=list,
        description="counts beside the forecast's (queue depth, GPU utilization, latency, "
        "a node count): the highest wins",
    )
    capacity_check: CapacityCheck | None = Field(
        default=None,
        description="measure what one node serves under load from the fleet's own series; "
        "alert on drift from the profile, and optionally size with the measured figure",
    )

    @field_validator("name")
    @classmethod
    def _short_enough(cls, name: str) -> str:
        if len(name) > POOL_NAME_MAX:
            raise ValueError(
                f"is {len(name)} characters, more than {POOL_NAME_MAX}: it names the pool's "
                "files in state_dir, and a longer one cannot be written"
            )
        return name

    @model_validator(mode="after")
    def _coherent(self) -> Pool:
        if self.max_nodes < self.min_nodes:
            raise ValueError("max_nodes must be at least min_nodes")
        if self.horizon < self.boot_time:
            raise ValueError("horizon must be at least boot_time, or new nodes arrive too late")
        steps = -(-self.horizon // self.demand.step)  # whole steps, rounded up as forecasts are
        if steps > MAX_HORIZON_STEPS:
            raise ValueError(
                f"horizon ({format_duration(self.horizon)}) is {steps:,} steps of demand.step "
                f"({format_duration(self.demand.step)}), more than the {MAX_HORIZON_STEPS:,} a "
                "forecast may look ahead: each refit replays every step, for seconds and "
                "gigabytes; a horizon need only pass boot_time"
            )
        names = [s.name for s in self.signals]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"signal names must be unique; repeated: {', '.join(repeated)}")
        return self


# ---- global ----------------------------------------------------------------------


MAX_FIT_WORKERS = 64
"""Fit worker processes a config may ask for: each is about 165 MB, and a typo (800) started
800 of them once there were 32 pools. A fixed bound, since validate may run on another host
than run; past the CPUs the daemon may use, more workers only take memory."""


class SimulationConfig(Strict):
    """Play the daemon on a simulated clock (the demo): `speed` simulated seconds per second."""

    start: AwareDatetime
    end: AwareDatetime
    speed: float = Field(default=3600.0, gt=0)

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        """One zone object for both ends: YAML's own timestamps and quoted ones parse to
        different UTC objects, which pandas refuses to compare."""
        return within_history_years(value, "a simulation runs").astimezone(UTC)

    @model_validator(mode="after")
    def _ordered(self) -> SimulationConfig:
        if self.end <= self.start:
            raise ValueError("simulation.end must be after simulation.start")
        return self


class Config(Strict):
    interval: PositiveDuration = timedelta(minutes=1)
    state_dir: Path = Path("/var/lib/autoscaler")
    decision_log: Path | None = None
    overrides_file: Path | None = None
    metrics: MetricsConfig = Field(default_factory=PrometheusMetrics)
    slack: SlackConfig | None = None
    telemetry: TelemetryConfig | None = None
    simulation: SimulationConfig | None = None
    digest: DigestConfig | None = None
    leader_election: LeaderElection | None = None
    fit_workers: int | None = Field(
        default=None,
        ge=0,
        le=MAX_FIT_WORKERS,
        validation_alias=AliasChoices("fit_workers", "first_fit_workers"),  # its old name
        description=(
            "worker processes that do the pools' heavy forecaster fits (a daemon's first "
            "tick, then each pool's hourly refit) beside the tick, when it has 32 or more "
            "pools (autoscaler.fit_workers); default: the CPUs the daemon may use, at most "
            "8; 0 or 1: each pool fits in its own tick; at most 64"
        ),
    )
    pool_dir: Path | None = Field(
        default=None,
        description="a folder of pool files (*.yaml), one pool each, beside `pools`",
    )
    pools: list[Pool] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_pool_names(self) -> Config:
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _signals_need_prometheus(self) -> Config:
        """A replayed trace answers every query with demand: a signal would read nonsense."""
        if isinstance(self.metrics, ReplayMetrics):
            with_signals = [p.name for p in self.pools if p.signals or p.capacity_check]
            if with_signals:
                raise ValueError(
                    "signals and capacity_check need a Prometheus metrics source (a replayed "
                    f"trace has only demand); pools with them: {', '.join(with_signals)}"
                )
        return self

    @model_validator(mode="after")
    def _digest_has_a_channel(self) -> Config:
        if self.digest is not None and self.slack is None:
            raise ValueError(
                "digest is posted on Slack: add a slack block, or remove digest "
                "(`autoscaler report` works without either)"
            )
        return self

    @model_validator(mode="after")
    def _tls_spelled_out(self) -> Config:
        insecure = insecure_settings(self, env={})
        if insecure:
            raise ValueError(refusal_text(insecure))
        return self

    @model_validator(mode="after")
    def _lease_outlives_a_tick(self) -> Config:
        """Renewed once a tick: a TTL under two intervals would lapse between renewals."""
        election = self.leader_election
        if election is not None and election.ttl < 2 * self.interval:
            raise ValueError(
                f"leader_election.ttl ({format_duration(election.ttl)}) must be at least "
                f"twice the interval ({format_duration(self.interval)})"
            )
        return self

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)
