"""The sweep: for each (workers, batch), fresh workers, a rate search, repeats, a checkpoint.

Thin orchestration over the pure parts (search.plan_sweep, search.search_max_rate,
stability.judge_probe); everything it learns goes into the checkpoint after each
configuration, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import random
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from common.atomic import write_atomically
from gpu_bench.loadgen import LoadRunner, MeasureSettings, RateMeasurement
from gpu_bench.models import ModelSpec
from gpu_bench.profile import CapacityProfile
from gpu_bench.sampling import NvmlSampler
from gpu_bench.search import SearchSettings, plan_sweep, search_max_rate
from gpu_bench.stability import StabilityRule, relative_spread
from gpu_bench.workers import (
    ConfigInfeasible,
    WorkerPool,
    WorkerSettings,
    default_threads_per_worker,
)


class SweepSettings(BaseModel):
    """Everything that shapes the figures; a checkpoint only resumes under equal settings."""

    model: str
    input_shape: tuple[int, ...] | None = None
    device: str = "cpu"
    workers: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    batches: list[int] = Field(default_factory=lambda: [1, 4, 16])
    max_batch_wait_s: float = 0.010
    latency_target_s: float = 3.0
    gpus_per_node: int = 1
    repeats: int = Field(default=3, ge=1)
    warmup_s: float = 3.0
    window_s: float = 2.0
    min_window_requests: int = 100
    max_windows: int = 10
    tolerance: float = 0.10
    min_gain: float = 0.05
    precision: float = 0.05
    max_probes: int = 14
    memory_cap_mib: int | None = None
    threads_per_worker: int | None = None
    seed: int = 0

    def measure_settings(self) -> MeasureSettings:
        rule = StabilityRule(
            tolerance=self.tolerance,
            max_windows=self.max_windows,
            p95_floor_s=0.05 * self.latency_target_s,
        )
        return MeasureSettings(
            latency_target_s=self.latency_target_s,
            warmup_s=self.warmup_s,
            window_s=self.window_s,
            min_window_requests=self.min_window_requests,
            rule=rule,
            drain_timeout_s=max(5.0, 2 * self.latency_target_s),
        )


class ConfigResult(BaseModel):
    workers: int
    batch: int
    status: Literal["ok", "infeasible", "no_rate"]
    reason: str = ""
    rate_rps: float | None = None
    generator_limited: bool = False
    probes: list[RateMeasurement] = Field(default_factory=list)
    repeats: list[RateMeasurement] = Field(default_factory=list)
    throughput_spread: float | None = None
    p95_spread: float | None = None

    @property
    def feasible(self) -> bool:
        return self.status != "infeasible"

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


BACKOFF_ROUNDS = 3


def confirmed(repeats: list[RateMeasurement], latency_target_s: float) -> bool:
    """Repeats confirm a rate when at least half pass and their median p95 holds the target."""
    passed = sum(m.passed for m in repeats)
    return passed * 2 >= len(repeats) and (
        statistics.median(m.p95_s for m in repeats) <= latency_target_s
    )


class SweepProgress(Protocol):
    def config_started(self, workers: int, batch: int) -> None: ...
    def probe_done(self, measurement: RateMeasurement) -> None: ...
    def config_done(self, result: ConfigResult, skipped: int) -> None: ...


def load_checkpoint(path: Path, settings: SweepSettings) -> SweepResult:
    """Results of an earlier run with the same settings, or an empty sweep."""
    if not path.exists():
        return SweepResult(settings=settings)
    saved = SweepResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
    if saved.settings != settings:
        raise ValueError(
            f"{path}: checkpoint was written with other settings; "
            "remove it or rerun with the same options"
        )
    return saved


class _Pool:
    """A pool and its runner, restartable when a backlog will not drain."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.pool = WorkerPool(settings)
        self.batch_seconds = self.pool.start()
        self.runner = LoadRunner(self.pool)

    def restart(self) -> None:
        self.close()
        self.pool = WorkerPool(self.settings)
        self.pool.start()
        self.runner = LoadRunner(self.pool)

    def close(self) -> None:
        self.runner.close()
        self.pool.stop()


def run_config(
    settings: SweepSettings,
    workers: int,
    batch: int,
    start_rps: float | None = None,
    progress: SweepProgress | None = None,
) -> ConfigResult:
    """Search one configuration's sustainable rate and repeat it; never raises for the model."""
    worker_settings = WorkerSettings(
        spec=ModelSpec(settings.model, settings.input_shape),
        device=settings.device,
        workers=workers,
        max_batch=batch,
        max_batch_wait_s=settings.max_batch_wait_s,
        threads_per_worker=settings.threads_per_worker
        or default_threads_per_worker(settings.device, workers),
        memory_cap_mib=settings.memory_cap_mib,
    )
    measure = settings.measure_settings()
    sampler = NvmlSampler.for_device(settings.device)
    probes: list[RateMeasurement] = []
    try:
        pool = _Pool(worker_settings)
    except ConfigInfeasible as failure:
        return ConfigResult(workers=workers, batch=batch, status="infeasible", reason=str(failure))

    def probe(rate: float) -> RateMeasurement:
        rng = random.Random(f"{settings.seed}-{workers}-{batch}-{len(probes)}")
        measurement = pool.runner.measure(rate, measure, rng, sampler)
        probes.append(measurement)
        if progress is not None:
            progress.probe_done(measurement)
        if not pool.runner.drain(measure.drain_timeout_s):
            pool.restart()
        return measurement

    try:
        estimate = start_rps or 0.5 * batch / max(pool.batch_seconds, 1e-4)
        search = search_max_rate(
            lambda rate: probe(rate).passed,
            SearchSettings(
                start_rps=estimate, precision=settings.precision, max_probes=settings.max_probes
            ),
        )
        limited = any(m.refused for m in probes)

        def no_rate(reason: str, repeats: list[RateMeasurement]) -> ConfigResult:
            return ConfigResult(
                workers=workers,
                batch=batch,
                status="no_rate",
                reason=reason,
                rate_rps=0.0,
                generator_limited=limited,
                probes=probes,
                repeats=repeats,
            )

        if search.best_rps is None:
            return no_rate(f"no rate held p95 under {settings.latency_target_s}s", [])
        rate = search.best_rps
        repeats: list[RateMeasurement] = []
        for _ in range(BACKOFF_ROUNDS):
            repeats = [m for m in probes if m.rate_rps == rate and m.passed][:1]
            while len(repeats) < settings.repeats:
                repeats.append(probe(rate))
            if confirmed(repeats, settings.latency_target_s):
                break
            rate *= 1 - 2 * settings.precision
        else:
            return no_rate(
                f"repeats did not confirm any rate down to {repeats[0].rate_rps:.1f}", repeats
            )
        return ConfigResult(
            workers=workers,
            batch=batch,
            status="ok",
            reason=search.stopped_by,
            rate_rps=rate,
            generator_limited=limited,
            probes=probes,
            repeats=repeats,
            throughput_spread=relative_spread([m.throughput_rps for m in repeats]),
            p95_spread=relative_spread([m.p95_s for m in repeats]),
        )
    except ConfigInfeasible as failure:
        return ConfigResult(
            workers=workers, batch=batch, status="infeasible", reason=str(failure), probes=probes
        )
    finally:
        pool.close()


def run_sweep(
    settings: SweepSettings,
    checkpoint: Path | None = None,
    progress: SweepProgress | None = None,
) -> SweepResult:
    """Measure configurations in plan order until the planner has nothing left."""
    sweep = load_checkpoint(checkpoint, settings) if checkpoint else SweepResult(settings=settings)
    while True:
        step = plan_sweep(settings.workers, settings.batches, sweep.done(), settings.min_gain)
        sweep.skipped = {f"{w}x{b}": why for (w, b), why in sorted(step.skipped.items())}
        if step.next_config is None:
            break
        workers, batch = step.next_config
        if progress is not None:
            progress.config_started(workers, batch)
        seeds = [r.rate_rps for r in sweep.results if r.batch == batch and r.rate_rps]
        result = run_config(settings, workers, batch, max(seeds, default=None), progress)
        sweep.results.append(result)
        if checkpoint is not None:
            write_atomically(checkpoint, sweep.model_dump_json(indent=1))
        if progress is not None:
            after = plan_sweep(settings.workers, settings.batches, sweep.done(), settings.min_gain)
            progress.config_done(result, len(after.skipped))
    return sweep


def to_profile(
    sweep: SweepResult, device: str, command: str, created: datetime | None = None
) -> CapacityProfile:
    """The chosen configuration as the capacity profile; ValueError if none held the target."""
    chosen = sweep.chosen()
    if chosen is None or chosen.rate_rps is None:
        raise ValueError("no configuration sustained any rate under the latency target")
    settings = sweep.settings

    def pick(field: str) -> float | None:
        return chosen.median(field)

    p50, p95, p99 = pick("p50_s") or 0.0, pick("p95_s") or 0.0, pick("p99_s") or 0.0
    return CapacityProfile(
        model=settings.model,
        device=device,
        workers_per_gpu=chosen.workers,
        batch_size=chosen.batch,
        max_batch_wait_s=settings.max_batch_wait_s,
        gpus_per_node=settings.gpus_per_node,
        per_gpu_rps=round(chosen.rate_rps, 3),
        per_node_rps=round(chosen.rate_rps, 3) * settings.gpus_per_node,
        latency_target_s=settings.latency_target_s,
        latency_p50_s=p50,
        latency_p95_s=max(p50, p95),
        latency_p99_s=max(p50, p95, p99),
        queue_p50_s=pick("queue_p50_s"),
        compute_p50_s=pick("compute_p50_s"),
        throughput_spread=chosen.throughput_spread,
        gpu_utilization=pick("gpu_utilization"),
        gpu_memory_used_mib=pick("gpu_memory_used_mib"),
        gpu_power_w=pick("gpu_power_w"),
        created=created or datetime.now(UTC),
        command=command,
    )
