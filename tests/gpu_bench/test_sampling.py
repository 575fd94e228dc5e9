"""The NVML sampler's arithmetic, against a stand-in with pynvml's call shapes
(nvmlDeviceGetUtilizationRates().gpu in %, GetMemoryInfo().used in bytes,
GetPowerUsage() in mW). No GPU is lent to CI: this checks the averaging and units, not
the driver."""

from __future__ import annotations

import time
from types import SimpleNamespace

from gpu_bench.sampling import NvmlSampler


class FakeNvml:
    def __init__(self, readings: list[tuple[int, int, int | None]]) -> None:
        self.readings = readings
        self.calls = 0

    def _now(self) -> tuple[int, int, int | None]:
        return self.readings[min(self.calls, len(self.readings) - 1)]

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> SimpleNamespace:
        self.calls += 1
        return SimpleNamespace(gpu=self._now()[0], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> SimpleNamespace:
        return SimpleNamespace(used=self._now()[1] * 2**20, total=80 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        power = self._now()[2]
        if power is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return power


def test_utilization_is_averaged_memory_peaks_and_power_in_watts() -> None:
    nvml = FakeNvml([(20, 1000, 100_000), (80, 3000, 300_000), (80, 2000, 300_000)])
    sampler = NvmlSampler(nvml, handle="gpu0", interval_s=0.02)
    sampler.start()
    deadline = time.monotonic() + 5
    while nvml.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    figures = sampler.stop()
    assert nvml.calls >= 3
    assert 0.2 - 1e-9 <= figures["gpu_utilization"] <= 0.8 + 1e-9
    assert figures["gpu_memory_used_mib"] == 3000
    assert 100 <= figures["gpu_power_w"] <= 300  # mW → W


def test_a_gpu_without_power_readings_reports_none_not_zero() -> None:
    sampler = NvmlSampler(FakeNvml([(50, 512, None)]), handle="gpu0", interval_s=10)
    sampler.start()
    figures = sampler.stop()  # stopped before the first tick: one reading at stop
    assert figures == {"gpu_utilization": 0.5, "gpu_memory_used_mib": 512, "gpu_power_w": None}


def test_no_sampler_for_a_cpu_device() -> None:
    assert NvmlSampler.for_device("cpu") is None
