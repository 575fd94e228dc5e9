"""What a sweep is set to do and what it found: its settings, each configuration's result.

Apart from the sweep itself (gpu_bench.sweep) because the checkpoint, the report, the
outcome and the CLI read and write these without running anything.
"""

from __future__ import annotations

import math
import statistics
from typing import Literal

from pydantic import BaseModel, Field

from gpu_bench.loadgen import MeasureSettings, RateMeasurement
from gpu_bench.stability import TailRule


class SweepSettings(BaseModel):
    """Everything that shapes the figures; a checkpoint only resumes under equal settings."""

    model: str  # module:function, a file, or the endpoint's URL (without credentials)
    model_sha256: str | None = None
    """The model file's digest (models.model_sha256): measurements of other bytes are not
    this model's, so a checkpoint of them is not resumed (checkpoint.checkpoint_of)."""
    input_shape: tuple[int, ...] | None = None
    device: str = "cpu"
    workers: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    batches: list[int] = Field(default_factory=lambda: [1, 4, 16])
    max_batch_wait_s: float = 0.010
    latency_target_s: float = 3.0
    percentile: float = Field(default=0.95, gt=0, lt=1)
    gpus_per_node: int = 1
    repeats: int = Field(default=1, ge=1)
    warmup_s: float = 2.0
    max_warmup_s: float = 9.0
    block_requests: int = Field(default=50, ge=5)
    max_requests: int = Field(default=2000, ge=50)
    generator_retries: int = Field(default=2, ge=0)
    min_gain: float = 0.05
    precision: float = 0.05
    max_probes: int = 14
    memory_cap_mib: int | None = None
    threads_per_worker: int | None = None
    seed: int = 0
    endpoint_body: str | None = None  # the body file and the header names (never values)
    endpoint_headers: list[str] = Field(default_factory=list)
    endpoint_concurrency: int | None = None
    load_timeout_s: float = Field(default=600.0, gt=0)
    """How long workers may take to load the model (a large one from disk onto a GPU takes
    minutes). It shapes no figure: a rerun with another one resumes the checkpoint."""

    def measure_settings(self, rate_rps: float, warmup_s: float | None = None) -> MeasureSettings:
        """How to measure one rate: the span judged is at least as long as the warm-up."""
        warmup_s = self.warmup_s if warmup_s is None else warmup_s
        rule = TailRule(
            allowed_share=1 - self.percentile,
            block_requests=self.block_requests,
            max_requests=self.max_requests,
            min_requests=math.ceil(rate_rps * warmup_s),
        )
        return MeasureSettings(
            latency_target_s=self.latency_target_s,
            percentile=self.percentile,
            warmup_s=warmup_s,
            rule=rule,
            drain_timeout_s=max(5.0, 2 * self.latency_target_s),
        )

    def warmup_for(self, load: float, batch_seconds: float) -> float:
        """Long enough for the queue to reach its steady state at this load (0..1).

        An M/D/1 queue forgets its start in about service / (1 - sqrt(load))^2: seconds at
        moderate load, much longer near saturation, where a short warm-up from an empty
        queue would let a rate past the edge pass.
        """
        settle = batch_seconds / max(1e-6, (1 - math.sqrt(min(load, 0.999)))) ** 2
        return min(self.max_warmup_s, max(self.warmup_s, settle))


Status = Literal["ok", "infeasible", "no_rate", "impossible"]


class ConfigResult(BaseModel):
    workers: int
    batch: int
    status: Status
    reason: str = ""
    failure_kind: str | None = None
    rate_rps: float | None = None
    ceiling_rps: float | None = None
    generator_limited: bool = False
    refused: int = 0
    batch_seconds: float | None = None
    single_seconds: float | None = None
    startup_s: list[float] = Field(default_factory=list)
    probes: list[RateMeasurement] = Field(default_factory=list)
    repeats: list[RateMeasurement] = Field(default_factory=list)
    throughput_spread: float | None = None
    p95_spread: float | None = None

    @property
    def feasible(self) -> bool:
        return self.status not in ("infeasible", "impossible")

    @property
    def rate_spread(self) -> float | None:
        """How far the lowest failing rate sits above the chosen one, as a share of it."""
        if not self.rate_rps or self.ceiling_rps is None:
            return None
        return (self.ceiling_rps - self.rate_rps) / self.rate_rps

    def median(self, field: str) -> float | None:
        values = [getattr(m, field) for m in self.repeats if getattr(m, field) is not None]
        return statistics.median(values) if values else None


class SweepResult(BaseModel):
    settings: SweepSettings
    results: list[ConfigResult] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)

    def done(self) -> dict[tuple[int, int], float | None]:
        return {
            (r.workers, r.batch): (r.rate_rps or 0.0) if r.feasible else None for r in self.results
        }

    def chosen(self) -> ConfigResult | None:
        """The smallest configuration within `min_gain` of the highest sustained rate.

        A bigger configuration that gains less than that is not worth its memory,
        the same rule that stops the sweep from growing.
        """
        usable = [r for r in self.results if r.status == "ok" and r.rate_rps]
        if not usable:
            return None
        best = max(r.rate_rps or 0.0 for r in usable)
        close = [r for r in usable if (r.rate_rps or 0.0) >= best * (1 - self.settings.min_gain)]
        return min(close, key=lambda r: (r.workers * r.batch, r.workers, -(r.rate_rps or 0.0)))
