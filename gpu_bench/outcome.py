"""What a sweep amounts to: the capacity profile, or a refusal with its own exit code.

A refusal names its cause, so a person (or a script, by the exit code) can tell a model
that fails from a target no rate can hold from a load generator that cannot keep up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from gpu_bench.profile import CapacityProfile
from gpu_bench.sweep_models import SweepResult
from gpu_bench.workers import MODEL_FAILURES

EXIT_NO_RATE, EXIT_MODEL_FAILED, EXIT_TARGET_IMPOSSIBLE, EXIT_GENERATOR = 1, 3, 4, 5


@dataclass(frozen=True)
class Refusal:
    exit_code: int
    message: str


def refusal(sweep: SweepResult) -> Refusal | None:
    """Why no profile can be written, or None when a configuration held the target."""
    if sweep.chosen() is not None:
        return None
    results = sweep.results
    impossible = next((r for r in results if r.status == "impossible"), None)
    if impossible is not None:
        return Refusal(EXIT_TARGET_IMPOSSIBLE, f"target impossible: {impossible.reason}")
    failed = [r for r in results if r.failure_kind in MODEL_FAILURES]
    if results and len(failed) == len(results):
        name = sweep.settings.model  # what the user gave, so one line says whose failure
        return Refusal(EXIT_MODEL_FAILED, f"model {name} failed: {failed[0].reason}")
    if any(r.generator_limited for r in results):
        return Refusal(
            EXIT_GENERATOR,
            "load generator could not keep up: measurements were refused because sends "
            "ran late; use a less busy machine or fewer workers per probe",
        )
    reasons = "; ".join(f"{r.workers}x{r.batch}: {r.reason}" for r in results)
    return Refusal(EXIT_NO_RATE, f"no configuration sustained any rate ({reasons})")


def _round(value: float | None, digits: int = 3) -> float | None:
    """Three significant figures: what a measurement of this kind can stand behind."""
    if value is None or value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _quantile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def to_profile(
    sweep: SweepResult, device: str, command: str, created: datetime | None = None
) -> CapacityProfile:
    """The chosen configuration as the capacity profile; ValueError if none held the target."""
    chosen = sweep.chosen()
    if chosen is None or chosen.rate_rps is None:
        raise ValueError("no configuration sustained any rate under the latency target")
    settings = sweep.settings
    pick = chosen.median
    p50, p95, p99 = pick("p50_s") or 0.0, pick("p95_s") or 0.0, pick("p99_s") or 0.0
    per_gpu = _round(chosen.rate_rps) or chosen.rate_rps
    startups = [s for r in sweep.results for s in r.startup_s]
    counted = [m for r in sweep.results for m in r.probes if not m.refused and m.requests]
    return CapacityProfile(
        model=settings.model,
        model_sha256=settings.model_sha256,
        device=device,
        workers_per_gpu=chosen.workers,
        batch_size=chosen.batch,
        max_batch_wait_s=settings.max_batch_wait_s,
        gpus_per_node=settings.gpus_per_node,
        per_gpu_rps=per_gpu,
        per_node_rps=per_gpu * settings.gpus_per_node,
        latency_target_s=settings.latency_target_s,
        percentile=settings.percentile,
        latency_p50_s=_round(p50) or 0.0,
        latency_p95_s=_round(max(p50, p95)) or 0.0,
        latency_p99_s=_round(max(p50, p95, p99)) or 0.0,
        queue_p50_s=_round(pick("queue_p50_s")),
        compute_p50_s=_round(pick("compute_p50_s")),
        throughput_spread=_round(chosen.throughput_spread, 2),
        rate_ceiling_rps=_round(chosen.ceiling_rps),
        rate_spread=_round(chosen.rate_spread, 2),
        generator_late_send_share=_round(
            max((m.late_send_share for m in counted if not m.overloaded), default=0.0), 2
        ),
        generator_refused=sum(r.refused for r in sweep.results),
        startup_p50_s=_round(_quantile(startups, 0.5)),
        startup_p90_s=_round(_quantile(startups, 0.9)),
        gpu_utilization=_round(pick("gpu_utilization"), 2),
        gpu_memory_used_mib=_round(pick("gpu_memory_used_mib")),
        gpu_power_w=_round(pick("gpu_power_w")),
        created=created or datetime.now(UTC),
        command=command,
    )
