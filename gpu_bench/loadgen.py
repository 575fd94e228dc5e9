"""Open-loop Poisson load against a worker pool, measured until the tail share is known.

Each request gets a scheduled send time drawn from a Poisson process before it is sent,
and its latency runs from that scheduled time to the end of its batch's compute. A slow
worker or a late sender therefore shows up as latency instead of silently lowering the
offered rate (no coordinated omission). Sends later than `late_threshold_s` are counted;
when too many are late the result is refused, because the generator, not the model,
set the pace. How long a rate is measured is decided by `stability.tail_verdict`: by
request counts, not by a fixed window.
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
from typing import Any, Protocol

from pydantic import BaseModel

from gpu_bench.histogram import LatencyHistogram
from gpu_bench.stability import (
    TailDecision,
    TailRule,
    TailVerdict,
    judge_probe,
    tail_verdict,
)
from gpu_bench.workers import DONE, MODEL_ERROR, ConfigInfeasible

BURST_S, BURST_MAX = 0.25, 20_000
"""A capacity burst: about this many seconds of full batches, at most this many requests."""
LOST = "lost"
"""A pool's message: (LOST, sender, ids, reason), requests it could not serve (an endpoint
shedding load): over the target, never served."""


class DeviceSampler(Protocol):
    def start(self) -> None: ...
    def stop(self) -> dict[str, float | None]: ...


class Pool(Protocol):
    """What the generator needs of a pool: worker processes or an HTTP endpoint."""

    requests: Any  # a queue the generator can withdraw unsent work from

    def submit(self, request_id: int) -> None: ...
    def next_message(self, timeout: float) -> tuple | None: ...


@dataclass(frozen=True)
class MeasureSettings:
    latency_target_s: float = 3.0
    percentile: float = 0.95
    warmup_s: float = 3.0
    rule: TailRule = field(default_factory=TailRule)
    late_threshold_s: float = 0.010
    max_late_share: float = 0.05
    overload_factor: float = 2.0
    check_every_s: float = 0.2
    collect_grace_s: float = 0.25
    drain_timeout_s: float = 10.0


class RateMeasurement(BaseModel):
    """What one probed rate did; JSON-friendly for the checkpoint."""

    rate_rps: float
    passed: bool
    refused: bool
    reason: str
    decided: bool = True
    measured_s: float
    warmup_s: float = 0.0
    requests: int
    late_share: float  # requests over the target
    late_share_low: float = 0.0
    late_share_high: float = 1.0
    throughput_rps: float
    served_share: float
    p50_s: float
    p95_s: float
    p99_s: float
    tail_s: float = 0.0  # the latency at the asked percentile
    queue_p50_s: float
    compute_p50_s: float
    mean_batch: float
    late_send_share: float
    overloaded: bool = False
    """Decided by a backlog twice the target deep, which a lagging generator does not make:
    its late sends did not decide it (judge_probe)."""
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
class _Run:
    """One measurement's books: schedule, lateness of sends, and judged requests."""

    rate_rps: float
    measure_from: float
    first_measured: int = -1
    judged: int = 0
    oldest: int = 0
    late: list[bool] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)


class LoadRunner:
    """Drives one pool: a collector thread records completions, probes send load."""

    def __init__(self, pool: Pool, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self._clock = clock
        self._done: dict[int, tuple[float, float, int]] = {}
        self._lost: dict[int, str] = {}
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
                    self._done[request_id] = (started, ended, len(ids))
            elif message is not None and message[0] == LOST:
                self._lost.update(dict.fromkeys(message[2], message[3]))

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
        """Warm up, then send and judge until the tail share is decided or overload shows."""
        self._start_fresh()
        started = self._clock() + 0.01
        run = _Run(rate_rps, started + settings.warmup_s)
        next_send = started + rng.expovariate(rate_rps)
        next_check = run.measure_from + settings.check_every_s
        verdict, overloaded, sampling = None, False, False
        while verdict is None:
            self._raise_failure()
            now = self._clock()
            while next_send <= now:
                self._send(next_send, run)
                next_send += rng.expovariate(rate_rps)
            if sampler is not None and not sampling and now >= run.measure_from:
                sampler.start()
                sampling = True
            if now >= next_check:
                next_check = now + settings.check_every_s
                waited = self._oldest_waiting(run, now)
                overloaded = waited > settings.overload_factor * settings.latency_target_s
                tail = self._judge(run, now, settings)
                if overloaded or tail.decision is not TailDecision.CONTINUE:
                    verdict = tail
                    break
            time.sleep(max(0.0, min(next_send, next_check) - self._clock()))
        device = sampler.stop() if sampler is not None and sampling else {}
        return self._summarize(run, settings, verdict, overloaded, device)

    def _start_fresh(self) -> None:
        """A new measurement's requests: ids from here on, none answered or sent yet."""
        self._base, self._done, self._lost, self._scheduled = self._next_id, {}, {}, []

    def _send(self, moment: float, run: _Run) -> None:
        self._scheduled.append(moment)
        self.pool.submit(self._next_id)
        if moment >= run.measure_from:
            if run.first_measured < 0:
                run.first_measured = len(self._scheduled) - 1
            run.lags.append(self._clock() - moment)
        self._next_id += 1

    def _oldest_waiting(self, run: _Run, now: float) -> float:
        """How long the oldest unanswered request has waited: a backlog shows here first."""
        base, scheduled = self._base, self._scheduled
        while run.oldest < len(scheduled) and self._settled(base + run.oldest):
            run.oldest += 1
        return now - scheduled[run.oldest] if run.oldest < len(scheduled) else 0.0

    def _settled(self, request_id: int) -> bool:
        return request_id in self._done or request_id in self._lost

    def _judge(self, run: _Run, now: float, settings: MeasureSettings) -> TailVerdict:
        """Add every request whose fate is now certain to `run.late`, in arrival order."""
        target = settings.latency_target_s
        horizon = now - target - settings.collect_grace_s
        if run.first_measured < 0:
            return tail_verdict([], settings.rule)
        if run.judged < run.first_measured:
            run.judged = run.first_measured
        scheduled, base = self._scheduled, self._base
        while run.judged < len(scheduled) and scheduled[run.judged] <= horizon:
            done = self._done.get(base + run.judged)
            run.late.append(done is None or done[1] - scheduled[run.judged] > target)
            run.judged += 1
        return tail_verdict(run.late, settings.rule)

    def _summarize(
        self,
        run: _Run,
        settings: MeasureSettings,
        tail: TailVerdict,
        overloaded: bool,
        device: dict[str, float | None],
    ) -> RateMeasurement:
        """Figures over the judged requests: the measured, warmed-up part of the run."""
        base, scheduled = self._base, self._scheduled
        first = max(run.first_measured, 0)
        judged = range(first, first + len(run.late))
        histogram = LatencyHistogram()
        queue_times, compute_times, batch_sizes = [], [], []
        for index in judged:
            done = self._done.get(base + index)
            if done is None:
                continue
            begun, ended, size = done
            histogram.record(ended - scheduled[index])
            queue_times.append(begun - scheduled[index])
            compute_times.append(ended - begun)
            batch_sizes.append(size)
        measured_s = (scheduled[judged[-1]] - scheduled[first]) if len(judged) > 1 else 0.0
        served_share = histogram.total / len(judged) if len(judged) else 0.0
        late_sends = sum(1 for lag in run.lags if lag > settings.late_threshold_s)
        late_send_share = late_sends / max(1, len(run.lags))
        judged_probe = judge_probe(
            tail=tail,
            overloaded=overloaded,
            served_share=1.0 if overloaded else served_share,
            late_send_share=late_send_share,
            percentile=settings.percentile,
            latency_target_s=settings.latency_target_s,
            max_late_send_share=settings.max_late_share,
        )
        return RateMeasurement(
            rate_rps=run.rate_rps,
            passed=judged_probe.passed,
            refused=judged_probe.refused,
            reason=judged_probe.reason + self._shed_note(base, judged),
            decided=tail.decided,
            measured_s=measured_s,
            warmup_s=settings.warmup_s,
            requests=len(judged),
            late_share=_finite(tail.share),
            late_share_low=tail.low,
            late_share_high=tail.high,
            throughput_rps=histogram.total / measured_s if measured_s else 0.0,
            served_share=served_share,
            p50_s=_finite(histogram.percentile(0.50)),
            p95_s=_finite(histogram.percentile(0.95)),
            p99_s=_finite(histogram.percentile(0.99)),
            tail_s=_finite(histogram.percentile(settings.percentile)),
            queue_p50_s=statistics.median(queue_times) if queue_times else 0.0,
            compute_p50_s=statistics.median(compute_times) if compute_times else 0.0,
            mean_batch=statistics.fmean(batch_sizes) if batch_sizes else 0.0,
            late_send_share=late_send_share,
            overloaded=overloaded,
            gpu_utilization=device.get("gpu_utilization"),
            gpu_memory_used_mib=device.get("gpu_memory_used_mib"),
            gpu_power_w=device.get("gpu_power_w"),
        )

    def _shed_note(self, base: int, judged: range) -> str:
        """Requests the pool could not serve (an endpoint's 503s) counted over the target."""
        lost = [self._lost[base + i] for i in judged if base + i in self._lost]
        return f"; {len(lost)} not served ({lost[0]})" if lost else ""

    def burst_rps(self, parallel: int, batch_seconds: float, stuck_s: float) -> float | None:
        """Requests a second the pool serves given about BURST_S of full batches at once:
        back to back, the hand-over of each request (a queue, a pipe) included, which
        bounds a model that computes in microseconds. None when nothing is answered for
        `stuck_s`."""
        rounds = max(1, min(BURST_MAX // parallel, round(BURST_S / batch_seconds)))
        count = parallel * rounds  # whole rounds: a last batch part-full took a full time
        self._start_fresh()
        started = self._clock()
        for _ in range(count):
            self._scheduled.append(started)
            self.pool.submit(self._next_id)
            self._next_id += 1
        answered, deadline = 0, started + stuck_s
        while answered < count:
            self._raise_failure()
            if len(self._done) + len(self._lost) > answered:
                answered, deadline = len(self._done) + len(self._lost), self._clock() + stuck_s
            elif self._clock() > deadline:
                return None
            time.sleep(0.005)
        batches = list(self._done.values())  # what was served: shed requests are not
        if not batches:
            raise ConfigInfeasible(
                MODEL_ERROR, f"none of {count} requests sent at once was served: "
                f"{next(iter(self._lost.values()))}"
            )  # fmt: skip
        span = max(ended for _, ended, _ in batches) - min(begun for begun, _, _ in batches)
        return len(batches) / max(1e-9, span)

    def latencies(self) -> list[float]:
        """Every completed request's latency in the last measurement, warm-up included."""
        base, scheduled = self._base, self._scheduled
        return [ended - scheduled[i - base] for i, (_, ended, _) in list(self._done.items())]

    def drain(self, timeout_s: float) -> bool:
        """Withdraw still-queued requests and wait for batches in flight; False when stuck:
        nothing withdrawn or answered for `timeout_s` (a long backlog takes a while to
        withdraw, and is not stuck while it goes down)."""
        deadline = self._clock() + timeout_s
        withdrawn, settled = 0, -1
        requests = self.pool.requests
        while self._clock() < deadline:
            self._raise_failure()
            try:
                while True:
                    if requests.get(timeout=0.02) is not None:
                        withdrawn += 1
            except queue.Empty:
                pass
            ended = len(self._done) + len(self._lost) + withdrawn
            if ended >= len(self._scheduled):
                return True
            if ended > settled:
                settled = ended
                deadline = self._clock() + timeout_s
        return False


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0
