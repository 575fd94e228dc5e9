"""The sweep's search of one configuration, on a stand-in prober or pool (no model, no
process)."""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace

import pytest

from gpu_bench.loadgen import RateMeasurement
from gpu_bench.sweep import _over_capacity, _Pool, _Prober, _search
from gpu_bench.sweep_models import ConfigResult, SweepSettings
from gpu_bench.workers import DONE, PoolTimings
from tests.gpu_bench.quick_settings import quick


class _FirstTimeOnly:
    """Passes a rate under 50 req/s the first time it is probed, fails every repeat of it:
    the repeats never confirm, so the sweep backs off round after round."""

    def __init__(self) -> None:
        self.probes: list[RateMeasurement] = []

    def __call__(self, rate: float) -> RateMeasurement:
        assert rate > 0, f"probed {rate} req/s"
        measurement = _over_capacity(rate, 100.0)
        measurement.passed = rate < 50 and all(p.rate_rps != rate for p in self.probes)
        self.probes.append(measurement)
        return measurement


@pytest.mark.parametrize("precision", [0.3, 0.5, 0.6, 1.0])
def test_backing_off_from_unconfirmed_repeats_never_probes_a_rate_of_zero_or_less(
    precision: float,
) -> None:
    """At --precision 0.5 the backed-off rate was 0 (a ZeroDivisionError in the Poisson
    schedule), above it negative (a schedule running backwards: sends without end)."""
    settings = SweepSettings(model="stand-in", repeats=3, precision=precision)
    result = ConfigResult(workers=1, batch=1, status="no_rate")
    probe = _FirstTimeOnly()
    pool = SimpleNamespace(capacity_rps=100.0, batch_seconds=0.01, measure_capacity=lambda _: None)
    _search(settings, pool, probe, 40.0, result)  # type: ignore[arg-type]
    assert result.status == "no_rate" and "did not confirm" in result.reason
    assert min(p.rate_rps for p in probe.probes) > 0


class _HandOverBound:
    """A pool whose model computes in microseconds but that serves at most SERVED_RPS
    requests a second: the cost of handing each request over (a queue, a pipe, a pickle)
    bounds it, as it bounds real workers on a model that does next to nothing."""

    SERVED_RPS = 400.0

    def __init__(self) -> None:
        self.requests: queue.Queue[int | None] = queue.Queue()
        self._results: queue.Queue[tuple] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> PoolTimings:
        self._thread.start()
        return PoolTimings(batch_seconds=2e-5, single_seconds=2e-5, startup_s=(0.1,))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                request_id = self.requests.get(timeout=0.01)
            except queue.Empty:
                continue
            time.sleep(1 / self.SERVED_RPS)  # the hand-over
            started = time.monotonic()
            self._results.put((DONE, 0, [request_id], started, started + 2e-5))

    def submit(self, request_id: int) -> None:
        self.requests.put(request_id)

    def next_message(self, timeout: float) -> tuple | None:
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_a_rate_the_pool_cannot_serve_is_not_found_though_its_compute_could() -> None:
    """A model that computes in 20 us, served at most 400 req/s: its compute time alone
    bounded the capacity at 50,000 req/s, and rates past what the pool serves passed on a
    queue still growing when the measurement ended (a do-nothing model profiled at 138,000
    req/s on CPU workers that served 40,000)."""
    settings = quick("stand-in", batches=[1], latency_target_s=1.0)
    pool = _Pool(_HandOverBound(), 1)
    try:
        result = ConfigResult(workers=1, batch=1, status="no_rate")
        _search(settings, pool, _Prober(settings, (1, 1), pool, None), None, result)
    finally:
        pool.close()
    assert result.status == "ok" and result.rate_rps is not None
    assert result.rate_rps <= _HandOverBound.SERVED_RPS


class _SlowModel:
    """Holds the target at rates under 0.03 req/s, as one worker of a video diffusion
    model of 30 s a request does; past its capacity (1/30 req/s) it cannot serve."""

    def __init__(self) -> None:
        self.probes: list[RateMeasurement] = []

    def __call__(self, rate: float) -> RateMeasurement:
        measurement = _over_capacity(rate, 1 / 30)
        measurement.passed = rate < 0.03
        self.probes.append(measurement)
        return measurement


def test_a_model_of_seconds_a_request_is_searched_below_its_capacity() -> None:
    """The search's floor of 0.05 req/s was over the capacity of a 30 s model: it probed
    0.05 alone, failed, and said 'no rate held the target 60s' (exit 1, no profile),
    though rates under 0.03 hold it."""
    settings = SweepSettings(model="stand-in", latency_target_s=60.0, precision=0.1)
    result = ConfigResult(workers=1, batch=1, status="no_rate")
    probe = _SlowModel()
    pool = SimpleNamespace(capacity_rps=1 / 30, batch_seconds=30.0, measure_capacity=lambda _: None)
    _search(settings, pool, probe, None, result)  # type: ignore[arg-type]
    assert result.status == "ok", result.reason
    assert result.rate_rps is not None and 0.027 <= result.rate_rps < 0.03
