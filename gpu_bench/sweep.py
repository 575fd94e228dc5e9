"""The sweep: for each (workers, batch), fresh workers, a rate search, repeats, a checkpoint.

Thin orchestration over the pure parts (search.plan_sweep, search.search_max_rate,
stability.judge_probe); everything it learns goes into the checkpoint after each
configuration, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from common.atomic import write_atomically
from gpu_bench.endpoint import EndpointPool, EndpointSettings
from gpu_bench.loadgen import LoadRunner, RateMeasurement
from gpu_bench.models import ModelSpec
from gpu_bench.sampling import NvmlSampler
from gpu_bench.search import SearchSettings, plan_sweep, search_max_rate
from gpu_bench.stability import relative_spread
from gpu_bench.sweep_models import ConfigResult, SweepResult, SweepSettings
from gpu_bench.workers import (
    MODEL_ERROR,
    ConfigInfeasible,
    WorkerPool,
    WorkerSettings,
    default_threads_per_worker,
)

BACKOFF_ROUNDS = 3
LARGEST_BACKOFF = 0.5
"""A rate whose repeats fail is lowered by twice the precision, never by more than half:
at --precision 0.5 or above the rate went to 0 (a ZeroDivisionError in the Poisson
schedule) or below 0 (a schedule running backwards: requests sent without end)."""


def confirmed(repeats: list[RateMeasurement]) -> bool:
    """Repeats confirm a rate when at least half of them pass."""
    return sum(m.passed for m in repeats) * 2 >= len(repeats)


class SweepProgress(Protocol):
    def config_started(self, workers: int, batch: int) -> None: ...
    def probe_done(self, measurement: RateMeasurement) -> None: ...
    def config_done(self, result: ConfigResult, skipped: int) -> None: ...


class _Pool:
    """A pool (worker processes or an endpoint) and its runner.

    `parallel` is how many requests it computes at once at most: workers x batch, or the
    endpoint's concurrency cap.
    """

    def __init__(self, pool: Any, parallel: int) -> None:
        self.pool, self.parallel = pool, parallel
        self.timings = self.pool.start()
        self.startup_s = list(self.timings.startup_s)
        self.batch_seconds = self.timings.batch_seconds
        self.runner = LoadRunner(self.pool)
        self.served_rps = math.inf  # until measure_capacity's burst

    def close(self) -> None:
        self.runner.close()
        self.pool.stop()

    def observed(self, measurement: RateMeasurement) -> None:
        """Under load a batch may compute faster than at start-up, when all workers load."""
        if measurement.compute_p50_s > 0:
            self.batch_seconds = min(self.batch_seconds, measurement.compute_p50_s)

    def measure_capacity(self, stuck_s: float) -> None:
        """Time a burst: a model that computes in microseconds is bound by the hand-over of
        each request, which its compute time leaves out, and rates past what the pool
        serves passed on a queue still growing as their measurement ended (138,000 req/s
        found for workers that served 40,000)."""
        served = self.runner.burst_rps(self.parallel, self.batch_seconds, stuck_s)
        if served is None:
            raise ConfigInfeasible(
                MODEL_ERROR,
                f"a batch did not finish within {stuck_s:g} s of the capacity burst (it took "
                f"{self.timings.batch_seconds:.3g} s at start): the model hangs",
            )
        self.served_rps = served

    @property
    def capacity_rps(self) -> float:
        """What the workers could serve back to back in full batches: no rate above holds.

        The shortest batch time seen (or the burst served, where less), so the bound errs
        on the generous side: a rate wrongly under it is still measured, and fails by itself.
        """
        return min(self.parallel / self.batch_seconds, self.served_rps)


def _worker_settings(settings: SweepSettings, workers: int, batch: int) -> WorkerSettings:
    return WorkerSettings(
        spec=ModelSpec(settings.model, settings.input_shape),
        device=settings.device,
        workers=workers,
        max_batch=batch,
        max_batch_wait_s=settings.max_batch_wait_s,
        threads_per_worker=settings.threads_per_worker
        or default_threads_per_worker(settings.device, workers),
        memory_cap_mib=settings.memory_cap_mib,
        load_timeout_s=settings.load_timeout_s,
    )


def _over_capacity(rate: float, capacity: float) -> RateMeasurement:
    reason = f"above compute capacity {capacity:.1f} req/s (full batches back to back)"
    return RateMeasurement(
        rate_rps=rate, passed=False, refused=False, reason=reason, measured_s=0.0, requests=0,
        late_share=1.0, throughput_rps=0.0, served_share=0.0, p50_s=0.0, p95_s=0.0, p99_s=0.0,
        queue_p50_s=0.0, compute_p50_s=0.0, mean_batch=0.0, late_send_share=0.0,
    )  # fmt: skip


class _Prober:
    """Measures rates on one pool: skips rates past capacity, retries refused measurements."""

    def __init__(self, settings: SweepSettings, config: tuple[int, int], pool: _Pool,
                 progress: SweepProgress | None) -> None:  # fmt: skip
        self.settings, self.config, self.pool, self.progress = settings, config, pool, progress
        self.sampler = NvmlSampler.for_device(settings.device)
        self.probes: list[RateMeasurement] = []
        self.refused = 0

    def _once(self, rate: float) -> RateMeasurement:
        settings, pool = self.settings, self.pool
        load = rate / pool.capacity_rps
        measure = settings.measure_settings(rate, settings.warmup_for(load, pool.batch_seconds))
        workers, batch = self.config
        rng = random.Random(f"{settings.seed}-{workers}-{batch}-{len(self.probes)}")
        measurement = pool.runner.measure(rate, measure, rng, self.sampler)
        pool.observed(measurement)
        stuck_s = max(measure.drain_timeout_s, 4 * pool.timings.batch_seconds)
        if not pool.runner.drain(stuck_s):
            self.probes.append(measurement)  # the record (CSV, chart) shows where it stuck
            raise ConfigInfeasible(
                MODEL_ERROR,
                f"a batch did not finish within {stuck_s:g} s after the load stopped (it "
                f"took {pool.timings.batch_seconds:.3g} s at start): the model hangs",
            )
        return measurement

    def __call__(self, rate: float) -> RateMeasurement:
        if rate >= self.pool.capacity_rps:
            measurement = _over_capacity(rate, self.pool.capacity_rps)
        else:
            for _ in range(self.settings.generator_retries + 1):
                measurement = self._once(rate)
                if not measurement.refused:
                    break
                self.refused += 1
        self.probes.append(measurement)
        if self.progress is not None:
            self.progress.probe_done(measurement)
        return measurement


def _impossible(settings: SweepSettings, pool: _Pool) -> str | None:
    single = pool.timings.single_seconds
    if single < settings.latency_target_s:
        return None
    return (
        f"latency target {settings.latency_target_s:g}s is below the measured service time "
        f"of one request alone ({single:.4g}s): no rate can hold it"
    )


def run_config(
    settings: SweepSettings,
    workers: int,
    batch: int,
    start_rps: float | None = None,
    progress: SweepProgress | None = None,
    endpoint: EndpointSettings | None = None,
) -> ConfigResult:
    """Search one configuration's sustainable rate and repeat it; never raises for the model."""
    try:
        if endpoint is not None:  # an answer is awaited past twice the target (a backlog)
            waited = max(endpoint.timeout_s, 2 * settings.latency_target_s)
            pool = _Pool(EndpointPool(replace(endpoint, timeout_s=waited)), endpoint.concurrency)
        else:
            worker_settings = _worker_settings(settings, workers, batch)
            pool = _Pool(WorkerPool(worker_settings), workers * batch)
    except ConfigInfeasible as failure:
        return ConfigResult(
            workers=workers, batch=batch, status="infeasible", reason=str(failure),
            failure_kind=failure.kind,
        )  # fmt: skip
    probe = _Prober(settings, (workers, batch), pool, progress)
    result = ConfigResult(
        workers=workers, batch=batch, status="no_rate",
        batch_seconds=pool.timings.batch_seconds, single_seconds=pool.timings.single_seconds,
    )  # fmt: skip
    try:
        impossible = _impossible(settings, pool)
        if impossible is not None:
            result.status, result.reason = "impossible", impossible
            return result
        _search(settings, pool, probe, start_rps, result)
    except ConfigInfeasible as failure:
        result.status, result.reason, result.failure_kind = "infeasible", str(failure), failure.kind
    finally:
        pool.close()
        result.probes, result.refused = probe.probes, probe.refused
        result.startup_s = pool.startup_s
        result.generator_limited = any(m.refused for m in probe.probes)
    return result


def _search(
    settings: SweepSettings,
    pool: _Pool,
    probe: _Prober,
    start_rps: float | None,
    result: ConfigResult,
) -> None:
    """Bracket and bisect the edge, then confirm it with repeats, backing off if they fail."""
    pool.measure_capacity(
        max(settings.measure_settings(0.0).drain_timeout_s, 4 * pool.batch_seconds)
    )
    estimate = min(start_rps or 0.75 * pool.capacity_rps, 0.9 * pool.capacity_rps)
    # the floor under the capacity: one worker of a model of 20 s or more a request
    # serves under the default 0.05 req/s, which alone was probed ("no rate held")
    floor = min(SearchSettings.min_rps, estimate / 16)
    search = search_max_rate(
        lambda rate: probe(rate).passed,
        SearchSettings(
            start_rps=estimate,
            min_rps=floor,
            precision=settings.precision,
            max_probes=settings.max_probes,
        ),
    )
    if search.best_rps is None:
        result.reason = f"no rate held the target {settings.latency_target_s:g}s"
        return
    rate = search.best_rps
    repeats: list[RateMeasurement] = []
    for _ in range(BACKOFF_ROUNDS):
        repeats = [m for m in probe.probes if m.rate_rps == rate and m.passed][:1]
        while len(repeats) < settings.repeats:
            repeats.append(probe(rate))
        if confirmed(repeats):
            break
        rate *= 1 - min(2 * settings.precision, LARGEST_BACKOFF)
    else:
        result.reason = f"repeats did not confirm any rate down to {rate:.1f}"
        result.repeats = repeats
        return
    result.status, result.reason, result.rate_rps = "ok", search.stopped_by, rate
    result.ceiling_rps = search.ceiling_rps
    result.repeats = repeats
    result.throughput_spread = relative_spread([m.throughput_rps for m in repeats])
    result.p95_spread = relative_spread([m.p95_s for m in repeats])


def run_sweep(
    settings: SweepSettings,
    checkpoint: Path | None = None,
    progress: SweepProgress | None = None,
    endpoint: EndpointSettings | None = None,
    resumed: SweepResult | None = None,
) -> SweepResult:
    """Measure configurations in plan order until the planner has nothing left, going on
    from `resumed` (gpu_bench.checkpoint.checkpoint_of) and writing everything measured to
    `checkpoint` after each configuration."""
    sweep = resumed if resumed is not None else SweepResult(settings=settings)
    while not any(r.status == "impossible" for r in sweep.results):
        step = plan_sweep(settings.workers, settings.batches, sweep.done(), settings.min_gain)
        sweep.skipped = {f"{w}x{b}": why for (w, b), why in sorted(step.skipped.items())}
        if step.next_config is None:
            break
        workers, batch = step.next_config
        if progress is not None:
            progress.config_started(workers, batch)
        seeds = [r.rate_rps for r in sweep.results if r.batch == batch and r.rate_rps]
        start = max(seeds, default=None)
        result = run_config(settings, workers, batch, start, progress, endpoint)
        sweep.results.append(result)
        if checkpoint is not None:
            _save(checkpoint, sweep)
        if progress is not None:
            after = plan_sweep(settings.workers, settings.batches, sweep.done(), settings.min_gain)
            progress.config_done(result, len(after.skipped))
    return sweep


class CheckpointUnwritten(Exception):
    """The checkpoint could not be written (a full disk): the one before it stays whole."""


def _save(checkpoint: Path, sweep: SweepResult) -> None:
    """A write's OSError names no file (a traceback said only 'No space left on device')."""
    try:
        write_atomically(checkpoint, sweep.model_dump_json(indent=1))
    except OSError as error:
        why = error.strerror or str(error)
        raise CheckpointUnwritten(f"cannot write the checkpoint {checkpoint}: {why}") from None
