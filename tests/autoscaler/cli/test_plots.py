"""The PNG plots: `forecast --plot` and the backtest plot's inputs."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from autoscaler.cli.plots import _forecast_counts, forecast_plot
from autoscaler.config.schema import Capacity, DemandQuery, Pool
from autoscaler.config.time_windows import Schedule
from backends.simulated import SimulatedBackend
from predictors.base import Forecast

NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def _pool() -> Pool:
    return Pool(
        name="faces",
        backend=SimulatedBackend(kind="simulated"),
        demand=DemandQuery(query="sum(rate(x[1m]))"),
        capacity=Capacity(per_node_rps=10.0),
        target_utilization=0.5,
        max_nodes=20,
        schedules=[Schedule(name="opening", start=time(9), end=time(17), min_nodes=6)],
    )


def _forecast() -> tuple[pd.Series, Forecast]:
    past = pd.date_range(NOW - timedelta(hours=3), NOW, freq="1min", inclusive="left")
    history = pd.Series(20 + 5 * np.sin(np.arange(len(past)) / 30), index=past)
    times = pd.date_range(NOW, periods=120, freq="1min")
    point = np.linspace(20.0, 40.0, len(times))
    return history, Forecast(times, point, point * 1.2, "test")


def test_forecast_counts_follow_the_upper_band_and_the_schedule_floor() -> None:
    _, forecast = _forecast()
    nodes, desired, floors = _forecast_counts(_pool(), forecast, 10.0, None)
    # upper 24 req/s at 50% of 10 req/s per node: 5 nodes; the 09:00 floor lifts it to 6.
    assert nodes[0] == 5 and desired[0] == 5 and floors[0] is None
    at_nine = forecast.times.get_loc(pd.Timestamp("2025-03-03 09:00", tz="UTC"))
    assert floors[at_nine] == 6 and desired[at_nine] >= 6
    assert nodes[-1] == 10  # 48 req/s upper at 5 req/s per node


def test_forecast_plot_writes_a_png(tmp_path: Path) -> None:
    history, forecast = _forecast()
    path = tmp_path / "plots" / "forecast.png"
    forecast_plot(path, _pool(), history, forecast, 10.0)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_forecast_counts_carry_the_pools_spare_nodes_capped_at_max_nodes() -> None:
    """The daemon sizes the upper band plus spare_nodes; the plot once left the spare out."""
    _, forecast = _forecast()
    pool = _pool().model_copy(update={"spare_nodes": 3, "max_nodes": 12})
    nodes, desired, _ = _forecast_counts(pool, forecast, 10.0, None)
    assert nodes[0] == 8 and desired[0] == 8  # 5 for the upper band, 3 spare
    assert nodes[-1] == 13 and desired[-1] == 12  # 10 + 3, capped at max_nodes
