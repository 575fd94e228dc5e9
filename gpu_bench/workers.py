"""Worker processes: W per device, each loading the model and batching from a shared queue.

Processes are started with the "spawn" context: torch's thread pools and CUDA state do
not survive fork, and a forked child can deadlock on a lock held by a parent thread.
Timestamps are time.monotonic(), which on Linux is one system-wide clock, so the parent
can subtract a worker's completion time from its own scheduled send time.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from gpu_bench.models import (
    ModelLoadError,
    ModelSpec,
    batches_up_to,
    forward,
    load_model,
    model_file,
    on_device,
)

READY, FAILED, DONE, STEP = "ready", "failed", "done", "step"
OUT_OF_MEMORY, LOAD_FAILED, MODEL_ERROR, WORKER_DIED = (
    "out_of_memory",
    "load_failed",
    "model_error",
    "worker_died",
)
MODEL_FAILURES = (MODEL_ERROR, LOAD_FAILED, WORKER_DIED)
"""Failures of the model, not of a configuration: they say nothing of its capacity."""


class ConfigInfeasible(Exception):
    """This (workers, batch) cannot run here: the sweep records why and moves on."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class WorkerSettings:
    spec: ModelSpec
    device: str
    workers: int
    max_batch: int
    max_batch_wait_s: float
    threads_per_worker: int = 1
    memory_cap_mib: int | None = None
    load_timeout_s: float = 120.0


def classify_failure(error: BaseException) -> str:
    """Out of memory, a model that cannot be loaded, or a model that raises."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return OUT_OF_MEMORY
    text = str(error).lower()
    if "out of memory" in text or "can't allocate memory" in text or "cannot allocate" in text:
        return OUT_OF_MEMORY
    if isinstance(error, ModelLoadError):
        return LOAD_FAILED
    return MODEL_ERROR


SIGNAL_HINTS = {
    signal.SIGKILL: "killed outright, most often by the kernel's out-of-memory killer",
    signal.SIGSEGV: "a crash in native code: the model's extension, the driver, a library",
    signal.SIGBUS: "a crash in native code, or a full /dev/shm",
    signal.SIGABRT: "aborted by native code (an assertion in a library or the driver)",
}


def how_it_ended(exitcode: int) -> str:
    """A worker's end in words: a negative exit code is the signal that ended it, named,
    with what it most often means ("exited with code -11" said nothing at 3 a.m.)."""
    if exitcode >= 0:
        return f"exited with code {exitcode}"
    try:
        ended_by = signal.Signals(-exitcode)
    except ValueError:
        return f"was ended by signal {-exitcode}"
    hint = SIGNAL_HINTS.get(ended_by)
    return f"was ended by {ended_by.name}" + (f" ({hint})" if hint else "")


def _cap_memory(device: str, cap_mib: int) -> None:
    """Cap this process's memory: a fraction of the GPU, or address space above now on CPU."""
    import torch

    if device.startswith("cuda"):
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_mib * 2**20 / total), device)
        return
    import resource

    with open("/proc/self/status", encoding="ascii") as status:
        vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = vm_kib * 1024 + cap_mib * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _collect_batch(requests: Any, max_batch: int, max_wait_s: float) -> tuple[list[int], bool]:
    """Block for one request, then take more until the batch is full or the wait is over."""
    first = requests.get()
    if first is None:
        return [], True
    batch = [first]
    deadline = time.monotonic() + max_wait_s
    while len(batch) < max_batch:
        remaining = deadline - time.monotonic()
        try:
            item = requests.get(timeout=remaining) if remaining > 0 else requests.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False


def _timed(run: Any, size: int, times: int = 3) -> float:
    """Median seconds of `times` runs of one batch: a single run can catch a hiccup."""
    taken = []
    for _ in range(times):
        started = time.monotonic()
        run(size)
        taken.append(time.monotonic() - started)
    return sorted(taken)[times // 2]


def _failure(worker_id: int, error: BaseException) -> tuple[str, int, str, str]:
    """A FAILED message: a load error's text says it all (the model, and why); any other
    goes with its type, often the best clue (`KeyError: 'logits'`)."""
    said = str(error) if isinstance(error, ModelLoadError) else f"{type(error).__name__}: {error}"
    return (FAILED, worker_id, classify_failure(error), said)


def _exit_with_parent() -> None:
    """End this worker, and the processes its model started (a tokenizer or preprocessing
    sidecar, in the worker's own process group), as soon as the parent process ends,
    however it ends (SIGTERM, SIGKILL, a crash): a worker blocked on the request queue would
    otherwise wait forever, orphaned, holding its memory and its GPU."""
    parent = mp.parent_process()
    if parent is None:
        return
    os.setpgid(0, 0)  # WorkerPool.stop ends the group too

    def watch() -> None:
        parent.join()
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="gpu-bench-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Processes started inside ignore SIGINT from their first instruction on: Ctrl-C
    reaches the whole process group, and the parent alone should act on it (stop the
    workers, keep the checkpoint), not every worker with a traceback of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _end_if_forked(worker_pid: int) -> None:
    """A process the model forked (os.fork in its build or forward) that comes back into
    the worker is no worker: it ends here. Going on, it took requests it could never
    answer (a fork has no queue feeder thread), forked again at each batch it took, and
    outlived gpu-bench, blocked on the request queue."""
    if os.getpid() != worker_pid:
        os._exit(0)


def _hold_threads(torch: Any, threads: int) -> None:
    """--threads-per-worker again, where the model's own setup (or first call) set torch's
    threads: it ran and was measured on its own count, oversubscribing the cores."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def worker_main(worker_id: int, settings: WorkerSettings, requests: Any, results: Any) -> None:
    """Entry point of one worker process; every failure is reported, never raised."""
    _exit_with_parent()
    worker_pid = os.getpid()
    try:
        import torch

        torch.set_num_threads(settings.threads_per_worker)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        if settings.memory_cap_mib is not None:
            _cap_memory(settings.device, settings.memory_cap_mib)
        # gpu-bench's options, which spawn copies, are not the model's: its argparse refused
        sys.argv = [str(model_file(settings.spec) or settings.spec.target)]
        module, example = load_model(settings.spec, settings.device, settings.max_batch)
        _end_if_forked(worker_pid)
        step = lambda what: results.put((STEP, worker_id, what))  # noqa: E731 start() times it
        _hold_threads(torch, settings.threads_per_worker)
        with contextlib.suppress(NotImplementedError):  # an exported program has no modes
            module.eval()
        on_gpu = settings.device.startswith("cuda")
        inputs = batches_up_to(example, settings.max_batch, pin=on_gpu)

        def run(size: int) -> None:
            try:
                with torch.inference_mode():
                    forward(module, on_device(inputs[size], settings.device))
                if on_gpu:
                    torch.cuda.synchronize(settings.device)
            finally:
                _end_if_forked(worker_pid)

        step(f"answer its first call (a batch of {settings.max_batch})")
        run(settings.max_batch)  # the largest batch is where memory runs out
        answered = time.monotonic()  # the first good answer: the calls below are the bench's
        for size in range(1, settings.max_batch):  # each size's first call (a compile, the
            step(f"answer its first call on a batch of {size}")  # kernels chosen for its
            run(size)  # shape) before any is timed, not in a measure
        _hold_threads(torch, settings.threads_per_worker)  # a first call may set them too
        step(f"answer three timed calls on a batch of {settings.max_batch}")
        largest = _timed(run, settings.max_batch)
        step("answer three timed calls on a batch of 1")
        timed = (largest, _timed(run, 1))
        results.put((READY, worker_id, *timed, answered))
    except BaseException as error:
        results.put(_failure(worker_id, error))
        return
    while True:
        batch, stop = _collect_batch(requests, settings.max_batch, settings.max_batch_wait_s)
        if batch:
            started = time.monotonic()
            try:
                run(len(batch))
            except BaseException as error:
                results.put(_failure(worker_id, error))
                return
            results.put((DONE, worker_id, batch, started, time.monotonic()))
        if stop:
            return


@dataclass(frozen=True)
class PoolTimings:
    """What the workers measured while starting: batch times and each one's start-up."""

    batch_seconds: float  # one full batch (the median worker's median run)
    single_seconds: float  # one request alone: no latency target below it can be held
    startup_s: tuple[float, ...]  # process start to first good answer, per worker


class WorkerPool:
    """W spawned workers sharing one request queue; start() waits until all are ready."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._context = mp.get_context("spawn")
        self.requests: Any = self._context.Queue()
        self.results: Any = self._context.Queue()
        self._processes: list[BaseProcess] = []
        self._closed = False

    def start(self) -> PoolTimings:
        """Spawn the workers and wait for each one's first good answer, or ConfigInfeasible."""
        spawned = time.monotonic()
        for worker_id in range(self.settings.workers):
            process = self._context.Process(
                target=worker_main,
                args=(worker_id, self.settings, self.requests, self.results),
                name=f"gpu-bench-worker-{worker_id}",
                daemon=True,
            )
            with _children_ignore_sigint():
                process.start()
            self._processes.append(process)
        timings: list[tuple[float, float, float]] = []
        # Each step of a start (the load, a first call, three timed calls) may take
        # --load-timeout: in all, a model of seconds a call "did not load" at --batch 16.
        steps = {worker: ("load", spawned) for worker in range(self.settings.workers)}
        try:
            while steps:
                worker, (what, since) = min(steps.items(), key=lambda item: item[1][1])
                left = since + self.settings.load_timeout_s - time.monotonic()
                message = self.next_message(min(0.5, max(0.0, left)))
                if message is not None and message[0] == STEP:
                    steps[message[1]] = (message[2], time.monotonic())
                elif message is not None and message[0] == READY:
                    timings.append((message[2], message[3], message[4] - spawned))
                    del steps[message[1]]
                elif message is None and left <= 0:
                    raise ConfigInfeasible(*self._too_long(worker, what))
        except BaseException:
            # No worker was given work yet, and one still loading reads no queue: asked to
            # finish, it was waited on for the whole grace (Ctrl-C during a model's long
            # load took 5 s more to end), so none is asked.
            self.stop(grace_s=0.0)
            raise
        middle = len(timings) // 2
        return PoolTimings(
            batch_seconds=sorted(t[0] for t in timings)[middle],
            single_seconds=sorted(t[1] for t in timings)[middle],
            startup_s=tuple(t[2] for t in timings),
        )

    def _too_long(self, worker: int, what: str) -> tuple[str, str]:
        """A start step past --load-timeout: a load, or a call the model did not answer."""
        late = f"within {self.settings.load_timeout_s:g} s (--load-timeout)"
        if what == "load":
            return LOAD_FAILED, f"workers did not load {late}"
        return MODEL_ERROR, f"gpu-bench-worker-{worker} loaded but did not {what} {late}"

    def submit(self, request_id: int) -> None:
        self.requests.put(request_id)

    def next_message(self, timeout: float) -> tuple[Any, ...] | None:
        """The next worker message; a failure or a dead worker raises ConfigInfeasible."""
        try:
            if timeout > 0:
                message = self.results.get(timeout=timeout)
            else:
                message = self.results.get_nowait()
        except queue.Empty:
            self._check_alive()
            return None
        if message[0] == FAILED:
            raise ConfigInfeasible(message[2], message[3])
        return message

    def _check_alive(self) -> None:
        for process in self._processes:
            if process.exitcode is not None:
                kind = OUT_OF_MEMORY if process.exitcode == -9 else WORKER_DIED
                raise ConfigInfeasible(kind, f"{process.name} {how_it_ended(process.exitcode)}")

    def stop(self, grace_s: float = 5.0) -> None:
        """Ask workers to finish (within `grace_s`), then terminate and kill stragglers;
        idempotent."""
        for process in self._processes:
            if process.is_alive() and grace_s > 0:
                with contextlib.suppress(Exception):
                    self.requests.put(None)
        deadline = time.monotonic() + grace_s
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
            if process.pid is not None:  # what the model started: sidecars outlived the
                with contextlib.suppress(OSError):  # run, one a worker and configuration
                    os.killpg(process.pid, signal.SIGKILL)
        self._processes.clear()
        if self._closed:
            return
        self._closed = True
        for channel in (self.requests, self.results):
            channel.cancel_join_thread()
            channel.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def default_threads_per_worker(device: str, workers: int) -> int:
    """On CPU the workers share the cores, less one for the load generator; on a GPU, one.

    Oversubscribed OpenMP threads spin-wait against each other and against the
    generator, which shows up as latency spikes of a hundred times the compute time.
    """
    if device.startswith("cuda"):
        return 1
    return max(1, ((os.cpu_count() or 1) - 1) // workers)
