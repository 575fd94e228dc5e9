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


def test_the_table_sizes_with_the_pools_spare_nodes_as_the_daemon_does() -> None:
    """`forecast`'s nodes and desired columns once left spare_nodes out, showing fewer nodes
    than the daemon asks for; now both carry them, and desired is still capped at max."""
    from datetime import timedelta

    import numpy as np
    import pandas as pd

    from autoscaler.cli.forecast import forecast_rows
    from autoscaler.overrides import OverridesFile
    from autoscaler.sizing import Sizing
    from predictors.base import Forecast
    from tests.autoscaler.cli.test_plots import NOW, _pool

    times = pd.date_range(NOW, periods=30, freq="1min")
    upper = np.where(np.arange(30) < 15, 24.0, 48.0)  # 5 nodes, then 10, at 5 req/s a node
    sizing = Sizing(demand_now=20.0, forecast=Forecast(times, upper, upper, "test"))
    pool = _pool().model_copy(update={"spare_nodes": 3, "max_nodes": 12})
    rows = forecast_rows(pool, sizing, 10.0, OverridesFile(), timedelta(minutes=15))
    assert [(row.nodes, row.desired) for row in rows] == [(8, 8), (13, 12)]
