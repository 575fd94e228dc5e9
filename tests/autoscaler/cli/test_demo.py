"""The demo's console output, run as a user runs it (a process whose stderr is a pipe):
times in the schedule's zone, the point forecast beside its upper band, no scheduler
noise, and a closing comparison with a static and a reactive fleet whose figures are
computed from the day it replayed."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.autoscaler.cli.test_main import ROOT, demo_copy


def _play(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli.main", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_demo_speaks_the_schedules_zone_and_compares_with_simpler_fleets(tmp_path: Path) -> None:
    start, end = "1995-07-11T10:00:00Z", "1995-07-11T16:00:00Z"
    path = demo_copy(tmp_path, start=start, end=end, speed=60000)  # faster than a tick runs
    done = _play(path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "maximum number of running instances" not in out + done.stderr
    assert "simulating 1995-07-11 06:00 → 1995-07-11 12:00 America/New_York" in out
    lines = [line for line in out.splitlines() if " image-gen " in line]
    assert len(lines) == 72  # 6 hours of 5-minute ticks
    assert lines[0].startswith("Tue 06:00 EDT") and lines[-1].startswith("Tue 11:55 EDT")
    first = re.search(r"forecast +([\d.]+)/s +upper band +([\d.]+)/s", lines[0])
    assert first is not None and float(first.group(1)) <= float(first.group(2))

    config = yaml.safe_load(path.read_text())
    pool = config["pools"][0]
    trace = pd.read_csv(config["metrics"]["trace"], parse_dates=["timestamp"])
    day = trace[(trace.timestamp >= start) & (trace.timestamp < end)]
    peak_rps = day.requests.max() / 60.0
    per_node = pool["capacity"]["per_node_rps"] * pool["target_utilization"]
    static_nodes = max(pool["min_nodes"], math.ceil(peak_rps / per_node - 1e-9))
    compared = out.strip().splitlines()[-1]
    assert f"a static fleet for the day's peak ({static_nodes} nodes) " in compared
    assert f"{static_nodes * 6:.1f} node-hours" in compared  # six hours of it
    ours = float(re.search(r"this run ([\d.]+) node-hours", compared).group(1))  # type: ignore[union-attr]
    reactive = re.search(r"reactive fleet .*?\) ([\d.]+) node-hours, ([\d.]+)% late", compared)
    assert reactive is not None and float(reactive.group(1)) > 0
    ratio = re.search(r"\(this run costs ([\d.]+) × it\)$", compared)
    assert ratio is not None
    assert float(ratio.group(1)) == round(ours / float(reactive.group(1)), 2)


@pytest.mark.parametrize(("cell", "said"), [("0", "no requests"), ("", "no demand samples")])
def test_a_replay_without_requests_says_so_in_the_comparison(
    tmp_path: Path, cell: str, said: str
) -> None:
    """No request in the replayed hour (or no sample: not the same), said in words: there
    is no late share to give (it was a dangling ', ;')."""
    minutes = pd.date_range("1995-07-04T00:00Z", "1995-07-11T12:00Z", freq="1min")
    replayed = pd.Timestamp("1995-07-11T10:00Z")
    trace = tmp_path / "quiet.csv"
    trace.write_text(
        "timestamp,requests\n"
        + "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},{cell if t >= replayed else 0}\n" for t in minutes)
    )
    path = demo_copy(tmp_path, start="1995-07-11T10:00:00Z", end="1995-07-11T11:00:00Z")
    config = yaml.safe_load(path.read_text())
    config["metrics"]["trace"] = str(trace)
    config["simulation"]["speed"] = 60000
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    done = _play(path)
    assert done.returncode == 0, done.stderr
    compared = done.stdout.strip().splitlines()[-1]
    assert re.match(rf"image-gen: this run [\d.]+ node-hours, {said}(;|$)", compared), compared


def test_a_hold_a_bound_shaped_says_the_bound_not_only_the_forecast(tmp_path: Path) -> None:
    """A hold's line said only its first reason: "4 → 4 forecast needs 7 nodes" under an
    override capping the pool at 1, with nothing of the cap, nor of the stabilization that
    brings the count down to it. Where a bound or an override moved the count from what
    the forecast asked, the line says every reason; a plain hold still says one."""
    path = demo_copy(tmp_path, start="1995-07-11T04:00:00Z", end="1995-07-11T04:10:00Z")
    config = yaml.safe_load(path.read_text())
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "overrides:\n  image-gen:\n    max_nodes: 1\n"
        "    expires: 2030-01-01T00:00:00Z\n    reason: cost cap\n"
    )
    config["overrides_file"] = str(overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    capped = _play(path)
    assert capped.returncode == 0, capped.stderr
    first = next(line for line in capped.stdout.splitlines() if " image-gen " in line)
    assert "4 → 4" in first and "forecast needs" in first
    assert "lowered to override max 1" in first and "stabilization" in first
    del config["overrides_file"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    plain = _play(path)
    held = [line for line in plain.stdout.splitlines() if " image-gen   demand" in line]
    assert held and all(";" not in line for line in held), plain.stdout  # one reason each


def test_a_tick_without_decision_is_said_in_words_with_its_brackets_kept() -> None:
    """`run --once` prints each pool's tick (cron mails it): an error was a Python dict, and
    its text went through rich markup, which ate a redacted password ('nomaduser:@host',
    as if it were empty) and a PromQL character class."""
    from datetime import UTC, datetime, timedelta
    from io import StringIO

    from rich.console import Console

    from autoscaler.cli.demo import ConsoleReporter
    from autoscaler.policy import Decision
    from autoscaler.sizing import Sizing
    from autoscaler.tick_result import TickResult
    from backends.base import FleetState

    out = StringIO()
    reporter = ConsoleReporter({"ocr": 1.0}, timedelta(minutes=1), Console(file=out, width=400))
    errors = {
        "metrics": "demand query 'sum(rate(x{model=~\"[a-z]+\"}[2m]))': stale",
        "backend": "connection to http://nomaduser:[redacted]@127.0.0.1:4646 failed",
    }
    at = datetime(2026, 12, 7, 14, tzinfo=UTC)
    reporter(TickResult("ocr", at, None, Sizing(), None, errors=errors))
    assert out.getvalue().strip() == (
        "Mon 14:00 UTC ocr: no decision (metrics: demand query "
        "'sum(rate(x{model=~\"[a-z]+\"}[2m]))': stale; backend: connection to "
        "http://nomaduser:[redacted]@127.0.0.1:4646 failed)"
    )

    out.seek(0)
    out.truncate()
    reason = "signal 'queue[a-z]' (queue_depth): no data"
    decision = Decision(at, 4, 6, 6, ("forecast needs 6 nodes", reason))
    reporter(TickResult("ocr", at, FleetState(4, 4, 0), Sizing(nodes=6), decision))
    assert out.getvalue().rstrip().endswith(f"forecast needs 6 nodes; {reason}")
