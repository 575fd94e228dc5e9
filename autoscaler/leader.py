"""Writes to the fleet only while this daemon holds the leader lock (backends.leases),
with time to spare: a tick that ran long, or a write that retries, must not land on a
stale lease."""

from __future__ import annotations

from backends.base import Backend, BackendError, FleetState, other_autoscalers
from backends.leases import LeaderLock

WRITE_MARGIN = 1 / 3  # of the TTL: validity a backend write needs left to start


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
        """Guarded only where the backend's read acts on the fleet (nomad_cluster's ends a
        drain by terminating the instance); a read-only one reads on a stale lease."""
        if getattr(self.backend, "acts_on_read", False):
            self._must_lead("not reading (a read of this fleet advances its scale-in)")
        return self.backend.read()

    def check(self) -> None:
        self.backend.check()

    def other_autoscalers(self) -> list[str]:
        """Read-only, so not guarded: without it the active daemon of a pair never asked."""
        return other_autoscalers(self.backend)

    def scale(self, desired: int, reason: str) -> str | None:
        self._must_lead("not scaling")
        return self.backend.scale(desired, reason)

    def _must_lead(self, what: str) -> None:
        if not self.lock.is_held(self.margin_s):
            raise BackendError(
                f"{what}: this daemon's leader lease ran out during the tick "
                "(another daemon may be active now)"
            )
