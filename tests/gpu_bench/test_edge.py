"""The definition of done: on a model of known speed, the profile's rate is the queueing edge.

The model sleeps a fixed 20.5 ms per batch, whatever its size. The edge it should find
(the highest rate whose p95 holds 200 ms, about ten times the service time) comes from a
discrete-event simulation of the harness's own batching rule (tests/gpu_bench/queueing.py),
not from a figure written here. Each configuration is a full `gpu-bench run` with real
worker processes; the whole set takes about 4-5 minutes on 2 busy cores
(bench/gpu_bench_edge.py times it as one sweep and prints the ratios).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpu_bench.cli import app
from gpu_bench.profile import load_profile
from tests.gpu_bench.models_for_tests import SERVICE_S
from tests.gpu_bench.queueing import Batching, edge_rate

TARGET_S = 0.200
MAX_BATCH_WAIT_S = 0.010
MODEL = "tests.gpu_bench.models_for_tests:fixed_time_model"


@pytest.mark.parametrize(("workers", "batch"), [(1, 1), (2, 1), (1, 4), (2, 4)])
def test_the_profile_rate_is_the_queueing_edge(tmp_path: Path, workers: int, batch: int) -> None:
    theory = edge_rate(Batching(workers, batch, MAX_BATCH_WAIT_S, SERVICE_S), TARGET_S)
    out = tmp_path / "profile.yaml"
    options = [
        "--model", MODEL, "--out", str(out), "--workers", str(workers), "--batch", str(batch),
        "--latency-target", f"{TARGET_S * 1000:g}ms", "--max-batch-wait", "10ms",
        "--device", "cpu", "--gpus-per-node", "1", "--threads-per-worker", "1",
    ]  # fmt: skip
    result = CliRunner().invoke(app, ["run", *options])
    assert result.exit_code == 0, result.output
    assert multiprocessing.active_children() == []
    profile = load_profile(out)
    ratio = profile.per_gpu_rps / theory
    assert 0.9 <= ratio <= 1.1, f"{profile.per_gpu_rps} req/s against {theory:.1f} in theory"
    assert profile.percentile == 0.95 and profile.latency_target_s == TARGET_S
    assert profile.rate_ceiling_rps is not None and profile.rate_ceiling_rps > profile.per_gpu_rps
    assert profile.generator_late_send_share is not None
    assert profile.generator_late_send_share <= 0.05
    assert profile.startup_p50_s is not None and profile.startup_p50_s > 0
