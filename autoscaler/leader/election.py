"""One active daemon per fleet: a lock with a TTL, held in a store the fleet already has.

Two daemons (an ops box and its standby) run the same config; each tick both call
`acquire_or_renew`, and only the one holding the lock acts. The holder's lease is
good until `ttl` after the start of its last successful renewal, by its own
monotonic clock: the store expires it no sooner (Nomad starts its TTL timer when
the request arrives; a Kubernetes standby starts counting when it sees the
renewal), so the standby can never take over while the holder still thinks it
holds the lock. A write needs `ttl / 3` of validity left (`WRITE_MARGIN`), so a
tick that ran long, or a write that retries, does not land on a stale lease.

Fail safe: when the store cannot be reached, nobody acts (a LeaderLockError);
never both. Implementations: autoscaler.leader.nomad (Nomad 1.7+ variable locks)
and autoscaler.leader.kubernetes (coordination.k8s.io/v1 Lease, client-go's rules).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from autoscaler.config.schema import LeaderElection
from backends.base import Backend, BackendError, FleetState

log = logging.getLogger(__name__)

WRITE_MARGIN = 1 / 3  # of the TTL: validity a backend write needs left to start


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


class LeaderGuardedBackend:
    """A backend whose writes happen only while this daemon's lease has time left."""

    def __init__(self, backend: Backend, lock: LeaderLock, margin_s: float) -> None:
        self.backend = backend
        self.lock = lock
        self.margin_s = margin_s
        self.name = backend.name

    def __repr__(self) -> str:
        return f"LeaderGuardedBackend({self.backend!r})"

    def read(self) -> FleetState:
        return self.backend.read()

    def check(self) -> None:
        self.backend.check()

    def scale(self, desired: int, reason: str) -> str | None:
        if not self.lock.is_held(self.margin_s):
            raise BackendError(
                "not scaling: this daemon's leader lease ran out during the tick "
                "(another daemon may be active now)"
            )
        return self.backend.scale(desired, reason)


def make_leader_lock(
    config: LeaderElection,
    env: Mapping[str, str] = os.environ,
    monotonic: Callable[[], float] = time.monotonic,
) -> LeaderLock:
    """The lock for a `leader_election:` block; modules load only when used."""
    identity = config.identity or default_identity()
    if config.kind == "nomad":
        from autoscaler.leader.nomad import NomadVariableLock, nomad_lock_connection

        return NomadVariableLock(
            nomad_lock_connection(config, env),
            config.name,
            ttl_s=config.ttl.total_seconds(),
            identity=identity,
            monotonic=monotonic,
        )
    from autoscaler.leader.kubernetes import KubernetesLease, kubernetes_lock_settings

    return KubernetesLease(
        lambda: kubernetes_lock_settings(config, env),
        config.name,
        ttl_s=config.ttl.total_seconds(),
        identity=identity,
        timeout_s=config.timeout.total_seconds(),
        monotonic=monotonic,
    )
