"""The open-loop generator keeps its schedule and charges queueing delay to latency.

These run against an in-process worker double (a thread with a known service time),
so the expected latencies follow from queueing arithmetic instead of torch speed.
"""

from __future__ import annotations

import itertools
import queue
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gpu_bench.loadgen import LoadRunner, MeasureSettings, poisson_schedule
from gpu_bench.stability import TailRule


class ThreadWorker:
    """A one-worker pool double: serves requests in order, batch 1, `service(n)` seconds."""

    def __init__(self, service: Callable[[int], float], submit_delay_s: float = 0.0) -> None:
        self.requests: queue.Queue[int | None] = queue.Queue()
        self._results: queue.Queue[tuple] = queue.Queue()
        self._service = service
        self._submit_delay_s = submit_delay_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        served = 0
        while not self._stop.is_set():
            try:
                request_id = self.requests.get(timeout=0.01)
            except queue.Empty:
                continue
            started = time.monotonic()
            time.sleep(self._service(served))
            served += 1
            self._results.put(("done", 0, [request_id], started, time.monotonic()))

    def submit(self, request_id: int) -> None:
        if self._submit_delay_s:
            time.sleep(self._submit_delay_s)
        self.requests.put(request_id)

    def next_message(self, timeout: float) -> tuple | None:
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def settings(target: float = 1.0, max_requests: int = 400) -> MeasureSettings:
    return MeasureSettings(
        latency_target_s=target,
        warmup_s=0.2,
        rule=TailRule(block_requests=10, max_requests=max_requests),
    )


@pytest.fixture
def make_runner() -> Iterator[Callable[..., LoadRunner]]:
    made: list[tuple[LoadRunner, ThreadWorker]] = []

    def make(service: Callable[[int], float], submit_delay_s: float = 0.0) -> LoadRunner:
        worker = ThreadWorker(service, submit_delay_s)
        runner = LoadRunner(worker)  # type: ignore[arg-type]
        made.append((runner, worker))
        return runner

    yield make
    for runner, worker in made:
        runner.close()
        worker.stop()


def test_poisson_schedule_has_the_asked_rate() -> None:
    offsets = poisson_schedule(200.0, 50.0, random.Random(3))
    assert 200 * 50 * 0.95 < len(offsets) < 200 * 50 * 1.05
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 200, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(1 / 200, rel=0.1)  # exponential: sd = mean


def test_keeps_schedule_when_the_worker_keeps_up(make_runner) -> None:
    runner = make_runner(lambda _: 0.001)
    result = runner.measure(150.0, settings(), random.Random(1))
    assert result.late_send_share <= 0.05  # a busy shared machine delays a few sends
    assert result.passed, result.reason
    assert result.served_share == pytest.approx(1.0, abs=0.05)
    assert result.throughput_rps == pytest.approx(150.0, rel=0.25)
    assert result.p95_s < 0.02
    # Each send went out at its scheduled moment, drawn ahead of time from the process.
    gaps = [b - a for a, b in itertools.pairwise(runner._scheduled)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 150, rel=0.15)


def test_slow_worker_queueing_delay_is_in_the_latency(make_runner) -> None:
    """M/D/1 at 80% load: mean wait ρ/(2μ(1-ρ)) = 40 ms on top of 20 ms of service."""
    runner = make_runner(lambda _: 0.020)
    slow = MeasureSettings(
        latency_target_s=5.0, warmup_s=0.5, rule=TailRule(block_requests=20, min_requests=160)
    )
    result = runner.measure(40.0, slow, random.Random(2))
    mean_latency = statistics.fmean(runner.latencies())
    assert result.compute_p50_s == pytest.approx(0.020, abs=0.005)
    assert result.queue_p50_s > 0
    assert 0.020 + 0.015 < mean_latency < 0.020 + 0.120
    assert result.p95_s > 3 * result.compute_p50_s  # the tail is waiting, not computing


def test_a_stall_counts_against_every_request_scheduled_behind_it(make_runner) -> None:
    """A 0.4 s stall every 25th request; a closed loop would see only 4% slow requests."""
    runner = make_runner(lambda n: 0.4 if n % 25 == 24 else 0.002)
    result = runner.measure(25.0, settings(max_requests=100), random.Random(4))
    assert result.p95_s > 0.2
    assert result.compute_p50_s < 0.01


def test_overload_stops_early_and_fails(make_runner) -> None:
    runner = make_runner(lambda _: 0.020)
    started = time.monotonic()
    result = runner.measure(200.0, settings(target=0.2), random.Random(5))
    assert not result.passed
    assert result.reason.startswith("overloaded")
    assert result.served_share < 0.5
    assert time.monotonic() - started < 3.0
    assert runner.drain(5.0)


def test_a_generator_that_falls_behind_is_refused(make_runner) -> None:
    runner = make_runner(lambda _: 0.0, submit_delay_s=0.02)
    result = runner.measure(100.0, settings(max_requests=100), random.Random(6))
    assert result.late_send_share > 0.5
    assert result.refused
    assert not result.passed
    assert "fell behind" in result.reason
