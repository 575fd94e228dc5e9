"""One active daemon per fleet: a lock with a TTL, held in a store the fleet already has.

Two daemons (an ops box and its standby) run the same config; each tick both call
`acquire_or_renew`, and only the one holding the lock acts. The holder's lease is
good until `ttl` after the start of its last successful renewal, by its own
monotonic clock: the store expires it no sooner (Nomad starts its TTL timer when
the request arrives; a Kubernetes standby starts counting when it sees the
renewal), so the standby can never take over while the holder still thinks it
holds the lock. A write needs `ttl / 3` of validity left (autoscaler.leader), so a
tick that ran long, or a write that retries, does not land on a stale lease.

Fail safe: when the store cannot be reached, nobody acts (a LeaderLockError);
never both. Implementations: backends.nomad_lock (Nomad 1.7+ variable locks)
and backends.kubernetes_lease (coordination.k8s.io/v1 Lease, client-go's rules).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal, Protocol

from pydantic import Field, model_validator

from backends.base import BackendError
from backends.kubernetes_credentials import (
    kubernetes_name_problem,
    kubernetes_namespace_problem,
)
from backends.nomad_connection import nomad_address_findings
from backends.nomad_names import nomad_namespace_problem
from common.durations import Duration, PositiveDuration
from common.extras import needs_extra
from common.settings import ApiUrl, EnvName, Strict

log = logging.getLogger(__name__)


class LeaderElection(Strict):
    """Two daemons for one fleet: only the holder of this lock (a Nomad variable lock,
    Nomad 1.7+, or a Kubernetes Lease) acts; the other stands by and takes over when
    the holder stops renewing it for `ttl`."""

    kind: Literal["nomad", "kubernetes"]
    name: str = Field(
        default="gpu-autoscaler-leader",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_~/.-]{0,127}$",
        description="Nomad variable path, or Lease name",
    )
    namespace: str | None = Field(default=None, description="default: Nomad's default / context's")
    ttl: Duration = Field(
        default=timedelta(seconds=30), description="a dead holder is replaced after about this"
    )
    identity: str | None = Field(
        default=None,
        description="default: hostname:pid; each replica its own (two of one identity both lead)",
    )
    timeout: PositiveDuration = timedelta(seconds=5)
    verify_tls: bool = True
    allow_insecure: bool = False
    # Nomad
    address: ApiUrl | None = Field(default=None, description="Nomad; defaults to $NOMAD_ADDR")
    region: str | None = None
    token_env: EnvName = "NOMAD_TOKEN"
    token_file: Path | None = Field(default=None, description="Nomad; read instead of token_env")
    # Kubernetes
    context: str | None = None
    kubeconfig: Path | None = None
    in_cluster: bool | None = None

    @model_validator(mode="after")
    def _a_name_the_store_takes(self) -> LeaderElection:
        """A name the store refuses failed the lock at every tick: no daemon ever led."""
        problem = (
            nomad_variable_path_problem(self.name)
            if self.kind == "nomad"
            else kubernetes_name_problem(self.name)
        )
        if problem is not None:
            raise ValueError(f"name: {problem}; the lock could never be taken")
        if self.namespace is not None:
            problem = (
                nomad_namespace_problem(self.namespace)
                if self.kind == "nomad"
                else kubernetes_namespace_problem(self.namespace)
            )
            if problem is not None:
                raise ValueError(f"namespace: {problem}; the lock could never be taken")
        return self

    @model_validator(mode="after")
    def _ttl_in_range(self) -> LeaderElection:
        low = timedelta(seconds=10 if self.kind == "nomad" else 1)
        if not low <= self.ttl <= timedelta(hours=24):
            raise ValueError(f"leader_election.ttl must be between {low.seconds}s and 24h")
        return self

    def insecure_findings(self, env: Mapping[str, str]) -> list[str]:
        """The Nomad lock carries the Nomad ACL token; the Lease, the Kubernetes credentials."""
        if self.allow_insecure:
            return []
        where = "leader_election"
        found = [] if self.verify_tls else [f"{where}: verify_tls: false"]
        if self.kind == "nomad":
            found += nomad_address_findings(self.address, where, env)
        return found


_NOMAD_VARIABLE_PATH = re.compile(r"[a-zA-Z0-9_~/-]{1,128}")
"""Nomad's validVariablePath (nomad/structs/variables.go): no '.', no '@'."""


def nomad_variable_path_problem(path: str) -> str | None:
    """Why Nomad refuses a variable at this path (its validatePath, which answers a lock's
    acquire with HTTP 500 'invalid path'); None where it takes it."""
    if not _NOMAD_VARIABLE_PATH.fullmatch(path):
        return (
            f"{path!r} is no Nomad variable path: letters, digits, '-', '_', '~' and '/' "
            "(no '.'), at most 128"
        )
    parts = path.split("/")
    if parts[0] != "nomad" or (len(parts) > 1 and parts[1] == "jobs"):
        return None
    if len(parts) == 3 and parts[1] == "job-templates":
        return None
    return f"{path!r} is reserved by Nomad (under nomad/ only nomad/jobs/... is free)"


class LeaderLockError(BackendError):
    """The lock store could not be reached or refused us; the text is safe to log."""


class LeaderLock(Protocol):
    identity: str
    ttl_s: float

    def acquire_or_renew(self) -> bool:
        """True while this daemon holds the lock; raises LeaderLockError when unsure."""
        ...

    def is_held(self, margin: float = 0.0) -> bool:
        """Held for at least `margin` more seconds, by this process's monotonic clock."""
        ...

    def release(self) -> None:
        """Give the lock up now (on shutdown), so the standby need not wait out the TTL."""
        ...

    def holder(self) -> str | None:
        """Who holds the lock, as last seen; None when unknown or free."""
        ...

    def peek(self) -> str | None:
        """Read the lock's record without taking it (`validate --check-backends`): the
        holder it names, None when there is none yet; LeaderLockError when unreachable."""
        ...


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaseTimer:
    """The holder's view of its lease: valid until `ttl` after its last renewal began."""

    def __init__(self, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.monotonic = monotonic
        self.valid_until: float | None = None

    def renewed(self, started: float) -> None:
        self.valid_until = started + self.ttl_s

    def lost(self) -> None:
        self.valid_until = None

    def is_held(self, margin: float = 0.0) -> bool:
        return self.valid_until is not None and self.monotonic() + margin < self.valid_until


def make_leader_lock(
    config: LeaderElection,
    env: Mapping[str, str] = os.environ,
    monotonic: Callable[[], float] = time.monotonic,
) -> LeaderLock:
    """The lock for a `leader_election:` block; modules load only when used."""
    identity = config.identity or default_identity()
    if config.kind == "nomad":
        from backends.nomad_lock import NomadVariableLock, nomad_lock_connection

        return NomadVariableLock(
            nomad_lock_connection(config, env),
            config.name,
            ttl_s=config.ttl.total_seconds(),
            identity=identity,
            monotonic=monotonic,
        )
    with needs_extra("leader_election kind kubernetes"):
        from backends.kubernetes_lease import KubernetesLease, kubernetes_lock_settings

    return KubernetesLease(
        lambda: kubernetes_lock_settings(config, env),
        config.name,
        ttl_s=config.ttl.total_seconds(),
        identity=identity,
        timeout_s=config.timeout.total_seconds(),
        monotonic=monotonic,
    )
