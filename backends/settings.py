"""What every backend's settings model shares: how API calls are made, and the
insecure-transport check each backend extends with its own connections."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pydantic import Field

from common.clock import Clock
from common.durations import PositiveDuration
from common.settings import Strict

if TYPE_CHECKING:
    from backends.base import Backend


class Fleet(NamedTuple):
    """What a backend block scales, in words ("Auto Scaling group 'gpu'"), and where that
    name lives (API, region, namespace): equal for two blocks that write one fleet."""

    what: str
    where: tuple[object, ...]

    def key(self) -> str:
        """A short digest that tells fleets apart, for a state file (it shows no address)."""
        return hashlib.sha256(repr(tuple(self)).encode()).hexdigest()[:16]


class BackendSettings(Strict):
    """A pool's `backend:` block. Each backend module defines one, with its own `kind`,
    and registers it in backends/__init__.py."""

    def fleet(self) -> Fleet | None:
        """The fleet these settings write, as far as they tell: two pools writing one
        would fight, each taking the other's counts for changes by hand. None: a fleet
        of its own (simulated)."""
        return None

    def fleet_key(self) -> str | None:
        """fleet()'s key (Fleet.key), for a state file; None: a fleet of its own."""
        fleet = self.fleet()
        return None if fleet is None else fleet.key()

    def insecure_findings(self, where: str, env: Mapping[str, str]) -> list[str]:
        """Connections this backend would make without TLS verification or in clear."""
        return []

    def connect(
        self,
        clock: Clock,
        env: Mapping[str, str],
        state_path: Path | None,
        boot_time: timedelta | None = None,
    ) -> Backend:
        """The backend these settings describe. `state_path` is where a backend with work
        in flight across ticks (a node drain) keeps it, so that it survives a restart;
        `boot_time` the pool's, past which a backend that can tell why nodes do not come
        (an Auto Scaling group's failed launches) asks; None: it does not ask."""
        raise NotImplementedError


class ApiCalls(BackendSettings):
    """How every fleet API call is made: a timeout, and retries with backoff on 5xx."""

    timeout: PositiveDuration = timedelta(seconds=10)
    retries: int = Field(default=3, ge=0, le=10)


class TlsApiCalls(ApiCalls):
    verify_tls: bool = True
    allow_insecure: bool = Field(
        default=False, description="accept verify_tls: false or plain http to another host"
    )

    def insecure_findings(self, where: str, env: Mapping[str, str]) -> list[str]:
        if self.allow_insecure:
            return []
        found = [] if self.verify_tls else [f"{where}: verify_tls: false"]
        return found + self.plain_findings(where, env)

    def plain_findings(self, where: str, env: Mapping[str, str]) -> list[str]:
        """The backend's own endpoints that would be plain http to another host."""
        return []
