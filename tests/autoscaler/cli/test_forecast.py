"""A pool with little history says so, in `forecast` and in every decision's reasons,
until the seasonal model has its week (the demo's replay, started a few hours into its
trace, so the daemon has seen only those hours)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.autoscaler.cli.test_main import demo_copy

runner = CliRunner()


def test_little_history_is_said_in_forecast_and_in_the_decision(tmp_path: Path) -> None:
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path, start="1995-07-04T06:00:00Z", end="1995-07-04T07:00:00Z")
    shown = runner.invoke(app, ["forecast", "--config", str(path)], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert "image-gen: little history: 6.0h of data, the daily shape needs 24.0h" in flat
    assert flat.count("little history") == 2  # under the table, and in the reasons now

    ran = runner.invoke(app, ["run", "--config", str(path), "--once"])
    assert ran.exit_code == 0, ran.output
    (record,) = [json.loads(line) for line in (tmp_path / "decisions.jsonl").open()]
    assert any(reason.startswith("little history: 6.0h") for reason in record["reasons"])


def test_a_week_of_history_says_nothing_of_the_kind(tmp_path: Path) -> None:
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path)  # starts after a week of the trace
    ran = runner.invoke(app, ["run", "--config", str(path), "--once"])
    assert ran.exit_code == 0, ran.output
    (record,) = [json.loads(line) for line in (tmp_path / "decisions.jsonl").open()]
    assert not any("little history" in reason for reason in record["reasons"])
