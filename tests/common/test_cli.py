"""Both command lines answer `--version` and take `-h` wherever they take `--help`; the
options they share read alike."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from importlib.metadata import version
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from autoscaler.cli.main import app as autoscaler_app
from common.cli import option_moment
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


def test_a_moment_needs_its_utc_offset_and_names_the_option() -> None:
    kolkata = timezone(timedelta(hours=5, minutes=30))
    assert option_moment("--from", "2026-11-27T08:00+05:30") == datetime(
        2026, 11, 27, 8, 0, tzinfo=kolkata
    )
    assert option_moment("--until", "2026-11-27T00:00Z").tzinfo == UTC
    for text, says in (
        ("2026-11-27T08:00", "--from: '2026-11-27T08:00' has no UTC offset"),
        ("tomorrow", "--from: expected an ISO time"),
        ("0001-01-02T00:00+00:00", "--from: '0001-01-02T00:00+00:00' is outside the years"),
        ("9999-12-31T23:59+00:00", "is outside the years 1970 to 2199"),
    ):
        with pytest.raises(ValueError, match=re.escape(says)):
            option_moment("--from", text)


@pytest.mark.parametrize("text", ["2026-11-27", "2026-11-27+05:30", "2026-11-27T08:00:30"])
def test_the_example_a_time_without_an_offset_is_given_is_taken(text: str) -> None:
    """A date alone once got "add one, e.g. 2026-11-27+00:00", which Python reads as a
    date alone again (the offset dropped): the same error, and the same advice, for ever."""
    with pytest.raises(ValueError, match="has no UTC offset") as caught:
        option_moment("--until", text)
    example = str(caught.value).rsplit("e.g. ", 1)[1]
    assert option_moment("--until", example).utcoffset() == timedelta(0)
