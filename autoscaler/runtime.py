"""Builds the daemon's collaborators from a validated Config (the only wiring code)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from autoscaler.config.capacity import per_node_rps_of
from autoscaler.config.schema import Config, PrometheusMetrics, ReplayMetrics
from autoscaler.config.transport import insecure_settings, refusal_text
from autoscaler.decision_log import DecisionLog
from autoscaler.metrics import MetricsSource, PrometheusSource
from autoscaler.notify import DryRunNotifier, LogNotifier, Notifier, SlackNotifier
from autoscaler.replay import TraceReplaySource, read_trace
from autoscaler.state import ReadOnlyStateStore, StateStore
from autoscaler.tick import PoolTicker
from backends import make_backend
from common.clock import Clock, SimulatedClock, SystemClock
from common.secrets import install_log_redaction, remember_environment, remember_url


@dataclass
class Runtime:
    config: Config
    clock: Clock
    metrics: MetricsSource
    notifier: Notifier
    tickers: list[PoolTicker]
    state_store: StateStore


def make_clock(config: Config) -> Clock:
    if config.simulation is not None:
        return SimulatedClock(config.simulation.start)
    return SystemClock()


def make_metrics(config: Config, clock: Clock, env: Mapping[str, str]) -> MetricsSource:
    if isinstance(config.metrics, ReplayMetrics):
        return TraceReplaySource(read_trace(config.metrics.trace), clock)
    assert isinstance(config.metrics, PrometheusMetrics)
    return PrometheusSource(config.metrics, env=env)


def make_notifier(config: Config, env: Mapping[str, str]) -> Notifier:
    if config.slack is None:
        return LogNotifier()
    return SlackNotifier.from_config(config.slack, env)


def build_runtime(
    config: Config,
    *,
    dry_run: bool,
    clock: Clock | None = None,
    env: Mapping[str, str] = os.environ,
    notifier: Notifier | None = None,
) -> Runtime:
    remember_secrets(config, env)
    insecure = insecure_settings(config, env)  # again, now with NOMAD_ADDR and friends
    if insecure:
        raise ValueError(refusal_text(insecure))
    clock = clock or make_clock(config)
    metrics = make_metrics(config, clock, env)
    # A dry run changes nothing outside its own output: no Slack, no decision log, no
    # state, and no backend record of a scale-in (so nothing in flight is advanced).
    notifier = notifier or (DryRunNotifier() if dry_run else make_notifier(config, env))
    decision_log = DecisionLog(None if dry_run else config.decision_log)
    max_staleness: timedelta = config.metrics.max_staleness
    tickers = [
        PoolTicker(
            pool,
            make_backend(pool.backend, clock, env, _backend_state(config, pool.name, dry_run)),
            per_node_rps_of(pool.capacity),
            metrics,
            max_staleness,
            notifier,
            decision_log,
            dry_run,
        )
        for pool in config.pools
    ]
    store = (ReadOnlyStateStore if dry_run else StateStore)(state_path(config))
    return Runtime(config, clock, metrics, notifier, tickers, store)


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


def _backend_state(config: Config, pool: str, dry_run: bool) -> Path | None:
    """Where a backend keeps work in flight across ticks (a node drain); none in a dry run."""
    return None if dry_run else config.state_dir / f"{pool}.backend.json"


def state_path(config: Config) -> Path:
    return config.state_dir / "state.json"
