"""A simulated fleet: nodes become ready after a boot delay (the demo, backtests, tests).

It keeps the same interface as the real backends and can be told to fail (reads,
writes, or nodes that never finish booting), so the daemon's handling of fleet
errors can be exercised without a real fleet.

Nodes are kept as their ready times in ascending order plus a count of failed boots,
so a read is a binary search, not a walk over every node (a backtest reads the fleet
twice a minute for a month).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from backends.base import Backend, BackendError, FleetState
from backends.settings import BackendSettings
from common.clock import Clock
from common.durations import Duration
from common.settings import MAX_NODES


class SimulatedBackend(BackendSettings):
    kind: Literal["simulated"]
    initial_nodes: int = Field(default=1, ge=0, le=MAX_NODES)
    boot_delay: Duration = timedelta(minutes=10)
    boot_failure_rate: float = Field(
        default=0.0, ge=0, lt=1, description="share of new nodes that never become ready"
    )
    seed: int = 0

    def connect(
        self,
        clock: Clock,
        env: Mapping[str, str],
        state_path: Path | None,
        boot_time: timedelta | None = None,
    ) -> Backend:
        return SimulatedFleet(
            clock,
            self.initial_nodes,
            self.boot_delay,
            boot_failure_rate=self.boot_failure_rate,
            seed=self.seed,
        )


class SimulatedFleet:
    name = "simulated"

    def __init__(
        self,
        clock: Clock,
        initial_nodes: int,
        boot_delay: timedelta,
        *,
        boot_failure_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.clock = clock
        self.boot_delay = boot_delay
        self.boot_failure_rate = boot_failure_rate
        self._random = random.Random(seed)
        self._ready_times: list[datetime] = [clock.now() - boot_delay] * initial_nodes
        """When each node that boots is (or will be) ready, ascending."""
        self._failed = 0
        """Nodes whose boot failed: counted, never ready."""
        self.writes = 0
        self.fail_reads = 0
        self.fail_scales = 0

    @property
    def ready_at(self) -> list[datetime | None]:
        """When each node is (or will be) ready, earliest first; None for a node whose boot
        failed (last). A copy: assign to it to change the fleet, as a person would."""
        return [*self._ready_times, *([None] * self._failed)]

    @ready_at.setter
    def ready_at(self, nodes: Iterable[datetime | None]) -> None:
        nodes = list(nodes)
        self._ready_times = sorted(t for t in nodes if t is not None)
        self._failed = len(nodes) - len(self._ready_times)

    def read(self) -> FleetState:
        if self.fail_reads:
            self.fail_reads -= 1
            raise BackendError("simulated fleet: read failed (injected)")
        ready = bisect.bisect_right(self._ready_times, self.clock.now())
        total = len(self._ready_times) + self._failed
        return FleetState(desired=total, ready=ready, pending=total - ready)

    def check(self) -> None:
        self.read()

    def scale(self, desired: int, reason: str) -> str | None:
        total = len(self._ready_times) + self._failed
        if desired == total:
            return None
        if self.fail_scales:
            self.fail_scales -= 1
            raise BackendError("simulated fleet: scale failed (injected)")
        self.writes += 1
        if desired > total:
            boot_done = self.clock.now() + self.boot_delay
            booting = 0
            for _ in range(desired - total):
                if self._random.random() < self.boot_failure_rate:
                    self._failed += 1
                else:
                    booting += 1
            # After every node already there unless the clock went back.
            at = bisect.bisect_right(self._ready_times, boot_done)
            self._ready_times[at:at] = [boot_done] * booting
        elif desired <= len(self._ready_times):
            # Failed and still-booting nodes go first: they serve nothing yet; then the
            # newest ready ones (the oldest are kept).
            del self._ready_times[desired:]
            self._failed = 0
        else:
            self._failed = desired - len(self._ready_times)
        return None
