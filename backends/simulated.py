"""A simulated fleet: nodes become ready after a boot delay (the demo, backtests, tests).

It keeps the same interface as the real backends and can be told to fail (reads,
writes, or nodes that never finish booting), so the daemon's handling of fleet
errors can be exercised without a real fleet.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from autoscaler.clock import Clock
from backends.base import BackendError, FleetState


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
        start = clock.now() - boot_delay
        self.ready_at: list[datetime | None] = [start] * initial_nodes
        """When each node is (or will be) ready; None for a node whose boot failed."""
        self.writes = 0
        self.fail_reads = 0
        self.fail_scales = 0

    def read(self) -> FleetState:
        if self.fail_reads:
            self.fail_reads -= 1
            raise BackendError("simulated fleet: read failed (injected)")
        now = self.clock.now()
        ready = sum(1 for t in self.ready_at if t is not None and t <= now)
        total = len(self.ready_at)
        return FleetState(desired=total, ready=ready, pending=total - ready)

    def check(self) -> None:
        self.read()

    def scale(self, desired: int, reason: str) -> None:
        if desired == len(self.ready_at):
            return
        if self.fail_scales:
            self.fail_scales -= 1
            raise BackendError("simulated fleet: scale failed (injected)")
        self.writes += 1
        if desired > len(self.ready_at):
            boot_done = self.clock.now() + self.boot_delay
            for _ in range(desired - len(self.ready_at)):
                failed = self._random.random() < self.boot_failure_rate
                self.ready_at.append(None if failed else boot_done)
        else:
            # Failed and still-booting nodes go first: they serve nothing yet.
            self.ready_at = sorted(self.ready_at, key=_boot_order)[:desired]


def _boot_order(ready_at: datetime | None) -> tuple[bool, float]:
    """Ready nodes first, oldest first; a node that never boots sorts last."""
    return (ready_at is None, ready_at.timestamp() if ready_at else 0.0)
