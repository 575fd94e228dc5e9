"""The daemon's configuration: one YAML file with global settings and a list of pools.

Every model forbids unknown keys, so a typo is an error rather than a silently
ignored setting. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from autoscaler.capacity_check import CapacityCheck
from autoscaler.config.transport import insecure_settings, refusal_text
from autoscaler.signals.settings import SignalConfig
from backends import BackendConfig
from backends.leases import LeaderElection
from common.durations import Duration, PositiveDuration, format_duration
from common.settings import Strict
from predictors import check_kind, check_params

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PATH_LISTS = frozenset({"kubeconfig"})  # fields that may hold several paths, like $KUBECONFIG
M = TypeVar("M", bound=BaseModel)


# ---- metrics sources -------------------------------------------------------------


SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an RFC 9110 token


class BasicAuth(Strict):
    """HTTP basic auth; the password comes from the environment or a file, never inline."""

    username: str = Field(min_length=1)
    password_env: str | None = Field(default=None, min_length=1)
    password_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "a password is never written in the config: give password_env (a variable "
                "name) or password_file"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> BasicAuth:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        return self


class ClientCertificate(Strict):
    """A TLS client certificate and its (unencrypted) key, both PEM files."""

    cert_file: Path
    key_file: Path


class PrometheusMetrics(Strict):
    kind: Literal["prometheus"] = "prometheus"
    url: str = "http://127.0.0.1:9090"
    timeout: PositiveDuration = timedelta(seconds=10)
    max_staleness: PositiveDuration = Field(
        default=timedelta(minutes=5),
        description="newest sample older than this is stale: the tick holds",
    )
    verify_tls: bool = True
    ca_file: Path | None = None
    bearer_token_env: str | None = None
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None
    client_cert: ClientCertificate | None = None
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="sent with every query, e.g. Mimir's X-Scope-OrgID; never a credential",
    )
    allow_insecure: bool = Field(
        default=False, description="accept verify_tls: false or plain http to another host"
    )

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not re.match(HEADER_NAME, name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if name.lower() in SECRET_HEADERS:
                raise ValueError(
                    f"{name} carries a credential, which is never written in the config: use "
                    "basic_auth (password_env/password_file) or bearer_token_env/bearer_token_file"
                )
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} must be one line")
        return headers

    @model_validator(mode="after")
    def _one_authorization(self) -> PrometheusMetrics:
        sources = [
            name
            for name in ("bearer_token_env", "bearer_token_file", "basic_auth")
            if getattr(self, name) is not None
        ]
        if len(sources) > 1:
            raise ValueError(f"give at most one of {', '.join(sources)}: one Authorization header")
        return self


class ReplayMetrics(Strict):
    """A per-minute trace CSV (timestamp,requests) replayed as the metrics source."""

    kind: Literal["replay"]
    trace: Path
    max_staleness: PositiveDuration = timedelta(minutes=5)


MetricsConfig = Annotated[PrometheusMetrics | ReplayMetrics, Field(discriminator="kind")]


# ---- pools -----------------------------------------------------------------------


class HistoryMask(Strict):
    """A span the forecaster must not learn from (an outage, a launch spike)."""

    name: str = Field(min_length=1)
    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "needs a UTC offset, such as 2026-11-02T10:00:00+05:30 or ...Z; a time "
                "without one is ambiguous"
            )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> HistoryMask:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class DemandQuery(Strict):
    query: str = Field(description="PromQL giving the pool's demand in requests per second")
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


class PredictorConfig(Strict):
    """A predictor and its parameters, checked against its constructor's (predictors/)."""

    kind: str = "seasonal"
    params: dict[str, Any] = Field(default_factory=dict)
    margin: Literal["band", "loop"] = Field(
        default="band",
        description="band: size for the forecaster's upper band as it is; loop: scale the "
        "band by a margin that the pool's own loop, replayed over the last days, needs to "
        "end at the service target (autoscaler/calibration.py)",
    )

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        return check_kind(kind)  # the registry, not a copy of its names

    @model_validator(mode="after")
    def _known_params(self) -> PredictorConfig:
        check_params(self.kind, self.params)  # a ValueError names each bad parameter
        return self


class Schedule(Strict):
    """A named window of the week with a floor (and optional ceiling) on the node count."""

    name: str
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS))
    date: dt.date | None = Field(
        default=None,
        description="a one-off window on this local date (a campaign) instead of weekdays",
    )
    start: time
    end: time
    timezone: str = "UTC"
    min_nodes: int = Field(ge=0)
    max_nodes: int | None = Field(default=None, ge=0)
    lead_time: Duration = timedelta(0)

    @field_validator("days", mode="before")
    @classmethod
    def _expand_days(cls, value: Any) -> list[str]:
        return expand_days(value)

    @model_validator(mode="before")
    @classmethod
    def _date_or_days(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("date") is not None and "days" in data:
            raise ValueError("give days (every week) or date (once), not both")
        return data

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock_text(cls, value: Any) -> Any:
        """pydantic reads 9 as 9 seconds after midnight; a person meant 09:00."""
        if isinstance(value, str | time):
            return value
        raise ValueError(f"write a time of day as 'HH:MM', such as '09:00' (got {value!r})")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _ceiling_above_floor(self) -> Schedule:
        if self.max_nodes is not None and self.max_nodes < self.min_nodes:
            raise ValueError("max_nodes must be at least min_nodes")
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class ScaleDown(Strict):
    stabilization: Duration = Field(
        default=timedelta(minutes=30),
        description="scale down only to the highest recommendation seen in this window",
    )
    max_step: int = Field(default=2, ge=1, description="nodes removed per action at most")


class ScaleUp(Strict):
    """How many nodes one scale-up may add: a GPU quota or a provider's rate limit."""

    max_step: int | None = Field(default=None, ge=1, description="nodes added per action at most")
    max_percent: float | None = Field(
        default=None,
        gt=0,
        description="nodes added per action at most, as a % of the current count (rounded "
        "up, at least 1); with max_step too, the smaller wins",
    )


class Pool(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    backend: BackendConfig
    demand: DemandQuery
    capacity: Capacity
    target_utilization: float = Field(default=0.8, gt=0, le=1)
    predictor: PredictorConfig = Field(default_factory=PredictorConfig)
    boot_time: Duration = timedelta(minutes=10)
    horizon: PositiveDuration = timedelta(minutes=15)
    min_nodes: int = Field(default=0, ge=0)
    max_nodes: int = Field(ge=0)
    spare_nodes: int = Field(
        default=0,
        ge=0,
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

    @model_validator(mode="after")
    def _coherent(self) -> Pool:
        if self.max_nodes < self.min_nodes:
            raise ValueError("max_nodes must be at least min_nodes")
        if self.horizon < self.boot_time:
            raise ValueError("horizon must be at least boot_time, or new nodes arrive too late")
        names = [s.name for s in self.signals]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"signal names must be unique; repeated: {', '.join(repeated)}")
        return self


# ---- global ----------------------------------------------------------------------


class SlackConfig(Strict):
    channel: str
    token_env: str = "SLACK_BOT_TOKEN"
    token_file: Path | None = None
    base_url: str | None = Field(
        default=None, description="Slack Web API base URL; only for tests and proxies"
    )
    timeout: PositiveDuration = timedelta(seconds=5)
    allow_insecure: bool = Field(
        default=False, description="accept a plain http base_url to another host"
    )


class TelemetryConfig(Strict):
    """Self-metrics at /metrics and a health check at /healthz."""

    listen: str = Field(
        default="127.0.0.1:9464",
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="host:port; loopback by default, so only the ops box can scrape it",
    )
    unhealthy_after: PositiveDuration = Field(
        default=timedelta(minutes=5),
        description="/healthz fails after this long without a fully successful tick",
    )

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        port = int(value.rpartition(":")[2])
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range; use 1 to 65535")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


class DigestConfig(Strict):
    """The daily digest on Slack: each pool's day (cost, service, forecast error, actions)."""

    at: time = Field(default=time(9, 0), description="local time the digest is sent")
    timezone: str = "UTC"
    currency: str = Field(default="USD", min_length=1, max_length=8)
    plot: bool = Field(default=True, description="a PNG of each pool's day in the thread")

    @field_validator("at", mode="before")
    @classmethod
    def _clock_text(cls, value: Any) -> Any:
        if isinstance(value, str | time):
            return value
        raise ValueError(f"write a time of day as 'HH:MM', such as '09:00' (got {value!r})")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class SimulationConfig(Strict):
    """Play the daemon on a simulated clock (the demo): `speed` simulated seconds per second."""

    start: datetime
    end: datetime
    speed: float = Field(default=3600.0, gt=0)


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


def expand_days(value: Any) -> list[str]:
    """Accept ["mon", "tue"], "mon-fri", "mon-sat,sun" or "daily"."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("expected a list of days such as [mon, tue] or a range mon-fri")
    days: list[str] = []
    for item in items:
        text = str(item).strip().lower()[:3] if "-" not in str(item) else str(item).lower()
        if text in ("dai", "daily"):
            days.extend(WEEKDAYS)
        elif "-" in text:
            first, _, last = (part.strip()[:3] for part in text.partition("-"))
            if first not in WEEKDAYS or last not in WEEKDAYS:
                raise ValueError(f"unknown day range {item!r}; use mon..sun")
            i, j = WEEKDAYS.index(first), WEEKDAYS.index(last)
            span = range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)]
            days.extend(WEEKDAYS[k] for k in span)
        elif text in WEEKDAYS:
            days.append(text)
        else:
            raise ValueError(f"unknown day {item!r}; use mon, tue, wed, thu, fri, sat, sun")
    return sorted(set(days), key=WEEKDAYS.index)


def resolve_paths(config: M, base: Path) -> M:
    """Make every relative path in the config relative to the config file's folder.

    Walks every model, so a Path field added later is covered too. `~` is the home
    folder, and a kubeconfig may list several files, as $KUBECONFIG does.
    """
    return _with_paths_resolved(config, base)


def _with_paths_resolved(model: M, base: Path) -> M:
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path):
            resolve = _resolve_path_list if name in PATH_LISTS else resolve_path
            resolved: Any = resolve(value, base)
        elif isinstance(value, BaseModel):
            resolved = _with_paths_resolved(value, base)
        elif isinstance(value, list):
            resolved = [
                _with_paths_resolved(item, base) if isinstance(item, BaseModel) else item
                for item in value
            ]
        else:
            continue
        if resolved != value:
            updates[name] = resolved
    return model.model_copy(update=updates) if updates else model


def _resolve_path_list(paths: Path, base: Path) -> Path:
    parts = [str(resolve_path(Path(p), base)) for p in str(paths).split(os.pathsep) if p]
    return Path(os.pathsep.join(parts))


def resolve_path(path: Path, base: Path) -> Path:
    """`~/x` under the home folder, `x` under `base`; an absolute path as it is."""
    if str(path).startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:  # no home folder known: leave it for whoever opens it
            return path
    return path if path.is_absolute() else base / path
