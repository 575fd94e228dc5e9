"""End to end on the real path: a real Prometheus (Debian's package, 14 days of NASA
history backfilled with promtool) → `autoscaler run --once` / `forecast` → the real
python-nomad client → the Nomad API double (which follows Nomad's HTTP API documents).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from predictors.linear import LinearTrendPredictor
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.doubles.prometheus_server import (
    DEMAND_QUERY,
    PrometheusWithHistory,
)

PER_NODE_RPS = 0.05
UTILIZATION = 0.8
runner = CliRunner()
pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, prometheus_url: str, nomad_url: str) -> Path:
    config = {
        "interval": "1m",
        "state_dir": str(tmp_path / "state"),
        "decision_log": str(tmp_path / "decisions.jsonl"),
        "metrics": {"kind": "prometheus", "url": prometheus_url, "timeout": "10s"},
        "pools": [
            {
                "name": "nasa",
                "backend": {
                    "kind": "nomad_job",
                    "job": "web-workers",
                    "group": "gpu",
                    "address": nomad_url,
                    "timeout": "5s",
                },
                "demand": {"query": DEMAND_QUERY, "window": "1h", "step": "1m"},
                "capacity": {"per_node_rps": PER_NODE_RPS},
                "target_utilization": UTILIZATION,
                "predictor": {"kind": "linear"},
                "max_nodes": 500,
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def implied_upper(history: PrometheusWithHistory, now: datetime) -> float:
    """The forecast's upper peak computed from the trace itself, not through Prometheus."""
    end = pd.Timestamp(now).floor("1min")
    steps = pd.date_range(end - pd.Timedelta(minutes=59), end, freq="1min")
    rates = history.expected_rate(steps).dropna()
    forecast = LinearTrendPredictor().fit(rates).forecast(timedelta(minutes=15))
    return forecast.peak_upper()


def test_run_once_scales_nomad_to_what_the_history_implies(
    prometheus_history: PrometheusWithHistory, nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 1})
    path = write_config(tmp_path, prometheus_history.url, nomad_api.url)
    before = datetime.now(UTC)
    result = runner.invoke(
        app, ["run", "--config", str(path), "--once"], env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    )
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    expected_upper = implied_upper(prometheus_history, before)
    assert record["forecast_upper_rps"] == pytest.approx(expected_upper, rel=0.05)
    nodes = math.ceil(record["forecast_upper_rps"] / (PER_NODE_RPS * UTILIZATION))
    assert record["forecast_nodes"] == nodes
    assert abs(nodes - math.ceil(expected_upper / (PER_NODE_RPS * UTILIZATION))) <= 1
    (post,) = [r for r in nomad_api.requests if r.method in ("POST", "PUT")]
    assert post.body["Count"] == record["desired"] == nodes
    assert DOUBLE_ACL_TOKEN not in result.output


def test_forecast_reads_live_metrics_and_writes_nothing(
    prometheus_history: PrometheusWithHistory, nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 1})
    path = write_config(tmp_path, prometheus_history.url, nomad_api.url)
    before = datetime.now(UTC)
    result = runner.invoke(
        app,
        ["forecast", "--config", str(path), "--hours", "1"],
        env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN},
    )
    assert result.exit_code == 0, result.output
    nodes = math.ceil(implied_upper(prometheus_history, before) / (PER_NODE_RPS * UTILIZATION))
    line = next(x for x in result.output.splitlines() if x.startswith("now"))
    shown = int(line.split("→")[1].split(";")[0])
    assert abs(shown - nodes) <= 1, line
    assert [r for r in nomad_api.requests if r.method in ("POST", "PUT")] == []
    assert not (tmp_path / "decisions.jsonl").exists()


def test_prometheus_down_holds_and_scales_nothing(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 7})
    path = write_config(tmp_path, "http://127.0.0.1:9", nomad_api.url)
    result = runner.invoke(
        app, ["run", "--config", str(path), "--once"], env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    )
    assert result.exit_code == 1
    (record,) = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert record["desired"] == 7 and "metrics" in record["errors"]
    assert [r for r in nomad_api.requests if r.method in ("POST", "PUT")] == []
