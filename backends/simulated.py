"""A simulated fleet: nodes become ready after a boot delay (the demo, backtests, tests).

It keeps the same interface as the real backends and can be told to fail, so the
daemon's handling of fleet errors can be exercised without a real fleet.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from autoscaler.clock import Clock
from backends.base import BackendError, FleetState


class SimulatedFleet:
    name = "simulated"

    def __init__(self, clock: Clock, initial_nodes: int, boot_delay: timedelta) -> None:
        self.clock = clock
        self.boot_delay = boot_delay
        start = clock.now() - boot_delay
        self.ready_at: list[datetime] = [start] * initial_nodes
        self.writes = 0
        self.fail_reads = 0
        self.fail_scales = 0

    def read(self) -> FleetState:
        if self.fail_reads:
            self.fail_reads -= 1
            raise BackendError("simulated fleet: read failed (injected)")
        now = self.clock.now()
        ready = sum(1 for t in self.ready_at if t <= now)
        return FleetState(
            desired=len(self.ready_at), ready=ready, pending=len(self.ready_at) - ready
        )

    def scale(self, desired: int, reason: str) -> None:
        if desired == len(self.ready_at):
            return
        if self.fail_scales:
            self.fail_scales -= 1
            raise BackendError("simulated fleet: scale failed (injected)")
        self.writes += 1
        if desired > len(self.ready_at):
            boot_done = self.clock.now() + self.boot_delay
            self.ready_at.extend([boot_done] * (desired - len(self.ready_at)))
        else:
            # The newest nodes go first: a node still booting is the cheapest to give up.
            self.ready_at = sorted(self.ready_at)[:desired]
