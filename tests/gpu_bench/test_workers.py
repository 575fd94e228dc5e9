"""Infeasible configurations are marked and skipped, and no worker process outlives a run."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from gpu_bench.models import ModelLoadError, parse_model_spec
from gpu_bench.sweep import run_config, run_sweep
from gpu_bench.workers import (
    LOAD_FAILED,
    MODEL_ERROR,
    OUT_OF_MEMORY,
    WORKER_DIED,
    ConfigInfeasible,
    WorkerPool,
    WorkerSettings,
    classify_failure,
    how_it_ended,
)
from tests.gpu_bench.quick_settings import quick
from tests.support import wait_for

TEST_MODELS = "tests.gpu_bench.models_for_tests"


@pytest.fixture(autouse=True)
def no_worker_left_behind():
    yield
    assert multiprocessing.active_children() == []


def test_a_model_that_raises_is_infeasible() -> None:
    result = run_config(quick(f"{TEST_MODELS}:raising_model"), workers=2, batch=2)
    assert result.status == "infeasible"
    assert result.reason.startswith(MODEL_ERROR)
    assert "this model always fails" in result.reason


def test_a_model_returning_a_generator_is_run_to_its_end() -> None:
    """A generator's body runs only as it is read: left unread, a decoder that fails (or
    takes seconds) at its third step passed at microseconds a batch."""
    result = run_config(quick(f"{TEST_MODELS}:streaming_model"), workers=1, batch=2)
    assert result.status == "infeasible"
    assert result.failure_kind == MODEL_ERROR
    assert "ValueError: the third step fails" in result.reason


def test_each_call_is_given_the_inputs_not_what_an_earlier_call_left() -> None:
    """A batch is built once per size and reused: on the CPU a model changing its input
    in place was fed its own earlier output from the second call on."""
    result = run_config(quick(f"{TEST_MODELS}:in_place_model"), workers=1, batch=2)
    assert result.failure_kind is None, result.reason


def test_a_model_that_hangs_under_load_is_a_model_error_at_once() -> None:
    """One stuck batch ends the configuration; restarting the workers only hung again. It
    hangs on the first requests it serves: the burst that measures the capacity."""
    started = time.monotonic()
    result = run_config(quick(f"{TEST_MODELS}:hanging_model", batches=[1]), workers=1, batch=1)
    assert result.status == "infeasible"
    assert result.failure_kind == MODEL_ERROR
    assert "did not finish within 5 s of the capacity burst" in result.reason
    assert "the model hangs" in result.reason
    assert result.probes == []
    assert time.monotonic() - started < 60


def test_a_model_over_the_memory_cap_is_out_of_memory() -> None:
    settings = quick(f"{TEST_MODELS}:memory_hog", memory_cap_mib=512)
    result = run_config(settings, workers=1, batch=2)
    assert result.status == "infeasible"
    assert result.reason.startswith(OUT_OF_MEMORY), result.reason


def test_a_worker_a_signal_ended_is_said_by_the_signal_and_what_it_means() -> None:
    """A model whose native code crashes: the signal is named, not 'exited with code -11'."""
    result = run_config(quick(f"{TEST_MODELS}:crashing_model"), workers=1, batch=1)
    assert result.status == "infeasible"
    assert result.failure_kind == WORKER_DIED
    assert "was ended by SIGSEGV (a crash in native code" in result.reason, result.reason


def test_how_a_worker_ended_is_said_in_words() -> None:
    assert how_it_ended(3) == "exited with code 3"
    assert how_it_ended(-9).startswith("was ended by SIGKILL (killed outright")
    assert how_it_ended(-15) == "was ended by SIGTERM"
    assert how_it_ended(-200) == "was ended by signal 200"


def test_a_model_that_cannot_load_is_infeasible() -> None:
    for target in (f"{TEST_MODELS}:absent", f"{TEST_MODELS}:not_a_model"):
        result = run_config(quick(target), workers=1, batch=2)
        assert result.status == "infeasible"
        assert result.reason.startswith(LOAD_FAILED), result.reason


def test_the_sweep_goes_on_past_infeasible_configs(tmp_path) -> None:
    settings = quick(f"{TEST_MODELS}:raising_model", workers=[1, 2], batches=[1, 4])
    sweep = run_sweep(settings, tmp_path / "checkpoint.json")
    assert [(r.workers, r.batch, r.status) for r in sweep.results] == [(1, 1, "infeasible")]
    assert set(sweep.skipped) == {"2x1", "1x4", "2x4"}
    assert sweep.chosen() is None


def test_out_of_memory_at_a_larger_batch_keeps_the_smaller_one(tmp_path) -> None:
    settings = quick(f"{TEST_MODELS}:batch_scaled_hog", batches=[1, 4], memory_cap_mib=400)
    sweep = run_sweep(settings, tmp_path / "checkpoint.json")
    statuses = {(r.workers, r.batch): r.status for r in sweep.results}
    assert statuses == {(1, 1): "ok", (1, 4): "infeasible"}
    assert OUT_OF_MEMORY in sweep.results[1].reason
    chosen = sweep.chosen()
    assert chosen is not None and (chosen.workers, chosen.batch) == (1, 1)


def test_pool_stop_ends_every_worker() -> None:
    settings = WorkerSettings(
        parse_model_spec("cnn"), "cpu", workers=2, max_batch=1, max_batch_wait_s=0.0
    )
    pool = WorkerPool(settings)
    timings = pool.start()
    assert timings.batch_seconds > 0 and timings.single_seconds > 0
    assert len(timings.startup_s) == 2 and min(timings.startup_s) > 0
    processes = multiprocessing.active_children()
    assert len(processes) == 2
    pool.stop()
    assert not any(p.is_alive() for p in processes)


def test_start_up_ends_at_the_first_good_answer(tmp_path, monkeypatch) -> None:
    """The profile's startup_p50_s and startup_p90_s are worker start to first good answer
    (README), which the daemon plans a node's start with; they ran on to the end of the
    bench's own warm-up and timing calls, a call per batch size and six more (with a 2 s
    batch at --batch 16: 40 s more). Read against the clock the model's calls began by."""
    calls = tmp_path / "calls"
    monkeypatch.setenv("GPU_BENCH_TEST_CALLS", str(calls))  # the spawned worker inherits it
    spec = parse_model_spec(f"{TEST_MODELS}:call_clock_model")
    before = time.monotonic()
    pool = WorkerPool(WorkerSettings(spec, "cpu", workers=1, max_batch=4, max_batch_wait_s=0.0))
    timings = pool.start()
    pool.stop()
    began = [float(line) for line in calls.read_text().split()]
    assert len(began) == 10  # the first, a warm-up of sizes 1 to 3, three timed of 4 and 1
    assert before + timings.startup_s[0] <= began[1], "counted past the first answer"


def test_a_process_the_model_forks_ends_where_it_comes_back(tmp_path, monkeypatch) -> None:
    """A child of os.fork() in the forward returned into the worker's loop: it took
    requests it never answered (the run said the model hangs), forked again at each batch
    (hundreds of processes in half a minute) and outlived gpu-bench. It ends there, and the
    model is measured."""
    pids = tmp_path / "pids"
    monkeypatch.setenv("GPU_BENCH_TEST_PIDS", str(pids))
    try:
        result = run_config(quick(f"{TEST_MODELS}:forking_model"), workers=1, batch=1)
        children = [int(pid) for pid in pids.read_text().split()]
        assert children
        assert not any(_running(child) for child in children), "the fork outlived the run"
        assert result.status == "ok", result.reason
    finally:
        for child in [int(pid) for pid in pids.read_text().split()] if pids.exists() else []:
            if _running(child):
                os.kill(child, signal.SIGKILL)


def test_a_process_the_model_started_ends_with_its_worker(tmp_path, monkeypatch) -> None:
    """A helper the model starts as it loads (a tokenizer sidecar) outlived its worker and
    gpu-bench: one more for each worker of each configuration measured, each holding its
    memory. The pool's stop ends it with the worker."""
    pids = tmp_path / "pids"
    monkeypatch.setenv("GPU_BENCH_TEST_PIDS", str(pids))
    spec = parse_model_spec(f"{TEST_MODELS}:sidecar_model")
    pool = WorkerPool(WorkerSettings(spec, "cpu", workers=2, max_batch=1, max_batch_wait_s=0.0))
    try:
        pool.start()
        helpers = [int(pid) for pid in pids.read_text().split()]
        assert len(helpers) == 2 and all(_running(helper) for helper in helpers)
        pool.stop()
        assert wait_for(lambda: not any(_running(helper) for helper in helpers), 10)
    finally:
        pool.stop()
        for helper in [int(pid) for pid in pids.read_text().split()] if pids.exists() else []:
            if _running(helper):
                os.kill(helper, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped (Linux's /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_every_batch_size_is_run_once_before_the_workers_are_ready(tmp_path, monkeypatch) -> None:
    """A size's first call can be slow (torch.compile, a GPU's kernels chosen per shape): it
    belongs to the start-up, not to a measurement that happens to form that batch first."""
    sizes = tmp_path / "sizes"
    monkeypatch.setenv("GPU_BENCH_TEST_SIZES", str(sizes))  # the spawned worker inherits it
    spec = parse_model_spec(f"{TEST_MODELS}:size_recording_model")
    pool = WorkerPool(WorkerSettings(spec, "cpu", workers=1, max_batch=4, max_batch_wait_s=0.0))
    pool.start()
    pool.stop()
    assert {int(line) for line in sizes.read_text().split()} == {1, 2, 3, 4}


def test_a_model_setting_torch_threads_as_it_builds_runs_on_the_threads_asked(
    tmp_path, monkeypatch
) -> None:
    """The worker set --threads-per-worker before the model was built, so a model whose
    setup called torch.set_num_threads ran (and was measured) on its own count instead:
    the profile said nothing of it, and workers oversubscribed the cores."""
    threads = tmp_path / "threads"
    monkeypatch.setenv("GPU_BENCH_TEST_THREADS", str(threads))  # the spawned worker inherits it
    spec = parse_model_spec(f"{TEST_MODELS}:thread_setting_model")
    settings = WorkerSettings(
        spec, "cpu", workers=1, max_batch=2, max_batch_wait_s=0.0, threads_per_worker=1
    )
    pool = WorkerPool(settings)
    pool.start()
    pool.stop()
    assert set(threads.read_text().split()) == {"1"}


def test_failure_classification() -> None:
    assert classify_failure(MemoryError()) == OUT_OF_MEMORY
    assert classify_failure(RuntimeError("CUDA out of memory. Tried to allocate")) == OUT_OF_MEMORY
    assert classify_failure(RuntimeError("DefaultCPUAllocator: can't allocate memory")) == (
        OUT_OF_MEMORY
    )
    assert classify_failure(ModelLoadError("x")) == LOAD_FAILED
    assert classify_failure(ValueError("x")) == MODEL_ERROR
    assert str(ConfigInfeasible(MODEL_ERROR, "boom")) == "model_error: boom"


def test_a_target_below_the_service_time_is_impossible_at_once() -> None:
    """0.7 s per request against a 0.5 s target: refused before any rate is probed."""
    result = run_config(quick(f"{TEST_MODELS}:slow_model"), workers=1, batch=1)
    assert result.status == "impossible"
    assert "0.5s" in result.reason and "0.7" in result.reason
    assert result.probes == []
    assert result.single_seconds is not None and result.single_seconds >= 0.7


def test_each_step_of_a_start_is_given_the_load_timeout() -> None:
    """A model of 2 s a call loads in seconds, but the calls the bench makes before
    measuring take 14 s: counted in the load's 10 s, it 'did not load', a model failure
    (exit 3) for a model that runs. Each step gets the timeout: it is measured, and found
    slower than the target."""
    settings = quick(f"{TEST_MODELS}:seconds_a_call_model", load_timeout_s=10.0)
    result = run_config(settings, workers=1, batch=1)
    assert result.status == "impossible", result.reason
    assert result.single_seconds is not None and result.single_seconds >= 2.0


ARGPARSE_MODEL = """
import argparse

import torch
from torch import nn

parser = argparse.ArgumentParser(description="serve the tagger")
parser.add_argument("--hidden", type=int, default=8)
ARGS = parser.parse_args()  # at import, as a script run by `python tagger.py` does


def build():
    return nn.Linear(ARGS.hidden, 2), torch.randn(1, ARGS.hidden)
"""


def test_a_model_parsing_its_command_line_at_import_is_not_given_gpu_benchs(tmp_path) -> None:
    """A spawned worker's sys.argv was its parent's (gpu-bench run --model ... --out ...):
    a model parsing its options as it is imported failed to load, its argparse saying
    'gpu-bench: error: unrecognized arguments: run --model ...'. It is given none, as
    `python tagger.py` gives it."""
    path = tmp_path / "tagger.py"
    path.write_text(ARGPARSE_MODEL)
    settings = WorkerSettings(
        parse_model_spec(f"{path}:build"), "cpu", workers=1, max_batch=1, max_batch_wait_s=0.0
    )
    with WorkerPool(settings) as pool:
        assert pool.start().single_seconds > 0
