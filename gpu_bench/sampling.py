"""Device facts: GPU utilization, memory and power through NVML, about once a second.

NVML is optional: without nvidia-ml-py, a driver, or a GPU device the sampler is simply
absent and the figures stay None. CPU runs report no utilization rather than a guess.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
from typing import Any


class NvmlSampler:
    """Background thread averaging NVML readings between start() and stop()."""

    def __init__(self, nvml: Any, handle: Any, interval_s: float = 1.0) -> None:
        self._nvml = nvml
        self._handle = handle
        self._interval_s = interval_s
        self._samples: list[tuple[float, float, float | None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_device(cls, device: str, interval_s: float = 1.0) -> NvmlSampler | None:
        """A sampler for a CUDA device, or None where NVML cannot be used."""
        if not device.startswith("cuda"):
            return None
        try:
            import pynvml

            pynvml.nvmlInit()
            return cls(pynvml, _nvml_handle(pynvml, device), interval_s)
        except Exception:
            return None

    def _sample(self) -> None:
        try:
            utilization = self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu / 100
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20
        except Exception:
            return
        try:
            power: float | None = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000
        except Exception:
            power = None
        self._samples.append((utilization, memory, power))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()

    def start(self) -> None:
        self._samples = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gpu-bench-nvml", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float | None]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * self._interval_s)
        if not self._samples:
            self._sample()
        if not self._samples:
            return {}
        powers = [p for _, _, p in self._samples if p is not None]
        return {
            "gpu_utilization": statistics.fmean(u for u, _, _ in self._samples),
            "gpu_memory_used_mib": max(m for _, m, _ in self._samples),
            "gpu_power_w": statistics.fmean(powers) if powers else None,
        }


def _nvml_handle(pynvml: Any, device: str) -> Any:
    """NVML numbers GPUs ignoring CUDA_VISIBLE_DEVICES; match by UUID where torch has it."""
    import torch

    index = torch.device(device).index or 0
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        except Exception:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def resolve_device(requested: str | None) -> str:
    """'auto' (or None) picks cuda:0 when a GPU is visible, else cpu. Another is checked
    before any worker starts (a ValueError says why): a CUDA device this torch cannot
    reach was torch's AssertionError traceback, and a name torch does not know failed
    every configuration as the model's error."""
    import torch

    if requested in (None, "auto"):
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device: expected auto, cpu or cuda:N, got {requested!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"--device {requested}: no CUDA device is visible here (a CPU-only torch "
                "build, no driver, or CUDA_VISIBLE_DEVICES empty); use --device cpu or auto"
            )
        if (device.index or 0) >= count:
            raise ValueError(
                f"--device {requested}: {count} CUDA device(s) visible here, cuda:0 to "
                f"cuda:{count - 1}"
            )
    return requested


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"cpu: {model} ({os.cpu_count()} cores)"


def device_count(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return max(1, torch.cuda.device_count())
    return 1
