"""Fleet backends behind one small interface (see backends.base).

`make_backend` is the only place that knows which module serves which `kind`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from autoscaler.clock import Clock
from autoscaler.config import BackendConfig, NomadJobBackend, SimulatedBackend
from backends.base import Backend, BackendError, FleetState


def make_backend(
    config: BackendConfig, clock: Clock, env: Mapping[str, str] = os.environ
) -> Backend:
    if isinstance(config, SimulatedBackend):
        from backends.simulated import SimulatedFleet

        return SimulatedFleet(clock, config.initial_nodes, config.boot_delay)
    if isinstance(config, NomadJobBackend):
        from backends.nomad_job import NomadJobGroup

        return NomadJobGroup(config, env=env)
    raise ValueError(f"no backend for kind {config.kind!r}")


__all__ = ["Backend", "BackendError", "FleetState", "make_backend"]
