"""Builds the daemon's collaborators from a validated Config (the only wiring code).

`autoscaler run` and `autoscaler validate` both come through `build_runtime`, so the two
cannot drift: whatever would stop the daemon at start (a predictor's parameters, a time
zone, a backend's settings, a capacity profile, a replay trace, a Slack token, the leader
lock's settings) stops `validate` too, located at the config key it comes from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pandas as pd
from pydantic import BaseModel

from autoscaler.calibration import with_margin
from autoscaler.config.capacity import boot_time_of, per_node_rps_of
from autoscaler.config.fleets import watched_fleets
from autoscaler.config.loader import main_file
from autoscaler.config.metrics_source import PrometheusMetrics, ReplayMetrics
from autoscaler.config.pool_dir import read_pool_dir
from autoscaler.config.problems import ConfigError, Loc, Problem, field_name
from autoscaler.config.schema import Config, Pool
from autoscaler.config.transport import insecure_settings, refusal_text
from autoscaler.config.yaml_reader import YamlDocument, read_yaml
from autoscaler.decision_log import DecisionLog
from autoscaler.metrics import MetricsSource
from autoscaler.metrics_auth import CredentialError
from autoscaler.metrics_prometheus import PrometheusSource
from autoscaler.notify import DryRunNotifier, LogNotifier, Notifier
from autoscaler.notify_queue import QueuedNotifier
from autoscaler.notify_slack import SlackNotifier
from autoscaler.plan import limits_of
from autoscaler.pool_predictor import make_pool_predictor
from autoscaler.replay import read_trace_rows
from autoscaler.replay_source import TraceReplaySource
from autoscaler.state import ReadOnlyStateStore, StateStore
from autoscaler.tick import PoolTicker
from backends import make_backend
from backends.base import Backend
from backends.leases import LeaderLock, make_leader_lock
from common.clock import Clock, SimulatedClock, SystemClock
from common.durations import format_duration
from common.secrets import install_log_redaction, remember_environment, remember_url
from common.transport import proxy_finding
from predictors import Predictor

T = TypeVar("T")


@dataclass
class Runtime:
    config: Config
    clock: Clock
    metrics: MetricsSource
    notifier: Notifier
    tickers: list[PoolTicker]
    state_store: StateStore
    leader_lock: LeaderLock | None = None
    """Built (not taken) from `leader_election`; the daemon takes it, a dry run never."""
    decision_log: DecisionLog | None = None
    """The pools' shared decision log (its trouble is the daemon's to alert on)."""


def make_clock(config: Config) -> Clock:
    if config.simulation is not None:
        return SimulatedClock(config.simulation.start)
    return SystemClock()


def make_metrics(config: Config, clock: Clock, env: Mapping[str, str]) -> MetricsSource:
    if isinstance(config.metrics, ReplayMetrics):
        trace, row_minutes = _replayed_trace(config, config.metrics)
        return TraceReplaySource(trace, clock, row_minutes)
    assert isinstance(config.metrics, PrometheusMetrics)
    return PrometheusSource(config.metrics, env=env)


def prometheus_source(config: Config, *, source: Path, env: Mapping[str, str]) -> PrometheusSource:
    """The config's Prometheus client alone (`backtest --config`: no backend, Slack or lock
    is built), refused as `run` refuses it: a credential that cannot be read is a
    ConfigError located at its key, where a bare one named no file or line; a plain-http
    proxy from the environment that would relay its credentials stops it, as at start."""
    assert isinstance(config.metrics, PrometheusMetrics)
    metrics = config.metrics
    startup = _Startup(main_file(source), env)
    if not metrics.allow_insecure and (relayed := proxy_finding(metrics.url, "metrics: url", env)):
        startup.add((), refusal_text(relayed))
        raise ConfigError(startup.problems)
    client = startup.build(("metrics",), lambda: PrometheusSource(metrics, env=env))
    if client is None:
        raise ConfigError(startup.problems)
    return client


def _replayed_trace(config: Config, metrics: ReplayMetrics) -> tuple[pd.Series, int]:
    """The trace to replay and its row minutes; ValueError where a simulation's span holds
    none of it (every tick would hold for want of a sample: a wrong year or file, not a run)."""
    trace, row_minutes = read_trace_rows(metrics.trace)
    simulation = config.simulation
    if simulation is None or trace.empty:
        return trace, row_minutes
    first, last = trace.index[0], trace.index[-1]
    if first > simulation.end or last + metrics.max_staleness < simulation.start:
        raise ValueError(
            f"{metrics.trace} covers {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC, and "
            f"the simulation ({simulation.start:%Y-%m-%d %H:%M} to "
            f"{simulation.end:%Y-%m-%d %H:%M}) none of it: every tick would hold"
        )
    return trace, row_minutes


def make_notifier(config: Config, env: Mapping[str, str]) -> Notifier:
    """Slack's sender behind its queue (autoscaler.notify_queue: a tick never waits on
    Slack, and a tick's news goes in few posts), or the log without Slack."""
    if config.slack is None:
        return LogNotifier()
    return QueuedNotifier(SlackNotifier.from_config(config.slack, env))


@dataclass
class _Startup:
    """Collects what stops a config from starting, each at the key it comes from."""

    source: Path
    env: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)
    _document: YamlDocument | None = None

    @contextmanager
    def at(self, loc: Loc) -> Iterator[None]:
        try:
            yield
        except ConfigError as exc:  # already located in another file (a capacity profile)
            self.problems.extend(exc.problems)
        except CredentialError as exc:  # names its own key, e.g. metrics.basic_auth.password_env
            self.add(exc.loc, exc.reason)
        except (ValueError, OSError, LookupError) as exc:
            self.add(*self._deeper(loc, _reason(exc)))

    def build(self, loc: Loc, make: Callable[[], T]) -> T | None:
        with self.at(loc):
            return make()
        return None

    def add(self, loc: Loc, message: str) -> None:
        """A problem at `loc` of the config; a pool_dir pool's is named within its file."""
        path, document, inner = self._holder(loc)
        line = (document.line_of(inner) or 1) if document is not None and loc else None
        self.problems.append(Problem(path, line, field_name(inner), message))

    def _deeper(self, loc: Loc, message: str) -> tuple[Loc, str]:
        """A message that starts with keys of the block ("params: timezone: unknown zone")
        is put at those keys (loc + params.timezone: "unknown zone")."""
        _, document, inner = self._holder(loc)
        while document is not None:
            key, colon, rest = message.partition(": ")
            if not colon or not key.isidentifier() or (*inner, key) not in document.lines:
                break
            loc, inner, message = (*loc, key), (*inner, key), rest
        return loc, message

    def _holder(self, loc: Loc) -> tuple[Path, YamlDocument | None, Loc]:
        """The file `loc` was written in, its document, and `loc` within it: the main file,
        or a pool_dir file for a pool that came from one."""
        main = self._main()
        in_pool_file = loc[:1] == ("pools",) and len(loc) > 1 and ("pools", loc[1])
        if main is not None and in_pool_file and in_pool_file not in main.lines:
            pool_file = self._pool_file(main, loc[1])
            if pool_file is not None:
                return pool_file.path, pool_file, loc[2:]
        return self.source, main, loc

    def _main(self) -> YamlDocument | None:
        if self._document is None:
            try:
                self._document = read_yaml(self.source, env=self.env)
            except ConfigError:
                return None
        return self._document

    def _pool_file(self, main: YamlDocument, index: object) -> YamlDocument | None:
        listed = main.data.get("pools") if isinstance(main.data, dict) else None
        before = len(listed) if isinstance(listed, list) else 0
        pools, _ = read_pool_dir(main, self.env)
        if not isinstance(index, int) or not 0 <= index - before < len(pools):
            return None
        try:
            return read_yaml(pools[index - before][0], env=self.env)
        except ConfigError:
            return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc) or type(exc).__name__


def build_runtime(
    config: Config,
    *,
    source: Path,
    dry_run: bool,
    clock: Clock | None = None,
    env: Mapping[str, str] = os.environ,
    notifier: Notifier | None = None,
) -> Runtime:
    """Every collaborator the daemon needs, or a ConfigError listing all that stop it.

    `source` is the config file, for locating problems. A dry run builds (and so checks)
    all the same things, then swaps in what has no side effects.
    """
    startup = _Startup(main_file(source), env)
    remember_secrets(config, env)
    insecure = insecure_settings(config, env)  # again, now with NOMAD_ADDR and friends
    if insecure:
        startup.add((), refusal_text(insecure))
    clock = clock or make_clock(config)
    replay = isinstance(config.metrics, ReplayMetrics)
    metrics_key: Loc = ("metrics", "trace") if replay else ("metrics",)
    metrics = startup.build(metrics_key, lambda: make_metrics(config, clock, env))
    slack_key = "token_file" if config.slack and config.slack.token_file else "token_env"
    real_notifier = startup.build(
        ("slack", slack_key), lambda: notifier or make_notifier(config, env)
    )
    lock = None
    if config.leader_election is not None:
        lock = startup.build(
            ("leader_election",), lambda: make_leader_lock(config.leader_election, env)
        )
    parts = _pool_parts(config, startup, clock, env, dry_run)
    _check_written_paths(config, startup)
    if startup.problems:
        raise ConfigError(startup.problems)
    assert metrics is not None and real_notifier is not None
    # A dry run changes nothing outside its own output: no Slack, no decision log, no
    # state, and no backend record of a scale-in (so nothing in flight is advanced).
    told = (notifier or DryRunNotifier()) if dry_run else real_notifier
    decision_log = DecisionLog(None if dry_run else config.decision_log)
    max_staleness: timedelta = config.metrics.max_staleness
    store = (ReadOnlyStateStore if dry_run else StateStore)(state_path(config))
    weeks = None if config.simulation is not None else store  # a simulation starts afresh
    watched = watched_fleets(config.pools)
    tickers = [
        PoolTicker(
            part.pool,
            part.backend,
            part.per_node_rps,
            metrics,
            max_staleness,
            told,
            decision_log,
            dry_run,
            predictor=part.predictor,
            weeks=weeks,
            written_by=watched.get(part.pool.name),
        )
        for part in parts
    ]
    lock = None if dry_run else lock
    return Runtime(config, clock, metrics, told, tickers, store, lock, decision_log)


def _check_written_paths(config: Config, startup: _Startup) -> None:
    """A path the daemon writes to that is already of the other kind (a folder where the
    decision log goes, `decision_log: ""` among them; a file where the state folder
    goes) can never be written: refused here, as `validate` would, rather than a daemon
    that runs on saying at every tick that it cannot write. One that does not exist yet
    is made at the first write; one that fails then (a full or read-only disk) is said
    and run on (README: Bounded)."""
    if config.decision_log is not None and config.decision_log.is_dir():
        startup.add(("decision_log",), f"{config.decision_log} is a folder: give a file's path")
    if config.state_dir.exists() and not config.state_dir.is_dir():
        startup.add(("state_dir",), f"{config.state_dir} is not a folder")


@dataclass(frozen=True)
class _PoolParts:
    pool: Pool
    predictor: Predictor
    per_node_rps: float
    backend: Backend


def _pool_parts(
    config: Config, startup: _Startup, clock: Clock, env: Mapping[str, str], dry_run: bool
) -> list[_PoolParts]:
    """What each pool's ticker is built from; a pool with a part that fails is noted."""
    parts = []
    for index, pool in enumerate(config.pools):
        here: Loc = ("pools", index)
        predictor = startup.build(
            (*here, "predictor"),
            lambda pool=pool: make_pool_predictor(pool),
        )
        capacity = pool.capacity
        per_node_rps = None
        if capacity.profile is not None and not capacity.profile.exists():
            startup.add(
                (*here, "capacity", "profile"),
                f"capacity profile {capacity.profile} not found; run gpu-bench to write one, "
                "or give per_node_rps",
            )
        elif capacity.profile is not None and capacity.profile.is_dir():
            # `profile: ""` (an unset ${VAR:-}) is the config's own folder: read, it was
            # "FOLDER: cannot read file", naming neither the pool nor the line
            startup.add(
                (*here, "capacity", "profile"),
                f"capacity profile {capacity.profile} is a folder: give the profile file's path",
            )
        else:
            per_node_rps = startup.build(
                (*here, "capacity"), lambda capacity=capacity: per_node_rps_of(capacity)
            )
            pool = _with_startup(pool, startup, here)
        state = _backend_state(config, pool.name, dry_run)
        backend = startup.build(
            (*here, "backend"),
            lambda pool=pool, state=state: make_backend(
                pool.backend, clock, env, state, pool.boot_time
            ),
        )
        if predictor is None or per_node_rps is None or backend is None:
            continue
        predictor = with_margin(pool, predictor, per_node_rps, limits_of(pool))
        parts.append(_PoolParts(pool, predictor, per_node_rps, backend))
    return parts


def _with_startup(pool: Pool, startup: _Startup, here: Loc) -> Pool:
    """The pool with its profile's start-up time in its boot time, when it asks for that."""
    if not pool.capacity.startup_in_boot_time:
        return pool
    boot = startup.build((*here, "capacity"), lambda: boot_time_of(pool))
    if boot is None:
        return pool
    if pool.horizon < boot:
        startup.add(
            (*here, "horizon"),
            f"horizon ({format_duration(pool.horizon)}) must be at least boot_time plus the "
            f"profile's start-up time ({format_duration(boot)})",
        )
    return pool.model_copy(update={"boot_time": boot})


def remember_secrets(config: Config, env: Mapping[str, str]) -> None:
    """Every credential this process may send, so that no output shows it (common.secrets):
    variables named like credentials, passwords in URLs of the environment and the config.
    Each client also notes the secrets it reads itself (tokens from files, kubeconfigs)."""
    install_log_redaction()
    remember_environment(env)
    for text in _strings(config):
        if "://" in text:
            remember_url(text)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in _strings(getattr(value, name))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


BACKEND_STATE = ".backend.json"
"""`<state_dir>/<pool>` and this: where a pool's backend keeps its work in flight."""


def _backend_state(config: Config, pool: str, dry_run: bool) -> Path | None:
    """Where a backend keeps work in flight across ticks (a node drain); none in a dry run."""
    return None if dry_run else config.state_dir / f"{pool}{BACKEND_STATE}"


def orphaned_drains(config: Config) -> dict[str, Path]:
    """Scale-in records (a drain in flight, backends.nomad_cluster) of pools no longer in
    the config, by pool name: a pool renamed or removed mid-drain leaves its nodes
    drained, ineligible and counted by its group, with no tick left to finish them. Said,
    never touched: whose nodes they are is a person's call."""
    names = {pool.name for pool in config.pools}
    try:
        found = sorted(config.state_dir.glob(f"*{BACKEND_STATE}"))
    except OSError:
        return {}
    by_pool = {path.name.removesuffix(BACKEND_STATE): path for path in found}
    return {pool: path for pool, path in by_pool.items() if pool not in names}


def state_path(config: Config) -> Path:
    return config.state_dir / "state.json"
