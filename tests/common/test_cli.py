"""Both command lines answer `--version` and take `-h` wherever they take `--help`."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from autoscaler.cli.main import app as autoscaler_app
from gpu_bench.cli import app as gpu_bench_app

runner = CliRunner()
APPS = {"autoscaler": autoscaler_app, "gpu-bench": gpu_bench_app}


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    if isinstance(getattr(command, "commands", None), dict):  # a group
        for name, sub in command.commands.items():
            paths += _command_paths(sub, (*path, name))
    return paths


@pytest.mark.parametrize("program", APPS)
def test_version(program: str) -> None:
    result = runner.invoke(APPS[program], ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"{program} {version('gpu-autoscaler')}"


@pytest.mark.parametrize("program", APPS)
def test_dash_h_is_help_for_every_command(program: str) -> None:
    app: typer.Typer = APPS[program]
    paths = _command_paths(get_command(app))
    assert len(paths) >= 3
    for path in paths:
        short = runner.invoke(app, [*path, "-h"])
        long = runner.invoke(app, [*path, "--help"])
        assert short.exit_code == 0, (path, short.output)
        assert short.output == long.output and "Usage:" in short.output
