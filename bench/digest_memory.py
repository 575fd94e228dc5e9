"""What the daily digest's reading of the decision log costs the daemon: memory and time.

    python bench/digest_memory.py [--pools 200] [--hours 30] [--runs 3]

Writes a decision log of `--pools` pools ticking every minute for `--hours` hours (the
day's digest reads 24 h and the 6 h before it, autoscaler/decision_log_read.LOOKBACK),
each line through the daemon's own writer (DecisionLog.append of decision_record), then
builds the day's report (daily_report.build_report, as the daemon's digest and
`autoscaler report` do) `--runs` times, each in a fresh process: the growth of its peak
RSS (resource.getrusage, from after the imports) and the seconds build_report took,
medians. The baseline, measured in the same run, is the log's size on disk; the ratio
is to it. Then the figure for 1,000 pools, and a digest of the report's text, which
must be the same before and after a change to how the log is read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from autoscaler.config.schema import Config
from autoscaler.daily_report import build_report, report_text
from autoscaler.decision_log import DecisionLog
from autoscaler.policy import Decision
from autoscaler.sizing import Sizing
from autoscaler.tick_result import TickResult, decision_record
from backends.base import FleetState
from predictors import Forecast

END = datetime(2026, 11, 27, tzinfo=UTC)
START = END - timedelta(days=1)
OVERRIDE = "raised to override min 4 ('evening batch', until 2026-11-26T20:00:00+00:00)"


def config(log: Path, pools: int) -> Config:
    pool = {
        "backend": {"kind": "simulated"},
        "demand": {"query": "q"},
        "capacity": {"per_node_rps": 5.0},
        "max_nodes": 50,
        "price_per_node_hour": 2.5,
    }
    named = [{**pool, "name": f"pool-{k}"} for k in range(pools)]
    return Config.model_validate({"decision_log": str(log), "pools": named})


def tick(pool: int, at: datetime, minute: int) -> TickResult:
    """A pool's tick: demand with a daily swing, a scale action now and then, an evening
    override, a failed metrics read once in a while."""
    demand = 10.0 + 5.0 * np.sin(2 * np.pi * minute / 1440 + pool) + (minute * 7 + pool) % 3
    times = pd.date_range(at, periods=15, freq="1min")
    forecast = Forecast(times, np.full(15, demand * 1.1), np.full(15, demand * 1.3), "seasonal")
    current = 3 + (minute // 60 + pool) % 3
    desired = current + 1 if minute % 60 == 0 else current
    evening = 18 <= at.hour < 20
    reasons = [
        f"forecast needs {desired} nodes (upper band {demand * 1.3:.1f} req/s over 15m)",
        OVERRIDE if evening else "scale-down stabilization: highest target in 10m",
    ]
    decision = Decision(at, current, desired, desired, tuple(reasons))
    sizing = Sizing(demand_now=demand, forecast=forecast, nodes=desired, demand_nodes=current)
    errors = {"metrics": "timed out after 5 s"} if minute % 500 == pool % 500 else {}
    fleet = FleetState(current, current - (desired > current), 0)
    acted = desired != current
    return TickResult(f"pool-{pool}", at, fleet, sizing, decision, acted, errors=errors)


def write_log(log: Path, pools: int, hours: float) -> None:
    writer = DecisionLog(log)
    minutes = int(hours * 60)
    first = END - timedelta(minutes=minutes)
    for minute in range(minutes):
        at = first + timedelta(minutes=minute, seconds=3)
        for pool in range(pools):
            writer.append(decision_record(tick(pool, at, minute)))
    writer.close()


class Demand:
    """The metrics source: every pool's demand, each minute of the day."""

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        minutes = pd.date_range(start, end, freq=step)
        return pd.Series(10.0 + (np.arange(len(minutes)) % 7), index=minutes)


def child(log: Path, pools: int) -> None:
    """One build_report in this process: its peak RSS growth (MB), seconds, text digest."""
    settings = config(log, pools)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    report = build_report(settings, Demand(), START, END, [])
    seconds = time.perf_counter() - began
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    text = report_text(report, "USD")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(json.dumps({"mb": grown, "seconds": seconds, "text": digest}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--hours", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.pools)
        return
    log = Path(tempfile.mkdtemp(prefix="digest-memory-")) / "decisions.jsonl"
    began = time.perf_counter()
    write_log(log, args.pools, args.hours)
    lines = args.pools * int(args.hours * 60)
    size = log.stat().st_size / 2**20
    print(
        f"log: {args.pools} pools x {args.hours:g} h = {lines:,} lines, {size:.1f} MB on disk "
        f"({size * 2**20 / lines:.0f} B a line; written in {time.perf_counter() - began:.0f} s)"
    )
    runs = []
    try:
        for _ in range(args.runs):
            command = [sys.executable, __file__, "--pools", str(args.pools), "--child", str(log)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(log.parent)
    mb = statistics.median(r["mb"] for r in runs)
    seconds = statistics.median(r["seconds"] for r in runs)
    texts = sorted({r["text"] for r in runs})
    print(f"baseline: the log on disk, {size:.1f} MB")
    print(
        f"build_report (median of {args.runs} processes): peak RSS +{mb:.0f} MB, "
        f"{mb / size:.2f} x the log on disk; {seconds:.1f} s"
    )
    per_thousand = mb * 1000 / args.pools * (30 / args.hours)
    print(f"{per_thousand:,.0f} MB per 1,000 pool-days (a day's digest of 1,000 pools, 30 h read)")
    print(f"report text sha256: {', '.join(texts)}")


if __name__ == "__main__":
    main()
