"""A small real sweep on a reference model, end to end through the CLI."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from typer.testing import CliRunner

from gpu_bench.cli import app
from gpu_bench.profile import load_profile

QUICK = [
    "--workers", "1,2",
    "--batch", "4",
    "--latency-target", "0.5s",
    "--warmup", "0.2s",
    "--window", "0.3s",
    "--min-window-requests", "10",
    "--repeats", "1",
    "--precision", "0.3",
    "--device", "cpu",
    "--gpus-per-node", "4",
]  # fmt: skip


def test_small_sweep_writes_a_profile_the_daemon_loads(tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--model", "cnn", *QUICK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert multiprocessing.active_children() == []

    profile = load_profile(out)
    assert profile.model == "gpu_bench.models:small_cnn"
    assert profile.device.startswith("cpu")
    assert profile.workers_per_gpu in (1, 2)
    assert profile.batch_size == 4
    assert profile.per_gpu_rps > 1
    assert profile.per_node_rps == profile.per_gpu_rps * 4
    assert profile.latency_p95_s <= profile.latency_target_s == 0.5
    assert profile.gpu_utilization is None
    assert "--model cnn" in profile.command
    assert (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"

    checkpoint = tmp_path / "profile.yaml.checkpoint.json"
    assert checkpoint.exists()
    again = runner.invoke(app, ["run", "--model", "cnn", *QUICK, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "resuming" in again.output
    assert load_profile(out).per_gpu_rps == profile.per_gpu_rps

    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0
    assert "per_node_rps" in shown.output


def test_other_settings_do_not_resume_a_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    (tmp_path / "profile.yaml.checkpoint.json").write_text(
        '{"settings": {"model": "gpu_bench.models:small_cnn"}, "results": []}'
    )
    result = CliRunner().invoke(app, ["run", "--model", "cnn", *QUICK, "--out", str(out)])
    assert result.exit_code == 2
    assert "other settings" in result.output


def test_show_names_the_bad_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\n")
    result = CliRunner().invoke(app, ["show", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output
    assert "per_node_rps" in result.output
