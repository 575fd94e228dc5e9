"""Model factories the worker processes import by name in the gpu_bench tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import torch
from torch import nn


class _Raises(nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raise ValueError("this model always fails")


class _Hog(nn.Module):
    """Asks for 8 GiB per call: over any sensible memory cap."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ones(2**31, dtype=torch.float32).sum() + inputs.sum()


def raising_model() -> tuple[nn.Module, torch.Tensor]:
    return _Raises(), torch.zeros(1, 4)


def memory_hog() -> tuple[nn.Module, torch.Tensor]:
    return _Hog(), torch.zeros(1, 4)


def not_a_model() -> object:
    return "nope"


class _GrowingHog(nn.Module):
    """Needs 192 MiB per request in the batch: batch 1 fits a 400 MiB cap, batch 4 does not."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        scratch = torch.empty(inputs.shape[0] * 48 * 2**20, dtype=torch.float32)
        return scratch[:1].fill_(1.0) + inputs.sum()


def batch_scaled_hog() -> tuple[nn.Module, torch.Tensor]:
    return _GrowingHog(), torch.zeros(1, 4)


class _Slow(nn.Module):
    """Takes 0.7 s per batch: no rate at all keeps p95 under a 0.5 s target."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        time.sleep(0.7)
        return inputs.sum(dim=1)


def slow_model() -> tuple[nn.Module, torch.Tensor]:
    return _Slow(), torch.zeros(1, 4)


class _Seconds(nn.Module):
    """Takes 2 s per call, as a diffusion model's steps add up to: seven calls before any
    measurement (batch 1: its first, then three timed twice) take 14 s."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        time.sleep(2.0)
        return inputs.sum(dim=1)


def seconds_a_call_model() -> tuple[nn.Module, torch.Tensor]:
    return _Seconds(), torch.zeros(1, 4)


SERVICE_S = 0.0205


class _FixedTime(nn.Module):
    """Takes SERVICE_S per batch whatever its size: a model of known speed for queueing theory."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        time.sleep(SERVICE_S)
        return inputs.sum(dim=1)


def fixed_time_model() -> tuple[nn.Module, torch.Tensor]:
    return _FixedTime(), torch.zeros(1, 4)


class _Matcher(nn.Module):
    """Two inputs, as a face matcher takes two images: refuses a batch the inputs disagree on."""

    def forward(self, probe: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
        if probe.shape[0] != gallery.shape[0]:
            raise ValueError("probe and gallery batches differ")
        return torch.nn.functional.cosine_similarity(probe, gallery)


def two_input_model() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    return _Matcher(), (torch.randn(1, 8), torch.randn(1, 8))


class _Tagger(nn.Module):
    """Keyword inputs of two dtypes, as a text model takes token ids and a mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(100, 8)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[0] != attention_mask.shape[0]:
            raise ValueError("input_ids and attention_mask batches differ")
        return (self.embedding(input_ids) * attention_mask.unsqueeze(-1)).mean(dim=1)


def keyword_input_model() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    ids = torch.randint(0, 100, (1, 6))
    return _Tagger(), {"input_ids": ids, "attention_mask": torch.ones(1, 6)}


def batch_of_two_example() -> tuple[nn.Module, torch.Tensor]:
    return nn.Identity(), torch.zeros(2, 4)


def no_tensor_example() -> tuple[nn.Module, dict[str, int]]:
    return nn.Identity(), {"size": 3}


def slow_loading_model() -> tuple[nn.Module, torch.Tensor]:
    """Takes 3 s to build, as a large model takes minutes to load from disk."""
    time.sleep(3.0)
    return nn.Identity(), torch.zeros(1, 4)


class _SizeRecorder(nn.Module):
    """Appends each batch size it is called with to the file $GPU_BENCH_TEST_SIZES."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with open(os.environ["GPU_BENCH_TEST_SIZES"], "a", encoding="utf-8") as sizes:
            sizes.write(f"{inputs.shape[0]}\n")
        return inputs


def size_recording_model() -> tuple[nn.Module, torch.Tensor]:
    return _SizeRecorder(), torch.zeros(1, 4)


class _ThreadRecorder(nn.Module):
    """Appends torch's intra-op thread count at each call to $GPU_BENCH_TEST_THREADS."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with open(os.environ["GPU_BENCH_TEST_THREADS"], "a", encoding="utf-8") as threads:
            threads.write(f"{torch.get_num_threads()}\n")
        return inputs


def thread_setting_model() -> tuple[nn.Module, torch.Tensor]:
    """Sets torch's threads as it builds, as a model's own setup code may."""
    torch.set_num_threads(3)
    return _ThreadRecorder(), torch.zeros(1, 4)


class _CallClock(nn.Module):
    """Appends the monotonic time each call begins to $GPU_BENCH_TEST_CALLS, then serves
    slowly (SERVICE_S)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with open(os.environ["GPU_BENCH_TEST_CALLS"], "a", encoding="utf-8") as calls:
            calls.write(f"{time.monotonic()!r}\n")
        time.sleep(SERVICE_S)
        return inputs


def call_clock_model() -> tuple[nn.Module, torch.Tensor]:
    return _CallClock(), torch.zeros(1, 4)


class _RaisesBrackets(nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raise ValueError("shape [/batch] is not [bold]1[/bold] for :three: inputs")


def bracketed_error_model() -> tuple[nn.Module, torch.Tensor]:
    """Raises a message that rich would read as markup and an emoji code."""
    return _RaisesBrackets(), torch.zeros(1, 4)


def pid_writing_model() -> tuple[nn.Module, torch.Tensor]:
    """Writes the worker's pid to $GPU_BENCH_TEST_PIDS as it loads, then serves slowly."""
    with open(os.environ["GPU_BENCH_TEST_PIDS"], "a", encoding="utf-8") as pids:
        pids.write(f"{os.getpid()}\n")
    return _FixedTime(), torch.zeros(1, 4)


def crashing_model() -> tuple[nn.Module, torch.Tensor]:
    """Ends its worker with SIGSEGV as it loads, as a broken native extension would."""
    import ctypes

    ctypes.string_at(0)
    return nn.Identity(), torch.zeros(1, 4)


def long_loading_model() -> tuple[nn.Module, torch.Tensor]:
    """Writes the worker's pid to $GPU_BENCH_TEST_PIDS, then loads for two minutes."""
    with open(os.environ["GPU_BENCH_TEST_PIDS"], "a", encoding="utf-8") as pids:
        pids.write(f"{os.getpid()}\n")
    time.sleep(120.0)
    return nn.Identity(), torch.zeros(1, 4)


class _HangsWhenServing(nn.Module):
    """Answers the start-up calls, then never returns: a deadlock under load."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > 7:  # batch 1 at start: one call, then three timed twice
            time.sleep(3600)
        return inputs


def hanging_model() -> tuple[nn.Module, torch.Tensor]:
    return _HangsWhenServing(), torch.zeros(1, 4)


def missing_weights_model() -> tuple[nn.Module, torch.Tensor]:
    raise FileNotFoundError("weights.bin")


def model_of_required_path(path: str) -> tuple[nn.Module, torch.Tensor]:
    return nn.Identity(), torch.zeros(1, 4)


def exiting_factory() -> tuple[nn.Module, torch.Tensor]:
    raise SystemExit("usage: serve.py --weights PATH")


class _Streaming(nn.Module):
    """Yields three steps, as a decoder streams tokens; the third raises."""

    def forward(self, inputs: torch.Tensor) -> Iterator[torch.Tensor]:
        for step in range(3):
            if step == 2:
                raise ValueError("the third step fails")
            yield inputs + step


def streaming_model() -> tuple[nn.Module, torch.Tensor]:
    return _Streaming(), torch.zeros(1, 4)


def meta_model() -> tuple[nn.Module, torch.Tensor]:
    """Built on the meta device, as for a large model, and never given its weights."""
    with torch.device("meta"):
        module = nn.Linear(4, 2)
    return module, torch.zeros(1, 4)


class _InPlace(nn.Module):
    """Adds 1 to its input in place, as `x /= 255` normalises; refuses an input it has seen."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.max() > 0:
            raise ValueError("given an input an earlier call changed")
        return inputs.add_(1.0)


def in_place_model() -> tuple[nn.Module, torch.Tensor]:
    return _InPlace(), torch.zeros(1, 4)


class _ForksOnce(nn.Module):
    """Forks once as it serves and lets the child return, as a forgotten os.fork() for a
    background save does; the child's pid goes to $GPU_BENCH_TEST_PIDS."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 10:  # past the start-up calls: batch 1 has seven
            child = os.fork()
            if child:
                with open(os.environ["GPU_BENCH_TEST_PIDS"], "a", encoding="utf-8") as pids:
                    pids.write(f"{child}\n")
        return inputs


def forking_model() -> tuple[nn.Module, torch.Tensor]:
    return _ForksOnce(), torch.zeros(1, 4)


def sidecar_model() -> tuple[nn.Module, torch.Tensor]:
    """Starts a helper process as it loads, as a tokenizer or preprocessing sidecar is,
    and writes its pid to $GPU_BENCH_TEST_PIDS."""
    import subprocess
    import sys

    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["GPU_BENCH_TEST_PIDS"], "a", encoding="utf-8") as pids:
        pids.write(f"{helper.pid}\n")
    return nn.Identity(), torch.zeros(1, 4)
