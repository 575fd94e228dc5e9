"""Fleet backends behind one small interface (see backends.base).

`make_backend` is the only place that knows which module serves which `kind`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from autoscaler.config.schema import (
    AwsAsgBackend,
    BackendConfig,
    KubernetesBackend,
    NomadClusterBackend,
    NomadJobBackend,
    SimulatedBackend,
)
from backends.base import Backend, BackendError, FleetState
from common.clock import Clock


def make_backend(
    config: BackendConfig,
    clock: Clock,
    env: Mapping[str, str] = os.environ,
    state_path: Path | None = None,
) -> Backend:
    """The backend for a pool's `backend:` block; modules load only when used.

    `state_path` is where a backend with work in flight across ticks (a node drain)
    keeps it, so that it survives a restart.
    """
    if isinstance(config, SimulatedBackend):
        from backends.simulated import SimulatedFleet

        return SimulatedFleet(
            clock,
            config.initial_nodes,
            config.boot_delay,
            boot_failure_rate=config.boot_failure_rate,
            seed=config.seed,
        )
    if isinstance(config, NomadJobBackend):
        from backends.nomad_job import NomadJobGroup

        return NomadJobGroup(config, env=env)
    if isinstance(config, NomadClusterBackend):
        from backends.nomad_cluster import NomadCluster

        return NomadCluster(config, env=env, state_path=state_path, clock=clock)
    if isinstance(config, KubernetesBackend):
        from backends.kubernetes import KubernetesWorkload

        return KubernetesWorkload(config, env=env)
    if isinstance(config, AwsAsgBackend):
        from backends.aws_asg import AutoScalingGroup

        return AutoScalingGroup(config, env=env)
    raise ValueError(f"no backend for kind {config.kind!r}")


__all__ = ["Backend", "BackendError", "FleetState", "make_backend"]
