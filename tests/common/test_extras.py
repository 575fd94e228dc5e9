"""A config that needs a package from an extra that is not installed names the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from backends import make_backend
from backends.aws_asg import AwsAsgBackend
from backends.kubernetes import KubernetesBackend
from common.clock import SystemClock
from common.extras import MissingExtra, needs_extra, require
from tests.autoscaler.cli.test_main import demo_copy


def _uninstalled(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make `modules` unimportable, as if absent (and the lease module that imports one)."""
    for name in list(sys.modules):
        if name.partition(".")[0] in modules or name == "backends.kubernetes_lease":
            monkeypatch.delitem(sys.modules, name)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_an_aws_backend_without_boto3_names_the_aws_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _uninstalled(monkeypatch, "boto3", "botocore")
    config = AwsAsgBackend(kind="aws_asg", group="gpu")
    with pytest.raises(
        MissingExtra, match=r"backend aws_asg needs .*'boto3'.*gpu-autoscaler\[aws\]"
    ):
        make_backend(config, SystemClock())


def test_a_kubernetes_backend_without_the_client_names_its_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _uninstalled(monkeypatch, "kubernetes")
    config = KubernetesBackend(kind="kubernetes", name="gpu")
    with pytest.raises(MissingExtra, match=r"gpu-autoscaler\[kubernetes\]"):
        make_backend(config, SystemClock())


def test_another_import_error_is_not_taken_for_a_missing_extra() -> None:
    """A broken module of ours must surface as itself, not as "install an extra"."""
    with (
        pytest.raises(ModuleNotFoundError, match="no_such_module"),
        needs_extra("x"),
    ):
        import no_such_module  # noqa: F401


def test_require_passes_when_the_package_is_there() -> None:
    require("--plot", "matplotlib")


def test_run_stops_with_the_config_error_status_and_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = demo_copy(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["pools"][0]["backend"] = {"kind": "aws_asg", "group": "gpu", "region": "eu-west-1"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    _uninstalled(monkeypatch, "boto3", "botocore")
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--once"])
    assert result.exit_code == 2, result.output
    assert "pip install 'gpu-autoscaler[aws]'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "decisions.jsonl").exists()


def test_backtest_plot_without_matplotlib_fails_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,requests\n2025-01-01T00:00:00Z,1\n2025-01-01T00:01:00Z,2\n")
    _uninstalled(monkeypatch, "matplotlib")
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--trace",
            str(trace),
            "--per-node-rps",
            "1",
            "--plot",
            str(tmp_path / "p.png"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "gpu-autoscaler[plots]" in result.output
