"""The capacity profile: the one file gpu_bench writes and the autoscaler daemon reads.

Kept free of torch and matplotlib on purpose: the daemon imports this module and must
run on machines where neither is installed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from common.atomic import write_atomically
from common.settings import Strict

PROFILE_VERSION = 1


class CapacityProfile(Strict):
    """What one node serves at the latency target, and how that figure was measured
    (Strict: no unknown key, no infinite or NaN figure, no boolean for a number)."""

    version: int = Field(default=PROFILE_VERSION, ge=1, le=PROFILE_VERSION)
    model: str = Field(min_length=1, description="model spec: module:function or a file")
    model_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the model file measured (the .pt2, TorchScript or .py file)",
    )
    device: str = Field(min_length=1, description="device name, e.g. 'NVIDIA H100' or 'cpu'")
    workers_per_gpu: int = Field(ge=1)
    batch_size: int = Field(ge=1, description="maximum dynamic batch size")
    max_batch_wait_s: float = Field(default=0.0, ge=0)
    gpus_per_node: int = Field(ge=1)
    per_gpu_rps: float = Field(gt=0, description="sustainable requests/s on one device")
    per_node_rps: float = Field(gt=0, description="per_gpu_rps * gpus_per_node")
    latency_target_s: float = Field(gt=0, description="latency the rate was held under")
    percentile: float = Field(
        default=0.95, gt=0, lt=1, description="share of requests held under the target"
    )
    latency_p50_s: float = Field(ge=0)
    latency_p95_s: float = Field(ge=0)
    latency_p99_s: float = Field(ge=0)
    queue_p50_s: float | None = Field(default=None, ge=0)
    compute_p50_s: float | None = Field(default=None, ge=0)
    throughput_spread: float | None = Field(
        default=None, ge=0, description="(max - min) / mean of the sustained rate over repeats"
    )
    rate_ceiling_rps: float | None = Field(
        default=None, gt=0, description="lowest rate measured to fail: the edge lies below it"
    )
    rate_spread: float | None = Field(
        default=None, ge=0, description="(rate_ceiling_rps - per_gpu_rps) / per_gpu_rps"
    )
    generator_late_send_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "worst share of late sends in the counted measurements judged on their latency "
            "tail (an overloaded one is decided by its backlog, not by the sends)"
        ),
    )
    generator_refused: int | None = Field(
        default=None, ge=0, description="measurements voided because the generator lagged"
    )
    startup_p50_s: float | None = Field(
        default=None, ge=0, description="worker start to first good answer, median"
    )
    startup_p90_s: float | None = Field(default=None, ge=0, description="the same, p90")
    gpu_utilization: float | None = Field(default=None, ge=0, le=1)
    gpu_memory_used_mib: float | None = Field(default=None, ge=0)
    gpu_power_w: float | None = Field(default=None, ge=0)
    created: datetime
    command: str

    @model_validator(mode="after")
    def _consistent(self) -> CapacityProfile:
        if not self.latency_p50_s <= self.latency_p95_s <= self.latency_p99_s:
            raise ValueError("latency percentiles must satisfy p50 <= p95 <= p99")
        expected = self.per_gpu_rps * self.gpus_per_node
        if abs(self.per_node_rps - expected) > 1e-6 * max(1.0, expected):
            raise ValueError(
                f"per_node_rps ({self.per_node_rps}) must equal per_gpu_rps * gpus_per_node "
                f"({expected})"
            )
        return self


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(profile)"
        parts.append(f"{field}: {item['msg']}")
    return "; ".join(parts)


def parse_profile(data: Any, source: str = "<profile>") -> CapacityProfile:
    """Validate already-parsed YAML; errors name the source and the field."""
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ValueError(f"{source}: expected a mapping of profile fields, got {kind}")
    try:
        return CapacityProfile.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"{source}: invalid capacity profile: {_describe(error)}") from None


def load_profile(path: Path) -> CapacityProfile:
    """Read a capacity profile; ValueError (naming file and field) on anything wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{path}: cannot read capacity profile: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    return parse_profile(data, str(path))


def dump_profile(profile: CapacityProfile) -> str:
    header = "# gpu-bench capacity profile; the autoscaler reads per_node_rps.\n"
    body = yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False)
    return header + body


def save_profile(path: Path, profile: CapacityProfile) -> None:
    """A new profile is 0644, as its chart and CSV are: the daemon, another user, reads it
    (it holds no secret: an endpoint's headers are masked in `command`)."""
    write_atomically(Path(path), dump_profile(profile), new_mode=0o644)
