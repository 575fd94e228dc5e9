"""Open-loop Poisson load against a worker pool, measured in windows until it settles.

Each request gets a scheduled send time drawn from a Poisson process before it is sent,
and its latency runs from that scheduled time to the end of its batch's compute. A slow
worker or a late sender therefore shows up as latency instead of silently lowering the
offered rate (no coordinated omission). Sends later than `late_threshold_s` are counted;
when too many are late the result is refused, because the generator, not the model,
set the pace.
"""

from __future__ import annotations

import math
import queue
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel

from gpu_bench.histogram import LatencyHistogram
from gpu_bench.stability import (
    StabilityRule,
    WindowStats,
    WindowVerdict,
    judge_probe,
    window_verdict,
)
from gpu_bench.workers import DONE, ConfigInfeasible, WorkerPool


class DeviceSampler(Protocol):
    def start(self) -> None: ...
    def stop(self) -> dict[str, float | None]: ...


@dataclass(frozen=True)
class MeasureSettings:
    latency_target_s: float = 3.0
    warmup_s: float = 3.0
    window_s: float = 2.0
    min_window_requests: int = 100
    max_window_factor: float = 5.0
    rule: StabilityRule = field(default_factory=StabilityRule)
    late_threshold_s: float = 0.010
    max_late_share: float = 0.05
    grace_s: float = 0.05
    drain_timeout_s: float = 10.0


class RateMeasurement(BaseModel):
    """What one probed rate did; JSON-friendly for the checkpoint."""

    rate_rps: float
    passed: bool
    refused: bool
    reason: str
    verdict: str
    windows: int
    measured_s: float
    requests: int
    throughput_rps: float
    served_share: float
    p50_s: float
    p95_s: float
    p99_s: float
    queue_p50_s: float
    compute_p50_s: float
    mean_batch: float
    late_share: float
    gpu_utilization: float | None = None
    gpu_memory_used_mib: float | None = None
    gpu_power_w: float | None = None


def poisson_schedule(rate_rps: float, duration_s: float, rng: random.Random) -> list[float]:
    """Arrival offsets of a Poisson process at `rate_rps` over `duration_s` seconds."""
    offsets: list[float] = []
    moment = rng.expovariate(rate_rps)
    while moment < duration_s:
        offsets.append(moment)
        moment += rng.expovariate(rate_rps)
    return offsets


@dataclass
class _Window:
    start: float
    end: float


class LoadRunner:
    """Drives one WorkerPool: a collector thread records completions, probes send load."""

    def __init__(self, pool: WorkerPool, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self._clock = clock
        self._completions: list[tuple[int, float, float, int]] = []
        self._completed: set[int] = set()
        self._scheduled: list[float] = []
        self._base = 0
        self._next_id = 0
        self._failure: ConfigInfeasible | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="gpu-bench-collector")
        self._thread.daemon = True
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.pool.next_message(0.05)
            except ConfigInfeasible as failure:
                self._failure = failure
                return
            except (OSError, ValueError, EOFError):
                return
            if message is not None and message[0] == DONE:
                _, _, ids, started, ended = message
                for request_id in ids:
                    self._completions.append((request_id, started, ended, len(ids)))
                    self._completed.add(request_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def measure(
        self,
        rate_rps: float,
        settings: MeasureSettings,
        rng: random.Random,
        sampler: DeviceSampler | None = None,
    ) -> RateMeasurement:
        """Warm up, then measure window after window until the stability rule stops it."""
        self._base = base = self._next_id
        self._completions = []
        self._completed = set()
        self._scheduled = scheduled = []
        lags: list[float] = []
        window_s = min(
            max(settings.window_s, settings.min_window_requests / rate_rps),
            settings.max_window_factor * settings.window_s,
        )
        started = self._clock() + 0.01
        measure_from = started + settings.warmup_s
        window = _Window(measure_from, measure_from + window_s)
        windows: list[tuple[_Window, WindowStats, LatencyHistogram]] = []
        oldest = 0
        next_send = started + rng.expovariate(rate_rps)
        verdict = WindowVerdict.CONTINUE
        sampling = False
        while verdict is WindowVerdict.CONTINUE:
            self._raise_failure()
            now = self._clock()
            while next_send <= now and self._clock() < window.end + settings.grace_s:
                scheduled.append(next_send)
                self.pool.submit(self._next_id)
                self._next_id += 1
                if next_send >= measure_from:
                    lags.append(self._clock() - next_send)
                next_send += rng.expovariate(rate_rps)
            if sampler is not None and not sampling and now >= measure_from:
                sampler.start()
                sampling = True
            if now >= window.end + settings.grace_s:
                while oldest < len(scheduled) and base + oldest in self._completed:
                    oldest += 1
                stats, histogram = self._window_stats(window, rate_rps, oldest)
                windows.append((window, stats, histogram))
                verdict = window_verdict(
                    [w[1] for w in windows], settings.rule, settings.latency_target_s
                )
                window = _Window(window.end, window.end + window_s)
                continue
            wake = min(next_send, window.end + settings.grace_s)
            time.sleep(max(0.0, wake - self._clock()))
        device = sampler.stop() if sampler is not None and sampling else {}
        return self._summarize(rate_rps, settings, verdict, windows, lags, device)

    def _window_stats(
        self, window: _Window, rate_rps: float, oldest: int
    ) -> tuple[WindowStats, LatencyHistogram]:
        base, scheduled = self._base, self._scheduled
        histogram = LatencyHistogram()
        done = 0
        for request_id, _, ended, _ in list(self._completions):
            if request_id >= base and window.start <= ended < window.end:
                histogram.record(ended - scheduled[request_id - base])
                done += 1
        arrivals = sum(1 for moment in scheduled if window.start <= moment < window.end)
        outstanding_age = window.end - scheduled[oldest] if oldest < len(scheduled) else 0.0
        stats = WindowStats(
            duration_s=window.end - window.start,
            offered_rps=rate_rps,
            arrivals=arrivals,
            completions=done,
            p95_s=histogram.percentile(0.95),
            oldest_outstanding_s=max(0.0, outstanding_age),
        )
        return stats, histogram

    def _summarize(
        self,
        rate_rps: float,
        settings: MeasureSettings,
        verdict: WindowVerdict,
        windows: list[tuple[_Window, WindowStats, LatencyHistogram]],
        lags: list[float],
        device: dict[str, float | None],
    ) -> RateMeasurement:
        """Figures over the last `rule.windows` windows: the settled part of the run."""
        recent = windows[-settings.rule.windows :]
        merged = LatencyHistogram()
        for _, _, histogram in recent:
            merged = merged.merge(histogram)
        span_start, span_end = recent[0][0].start, recent[-1][0].end
        base, scheduled = self._base, self._scheduled
        queue_times, compute_times, batch_sizes = [], [], []
        for request_id, begun, ended, size in list(self._completions):
            if request_id >= base and span_start <= ended < span_end:
                queue_times.append(begun - scheduled[request_id - base])
                compute_times.append(ended - begun)
                batch_sizes.append(size)
        measured_s = span_end - span_start
        arrivals = sum(stats.arrivals for _, stats, _ in recent)
        served = sum(stats.completions for _, stats, _ in recent)
        served_share = served / arrivals if arrivals else 0.0
        late_share = sum(1 for lag in lags if lag > settings.late_threshold_s) / max(1, len(lags))
        p95 = merged.percentile(0.95)
        judged = judge_probe(
            verdict=verdict,
            p95_s=p95,
            served_share=served_share,
            late_share=late_share,
            latency_target_s=settings.latency_target_s,
            max_late_share=settings.max_late_share,
        )
        return RateMeasurement(
            rate_rps=rate_rps,
            passed=judged.passed,
            refused=judged.refused,
            reason=judged.reason,
            verdict=verdict.value,
            windows=len(windows),
            measured_s=measured_s,
            requests=served,
            throughput_rps=served / measured_s if measured_s else 0.0,
            served_share=served_share,
            p50_s=_finite(merged.percentile(0.50)),
            p95_s=_finite(p95),
            p99_s=_finite(merged.percentile(0.99)),
            queue_p50_s=statistics.median(queue_times) if queue_times else 0.0,
            compute_p50_s=statistics.median(compute_times) if compute_times else 0.0,
            mean_batch=statistics.fmean(batch_sizes) if batch_sizes else 0.0,
            late_share=late_share,
            gpu_utilization=device.get("gpu_utilization"),
            gpu_memory_used_mib=device.get("gpu_memory_used_mib"),
            gpu_power_w=device.get("gpu_power_w"),
        )

    def latencies(self) -> list[float]:
        """Every completed request's latency in the last measurement, warm-up included."""
        base, scheduled = self._base, self._scheduled
        return [
            ended - scheduled[request_id - base]
            for request_id, _, ended, _ in list(self._completions)
            if request_id >= base
        ]

    def drain(self, timeout_s: float) -> bool:
        """Withdraw still-queued requests and wait for batches in flight; False if stuck."""
        deadline = self._clock() + timeout_s
        withdrawn = 0
        while self._clock() < deadline:
            self._raise_failure()
            try:
                while True:
                    if self.pool.requests.get(timeout=0.02) is not None:
                        withdrawn += 1
            except queue.Empty:
                pass
            if len(self._completed) + withdrawn >= len(self._scheduled):
                return True
        return False


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
