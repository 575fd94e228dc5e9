"""A run that is stopped (Ctrl-C, SIGTERM) or killed leaves no worker behind: the parent
stops its workers and says how to resume, and a worker whose parent vanished ends itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_for

MODEL = "tests.gpu_bench.models_for_tests:pid_writing_model"
LOADING_MODEL = "tests.gpu_bench.models_for_tests:long_loading_model"
SIGINT_BIT = 1 << (signal.SIGINT - 1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _ignored_signals(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)


@contextlib.contextmanager
def _started_run(
    tmp_path: Path, model: str, workers: int
) -> Iterator[tuple[subprocess.Popen, list[int]]]:
    """`gpu-bench run` in a process of its own, once each of its workers has written its
    pid; afterwards, whatever the test did, none of them is left running."""
    pids = tmp_path / "pids"
    env = {**os.environ, "GPU_BENCH_TEST_PIDS": str(pids)}
    command = [sys.executable, "-m", "gpu_bench.cli", "run", "--model", model,
               "--workers", str(workers), "--batch", "1", "--device", "cpu",
               "--out", str(tmp_path / "profile.yaml")]  # fmt: skip
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started: list[int] = []
    try:
        assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) == workers, 120)
        started = [int(pid) for pid in pids.read_text().split()]
        yield run, started
    finally:
        run.kill()
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_run_leaves_no_worker_behind(tmp_path: Path, stop: signal.Signals) -> None:
    with _started_run(tmp_path, MODEL, workers=1) as (run, (worker,)):
        assert _ignored_signals(worker) & SIGINT_BIT, "Ctrl-C is the parent's to act on"
        run.send_signal(stop)
        output, _ = run.communicate(timeout=30)
        if stop == signal.SIGTERM:
            assert run.returncode == 130, output
            assert b"interrupted; no configuration was measured yet" in output
        assert wait_for(lambda: not _alive(worker), 10), "the worker outlived its parent"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_run_stopped_while_its_model_loads_ends_at_once(tmp_path: Path) -> None:
    """A worker still loading its model reads no queue, so asking it to finish only waited
    out the grace a working one gets (5 s) before it was ended: the parent ends it at once."""
    with _started_run(tmp_path, LOADING_MODEL, workers=2) as (run, workers):
        began = time.monotonic()
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=30)
        took = time.monotonic() - began
        assert run.returncode == 130, output
        assert took < 4.0, f"{took:.1f} s from SIGTERM to exit: the loading workers were waited on"
        assert wait_for(lambda: not any(_alive(pid) for pid in workers), 10)
