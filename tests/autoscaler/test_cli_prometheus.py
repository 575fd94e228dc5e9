"""End to end: `autoscaler run --once` and `autoscaler forecast` against a REAL Prometheus.

Prometheus holds 14 days of the NASA trace (tests/doubles/prometheus_server.py).
The expected node count is worked out here from the trace itself: the rate
Prometheus must compute at each step of the tick's window, the seed's linear
forecast of that history, and ceil(upper forecast / (per-node capacity × target
utilization)). The CLI runs as a subprocess, as a user would start it.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscaler.config import Pool
from autoscaler.loader import load_config
from predictors import make_predictor
from tests.doubles.prometheus_server import (
    DEMAND_QUERY,
    PrometheusWithHistory,
    free_port,
    prometheus_history,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.integration

PER_NODE_RPS = 0.1
UTILIZATION = 0.8
INITIAL_NODES = 1
SECRET = "prom-bearer-do-not-print"


def write_config(tmp: Path, url: str) -> Path:
    config = tmp / "autoscaler.yaml"
    config.write_text(
        f"""\
interval: 1m
state_dir: {tmp / "state"}
decision_log: {tmp / "decisions.jsonl"}
metrics:
  kind: prometheus
  url: {url}
  timeout: 5s
  max_staleness: 5m
  bearer_token_env: PROM_TOKEN
pools:
  - name: ocr
    backend:
      kind: simulated
      initial_nodes: {INITIAL_NODES}
      boot_delay: 10m
    demand:
      query: '{DEMAND_QUERY}'
      window: 2h
      step: 1m
    capacity:
      per_node_rps: {PER_NODE_RPS}
    target_utilization: {UTILIZATION}
    predictor:
      kind: linear
    boot_time: 10m
    horizon: 15m
    min_nodes: 1
    max_nodes: 1000
"""
    )
    return config


def implied_nodes(history: PrometheusWithHistory, pool: Pool, now: datetime) -> tuple[int, float]:
    """Nodes the trace implies at `now`, and the demand the tick should see last."""
    # prometheus-api-client sends whole seconds; Prometheus evaluates start + k*step <= end.
    start = round((now - pool.demand.window).timestamp())
    end = round(now.timestamp())
    seconds = np.arange(start, end + 1, int(pool.demand.step.total_seconds()))
    at = pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True))
    demand = history.expected_rate(at).dropna()
    predictor = make_predictor(pool.predictor.kind, pool.predictor.params)
    peak = predictor.fit(demand).forecast(pool.horizon).peak_upper()
    nodes = math.ceil(peak / (PER_NODE_RPS * UTILIZATION) - 1e-9)
    return max(nodes, pool.min_nodes), float(demand.iloc[-1])


def autoscaler(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PROM_TOKEN": SECRET, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_run_once_scales_to_the_count_the_history_implies(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, prometheus_history.url)
    pool = load_config(config).pool("ocr")

    done = autoscaler("run", "--config", str(config), "--once")

    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    (record,) = [
        json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
    ]
    now = datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
    nodes, demand_now = implied_nodes(prometheus_history, pool, now)
    assert record["demand_rps"] == pytest.approx(demand_now, rel=1e-9)
    assert record["forecast_nodes"] == nodes
    assert record["current"] == INITIAL_NODES
    assert record["desired"] == nodes
    assert record["errors"] == {}
    assert nodes > INITIAL_NODES  # the trace's traffic needs more than one node at any hour


def test_forecast_says_what_the_daemon_would_do_now(
    prometheus_history: PrometheusWithHistory,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, prometheus_history.url)
    pool = load_config(config).pool("ocr")

    before = datetime.now(UTC)
    done = autoscaler("forecast", "--config", str(config), "--hours", "1")
    after = datetime.now(UTC)

    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    found = re.search(r"ocr would (?:scale|hold) (\d+) → (\d+)", done.stdout)
    assert found, done.stdout
    current, desired = int(found.group(1)), int(found.group(2))
    # The CLI read its own clock between `before` and `after`; within one minute the
    # answer is the same, so it must match one of the two ends.
    candidates = {implied_nodes(prometheus_history, pool, moment)[0] for moment in (before, after)}
    assert current == INITIAL_NODES
    assert desired in candidates
    assert not (tmp_path / "decisions.jsonl").exists()  # forecast writes nothing


def test_run_once_holds_when_prometheus_is_gone(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens

    started = time.monotonic()
    done = autoscaler("run", "--config", str(config), "--once")

    assert time.monotonic() - started < 30
    assert done.returncode == 1
    (record,) = [
        json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
    ]
    assert record["desired"] == INITIAL_NODES
    assert record["errors"]["metrics"].startswith("unreachable")
    assert record["forecast_nodes"] is None
    assert SECRET not in done.stdout + done.stderr + json.dumps(record)
    assert timedelta(0) <= datetime.now(UTC) - datetime.fromisoformat(
        record["time"].replace("Z", "+00:00")
    )
