"""Fleet backends behind one small interface (see backends.base).

Each backend module owns its settings model (a pool's `backend:` block, told apart by
`kind`) and how to connect; adding a backend is that module and one line below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, TypeAdapter

from backends.aws_asg import AwsAsgBackend
from backends.base import Backend, BackendError, FleetState
from backends.kubernetes import KubernetesBackend
from backends.nomad_cluster import NomadClusterBackend
from backends.nomad_job import NomadJobBackend
from backends.simulated import SimulatedBackend
from common.clock import Clock
from common.extras import require

BackendConfig = Annotated[
    NomadJobBackend | NomadClusterBackend | KubernetesBackend | AwsAsgBackend | SimulatedBackend,
    Field(discriminator="kind"),
]
"""A pool's `backend:` block: one settings model per registered backend."""
_BACKEND_CONFIG: TypeAdapter[BackendConfig] = TypeAdapter(BackendConfig)


def backend_settings(block: Mapping[str, object]) -> BackendConfig:
    """The settings model for a `backend:` block given as plain data (`kind` chooses)."""
    return _BACKEND_CONFIG.validate_python(block)


OPTIONAL_PACKAGES = {
    "aws_asg": ("boto3", "botocore"),
    "nomad_cluster": ("boto3", "botocore"),
    "kubernetes": ("kubernetes",),
}
"""Packages a backend imports when used, which an install may lack (pip extras)."""


def require_packages(config: BackendConfig) -> None:
    """MissingExtra, naming the extra to install, when the backend's packages are absent."""
    require(f"backend {config.kind}", *OPTIONAL_PACKAGES.get(config.kind, ()))


def make_backend(
    config: BackendConfig,
    clock: Clock,
    env: Mapping[str, str] = os.environ,
    state_path: Path | None = None,
    boot_time: timedelta | None = None,
) -> Backend:
    """The backend for a pool's `backend:` block. `state_path` is where a backend with work
    in flight across ticks (a node drain) keeps it, so that it survives a restart;
    `boot_time` the pool's (BackendSettings.connect).

    A backend whose packages are missing fails here, at start, not at its first tick."""
    require_packages(config)
    return config.connect(clock, env, state_path, boot_time)


__all__ = [
    "Backend",
    "BackendConfig",
    "BackendError",
    "FleetState",
    "backend_settings",
    "make_backend",
    "require_packages",
]
