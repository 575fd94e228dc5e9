"""A small real sweep on a reference model, end to end through the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gpu_bench.cli import app
from gpu_bench.histogram import GROWTH
from gpu_bench.profile import load_profile
from tests.support import full_disk_under

QUICK = [
    "--workers", "1,2",
    "--batch", "4",
    "--latency-target", "0.5s",
    "--warmup", "0.2s",
    "--max-warmup", "0.5s",
    "--block-requests", "10",
    "--max-requests", "100",
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
    # The pass rule counts exact latencies; the profile's p95 is a histogram bucket's
    # upper edge, which may read up to one bucket (GROWTH) above the latency itself.
    assert profile.latency_target_s == 0.5
    assert profile.latency_p95_s <= profile.latency_target_s * GROWTH
    assert profile.gpu_utilization is None
    assert "--model cnn" in profile.command
    assert (tmp_path / "profile.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((tmp_path / "profile.csv").open()))
    checkpoint_probes = json.loads((tmp_path / "profile.yaml.checkpoint.json").read_text())
    probes = [p for r in checkpoint_probes["results"] for p in r["probes"]]
    assert len(rows) == len(probes) > 0
    assert {row["workers"] for row in rows} <= {"1", "2"}
    assert float(rows[0]["rate_rps"]) == probes[0]["rate_rps"]

    checkpoint = tmp_path / "profile.yaml.checkpoint.json"
    assert checkpoint.exists()
    # How long a load may take shapes no figure: another one still resumes.
    longer = ["--load-timeout", "20m"]
    again = runner.invoke(app, ["run", "--model", "cnn", *QUICK, *longer, "--out", str(out)])
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


MODELS = "tests.gpu_bench.models_for_tests"
ONE = ["--workers", "1", "--batch", "1", "--device", "cpu", "--gpus-per-node", "1"]


def test_a_raising_model_exits_with_its_own_code_and_message(tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    model = f"{MODELS}:raising_model"
    result = CliRunner().invoke(app, ["run", "--model", model, *ONE, "--out", str(out)])
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())
    assert f"model {model} failed" in said and "this model always fails" in said
    assert not out.exists()


def test_a_rerun_after_the_model_is_fixed_tries_it_again(tmp_path: Path) -> None:
    """The checkpoint keeps measurements, not the model's failures: resumed, the rerun
    after a fix said the old failure again without trying the model."""
    model = tmp_path / "served.py"
    weights = tmp_path / "weights.txt"
    model.write_text(
        "from pathlib import Path\n"
        "import torch\n"
        "def build():\n"
        f"    Path({str(weights)!r}).read_text()\n"
        "    return torch.nn.Identity(), torch.zeros(1, 4)\n"
    )
    out = tmp_path / "profile.yaml"
    quick = [*ONE, "--latency-target", "0.5s", "--warmup", "0.2s", "--max-warmup", "0.5s",
             "--block-requests", "10", "--max-requests", "100", "--repeats", "1",
             "--precision", "0.3"]  # fmt: skip
    command = ["run", "--model", f"{model}:build", *quick, "--out", str(out)]
    failed = CliRunner(env={"COLUMNS": "300"}).invoke(app, command)
    assert failed.exit_code == 3, failed.output
    assert "FileNotFoundError" in failed.output
    weights.write_text("fixed")
    fixed = CliRunner(env={"COLUMNS": "300"}).invoke(app, command)
    assert fixed.exit_code == 0, fixed.output
    assert "FileNotFoundError" not in fixed.output
    assert load_profile(out).per_gpu_rps > 0
    assert load_profile(out).model_sha256 == hashlib.sha256(model.read_bytes()).hexdigest()


def test_a_rerun_after_the_model_file_changed_measures_it_again(tmp_path: Path) -> None:
    """The checkpoint's measurements are of other bytes once the file has changed: none is
    taken up, and the run says so; the profile names the file measured by its digest."""
    model = tmp_path / "served.py"
    model.write_text(
        "import time\nimport torch\n"
        "class Fixed(torch.nn.Module):\n"
        "    def forward(self, x):\n        time.sleep(0.02)\n        return x\n"
        "def build():\n    return Fixed(), torch.zeros(1, 4)\n"
    )  # 20 ms a batch: a rate search that ends within a few probes
    out = tmp_path / "profile.yaml"
    quick = [*ONE, "--latency-target", "0.5s", "--warmup", "0.2s", "--max-warmup", "0.5s",
             "--block-requests", "10", "--max-requests", "100", "--repeats", "1",
             "--precision", "0.3"]  # fmt: skip
    command = ["run", "--model", f"{model}:build", *quick, "--out", str(out)]
    runner = CliRunner(env={"COLUMNS": "300"})
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    model.write_text(model.read_text() + "# a faster build, say\n")
    changed = runner.invoke(app, command)
    assert changed.exit_code == 0, changed.output
    said = " ".join(changed.output.split())
    assert "the model has changed since" in said and "measured again" in said
    assert "resuming" not in changed.output
    assert load_profile(out).model_sha256 == hashlib.sha256(model.read_bytes()).hexdigest()


def test_a_model_message_is_printed_as_it_is(tmp_path: Path) -> None:
    """Brackets and colons in a model's error are its text, not rich markup or emoji."""
    out = tmp_path / "profile.yaml"
    model = f"{MODELS}:bracketed_error_model"
    result = CliRunner(env={"COLUMNS": "300"}).invoke(
        app, ["run", "--model", model, *ONE, "--out", str(out)]
    )
    assert result.exit_code == 3, result.output
    assert "shape [/batch] is not [bold]1[/bold] for :three: inputs" in result.output
    assert not out.exists()


def test_an_impossible_target_fails_fast_with_both_numbers(tmp_path: Path) -> None:
    """0.7 s per request against a 0.5 s target: refused before any rate is probed."""
    out = tmp_path / "profile.yaml"
    model = f"{MODELS}:slow_model"
    options = ["--latency-target", "0.5s", "--out", str(out)]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["run", "--model", model, *ONE, *options]
    )
    assert result.exit_code == 4, result.output
    assert "target impossible" in result.output
    assert "0.5s" in result.output and "0.7" in result.output
    assert not out.exists()


def test_a_duration_is_read_as_on_every_command_line(tmp_path: Path) -> None:
    """README: a bare number is seconds on every command line, and a bad value names its
    option. gpu-bench refused '--latency-target 0.5' ("expected a duration ..., got
    '0.5'"), and said '3x' or a --workers of 'x' was wrong without naming the option."""
    out = tmp_path / "profile.yaml"
    runner = CliRunner(env={"COLUMNS": "200"})
    bare = ["--latency-target", "0.5", "--out", str(out)]
    result = runner.invoke(app, ["run", "--model", f"{MODELS}:slow_model", *ONE, *bare])
    assert result.exit_code == 4, result.output  # 0.7 s a request: read as 0.5 s, too short
    assert "target impossible" in result.output and "0.5s" in result.output
    for option, value in (("--latency-target", "3x"), ("--warmup", "-1"), ("--workers", "x")):
        result = runner.invoke(app, ["run", "--model", "cnn", *ONE, option, value, *bare[2:]])
        assert result.exit_code == 2, (option, result.output)
        assert f"{option}: " in result.output, result.output
    assert not out.exists()


def test_every_option_has_help() -> None:
    command = typer.main.get_command(app)
    commands = getattr(command, "commands", {})
    assert set(commands) == {"run", "show"}
    for name, sub in commands.items():
        for parameter in sub.params:
            assert getattr(parameter, "help", None), f"{name} {parameter.name} has no help"


def test_a_model_slower_to_load_than_the_timeout_says_so(tmp_path: Path) -> None:
    out = tmp_path / "profile.yaml"
    model = f"{MODELS}:slow_loading_model"
    too_short = ["--load-timeout", "1s"]
    result = CliRunner().invoke(app, ["run", "--model", model, *ONE, *too_short, "--out", str(out)])
    assert result.exit_code != 0 and not out.exists()
    assert "did not load within 1 s (--load-timeout)" in " ".join(result.output.split())
    assert multiprocessing.active_children() == []

    zero = CliRunner().invoke(app, ["run", "--model", model, "--load-timeout", "0s", "--out", "x"])
    assert zero.exit_code == 2
    assert "--load-timeout must be longer than 0s" in zero.output


def test_an_output_that_cannot_be_written_is_refused_before_measuring(tmp_path: Path) -> None:
    """Found after the sweep, it was a traceback (FileExistsError, IsADirectoryError) and
    the profile lost, after every configuration was measured."""
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    for out in (tmp_path / "a-file" / "profile.yaml", tmp_path / "a-folder"):
        result = CliRunner().invoke(app, ["run", "--model", "cnn", *QUICK, "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "cannot be written" in result.output and str(out) in result.output
        assert "configurations" not in result.output  # nothing was measured
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]


def test_no_devices_per_node_and_no_memory_are_refused_before_measuring(tmp_path: Path) -> None:
    """--gpus-per-node -1 measured the whole sweep, then a pydantic traceback (a negative
    per_node_rps) and no profile; 0 was taken as 'the GPUs visible here' while the profile's
    command said 0."""
    out = tmp_path / "profile.yaml"
    for option in ("--gpus-per-node=-1", "--gpus-per-node=0", "--memory-cap-mib=0"):
        result = CliRunner().invoke(app, ["run", "--model", "cnn", *ONE, option, "--out", str(out)])
        assert result.exit_code == 2, (option, result.output)
        assert option.partition("=")[0] in result.output
    assert not any(tmp_path.iterdir())


def test_a_device_that_cannot_be_used_is_refused_before_measuring(tmp_path: Path) -> None:
    """--device cuda:0 where torch sees no GPU (a CPU-only build) was torch's AssertionError
    traceback, exit 1; a name torch does not know (tpu) measured the whole sweep, each
    configuration failing as the model's error, exit 3."""
    import torch

    out = tmp_path / "profile.yaml"
    beyond = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or none at all
    for device, said in (("tpu", "expected auto, cpu or cuda:N, got 'tpu'"), (beyond, beyond)):
        command = ["run", "--model", "cnn", *ONE, "--device", device, "--out", str(out)]
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (device, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert said in " ".join(result.output.split())
    assert not any(tmp_path.iterdir())


def test_a_disk_full_after_the_sweep_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart, the CSV or the profile meeting a full disk once every configuration was
    measured: it was a traceback (OSError: No space left on device, naming no file), no
    profile, and the CSV of the last run emptied. Each now says which option and file,
    where the measurements are kept, leaves the file before it whole and no temporary one;
    the rerun, with room, measures nothing again."""
    ok, full = tmp_path / "ok", tmp_path / "full"
    checkpoint = tmp_path / "kept" / "sweep.json"
    names = {"--out": "profile.yaml", "--chart": "profile.png", "--csv": "profile.csv"}
    quick = [*QUICK[:1], "1", *QUICK[2:], "--checkpoint", str(checkpoint)]

    def command(on_full: str) -> list[str]:
        paths = [(o, (full if o == on_full else ok) / name) for o, name in names.items()]
        return ["run", "--model", "cnn", *quick, *(str(p) for pair in paths for p in pair)]

    first = CliRunner().invoke(app, command(""))
    assert first.exit_code == 0, first.output
    full.mkdir()
    for option, name in names.items():
        before = (ok / name).read_bytes()
        (full / name).write_bytes(before)
        with monkeypatch.context() as disk:
            full_disk_under(disk, full)
            result = CliRunner().invoke(app, command(option))
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        said = " ".join(result.output.split())
        assert f"{option}: cannot write {full / name}: No space left on device" in said
        assert f"what was measured is kept in {checkpoint}" in said
        assert "resuming" in said and "configurations already measured" in said
        assert (full / name).read_bytes() == before  # the last one, whole
        assert sorted(p.name for p in full.iterdir()) == [name]  # no temporary file
        (full / name).unlink()
    again = CliRunner().invoke(app, command("--out"))
    assert again.exit_code == 0, again.output
    measured = [
        load_profile(f / "profile.yaml").model_dump(exclude={"command", "created"})
        for f in (full, ok)
    ]
    assert measured[0] == measured[1]


def test_a_checkpoint_the_disk_is_too_full_for_stops_the_sweep_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint written after a configuration met a full disk: a traceback said only
    'No space left on device'. It now names the file and how to resume; the workers are
    stopped and no temporary file is left."""
    full = tmp_path / "full"
    full.mkdir()
    checkpoint = full / "sweep.json"
    full_disk_under(monkeypatch, full)
    quick = [*QUICK[:1], "1", *QUICK[2:], "--checkpoint", str(checkpoint)]
    out = tmp_path / "profile.yaml"
    result = CliRunner().invoke(app, ["run", "--model", "cnn", *quick, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    said = " ".join(result.output.split())
    assert f"cannot write the checkpoint {checkpoint}: No space left on device" in said
    assert "the sweep stopped" in said and "resumes from there" in said
    assert multiprocessing.active_children() == []
    assert list(full.iterdir()) == [] and not out.exists()
