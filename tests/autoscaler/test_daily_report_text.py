"""The digest's reading of the decision log keeps, of each line, the fields it reads
(autoscaler.digest.LoggedTick), not the whole parsed line: less memory than the line on
disk, and the report's text to the byte what whole lines gave (EXPECTED was printed by
the code that kept them, commit 0aa6999, from the same log).

The log: three pools in the config ("ocr", whose metrics answer; "asr", whose metrics
fail, so its demand is the log's; "idle", never logged) and one not ("gone"), ticking
every 5 minutes from an hour before the window; none from 02:00 to 03:00; lines with
fields missing, null or of older shapes, an offset other than UTC, dry-run actions, an
override, errors, and a torn line. The metrics source is an object of its protocol
(autoscaler.metrics.MetricsSource): the digest's reading is under test, not a client.
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autoscaler.config.schema import Config
from autoscaler.daily_report import build_report, report_text
from autoscaler.decision_log import DecisionLog
from autoscaler.decision_log_read import read_records
from autoscaler.metrics import MetricsError
from autoscaler.policy import Decision
from autoscaler.sizing import Sizing
from autoscaler.tick_result import TickResult, decision_record
from backends.base import FleetState
from predictors import Forecast
from tests.autoscaler.test_digest import DAY, OVERRIDE

END = DAY + timedelta(hours=6)
EAST = timezone(timedelta(hours=2))
POOL = {
    "backend": {"kind": "simulated"},
    "demand": {"query": "q"},
    "capacity": {"per_node_rps": 5},
    "max_nodes": 10,
    "boot_time": "10m",
    "horizon": "15m",
    "price_per_node_hour": 2.5,
}


class Demand:
    """The metrics source (its protocol, autoscaler.metrics.MetricsSource): "ocr" answers
    from DAY on (none of the hour before it the digest asks too), with a minute unknown;
    the others' queries fail."""

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        if query != "ocr":
            raise MetricsError("unreachable", query, "the server answered 503")
        minutes = pd.date_range(max(start, DAY), end, freq=step)
        values = 9.0 + (np.arange(len(minutes)) % 11)
        values[40] = np.nan
        return pd.Series(values, index=minutes)


def ocr(k: int, at: datetime) -> dict[str, Any]:
    current = 3 + (k // 10) % 2
    desired = current + (1 if k % 10 == 9 else -1 if k % 10 == 4 else 0)
    return {
        "time": at.astimezone(EAST).isoformat() if k % 9 == 0 else f"{at:%Y-%m-%dT%H:%M:%SZ}",
        "pool": "ocr",
        "demand_rps": 10.0 + k % 4,
        "forecast_rps": None if k % 6 == 0 else 12 + k % 3,
        "current": current,
        "ready": None if k % 11 == 0 else current - (k % 7 == 0),
        "desired": desired,
        "action": {1: "scale_up", -1: "scale_down"}.get(desired - current, "none"),
        "acted": desired != current,
        "reasons": [OVERRIDE, "x"] if 30 <= k < 40 else ["forecast needs 3 nodes"],
        "errors": {"metrics": "timed out"} if k % 13 == 0 else {},
    }


def asr(k: int, at: datetime) -> dict[str, Any]:
    line: dict[str, Any] = {
        "time": at.isoformat(),
        "pool": "asr",
        "demand_rps": None if k % 5 == 0 else 4 + (k % 3) * 0.5,
        "current": 2,
        "desired": 2 + (k % 8 == 0),
        "action": "would_scale_up" if k % 8 == 0 else "none",
        "acted": False,
        "errors": "gone" if k % 17 == 0 else None,
    }
    if k % 4 == 1:  # an older version's line
        del line["errors"], line["action"]
    return line


def write_log(path: Path) -> None:
    lines = []
    for k in range(7 * 12):
        at = DAY - timedelta(hours=1) + k * timedelta(minutes=5, seconds=0) + timedelta(seconds=7)
        if DAY + timedelta(hours=2) <= at < DAY + timedelta(hours=3):
            continue
        lines += [json.dumps(ocr(k, at)), json.dumps(asr(k, at))]
        if k % 10 == 3:
            lines.append(json.dumps({**ocr(k, at), "pool": "gone", "current": 50}))
    lines.insert(100, '{"time": "2026-11-26T03:10:00Z", "pool": "ocr", "current": "x"}')
    path.write_text("\n".join(lines) + '\n{"torn')


EXPECTED = "\n".join(
    [
        "Daily digest 2026-11-26 00:00 to 2026-11-26 06:00 UTC",
        "ocr: 21.8 node-hours, EUR 54.58",
        "  service: 63.49 % on time (109,798 of 300,720 requests late, 145 minutes with "
        "late requests; 359/360 minutes with demand data)",
        "  forecast error: 30.6 % of the peak demand (bias -30.6 %, 48 forecasts)",
        "  scale actions: 6 up, 6 down; 5 ticks with errors",
        "  overrides: 'evening batch' (6 ticks)",
        "  static fleet at the day's peak (5 nodes): 30.0 node-hours, EUR 75.00 (+37 % vs ours)",
        "  reactive fleet (HPA rule): 27.6 node-hours, EUR 69.12 (+27 % vs ours), 1.47 % late",
        "asr: 12.0 node-hours, EUR 30.00",
        "  service: 100.00 % on time (0 of 12,930 requests late, 0 minutes with late "
        "requests; 48/360 minutes with demand data)",
        "  scale actions: 0 up, 0 down, 8 dry-run; 3 ticks with errors",
        "  static fleet at the day's peak (2 nodes): 12.0 node-hours, EUR 30.00 (+0 % vs ours)",
        # 11.4 before the queue's warm-up (QUEUE_WARMUP): 00:00-00:04 at 2 nodes for the
        # 5.0 req/s the log says at 23:55, the minute before's demand, not 00:00's 4.0
        "  reactive fleet (HPA rule): 11.5 node-hours, EUR 28.71 (-4 % vs ours), 0.00 % late",
        "idle: 0.0 node-hours, EUR 0.00",
        "  service: n/a on time (0 of 0 requests late, 0 minutes with late requests; "
        "0/360 minutes with demand data)",
        "  scale actions: 0 up, 0 down",
        "no decision logged from 11-26 01:55 to 11-26 03:00 UTC (the daemon stopped or "
        "its ticks did not finish, or another replica led): fleets kept the counts they "
        "had",
        "no decision-log lines in this span for idle (in LOG): their fleet is not known "
        "and counts as 0 nodes above",
        "demand from the decision log (metrics unavailable): asr, idle",
        "2 unreadable decision-log lines skipped (first: LOG:101: current: 'x' is not a "
        "node count)",
    ]
)


def test_the_report_of_a_fixed_log_is_the_text_whole_lines_gave(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    write_log(log)
    pools = [{**POOL, "name": name, "demand": {"query": name}} for name in ("ocr", "asr", "idle")]
    config = Config.model_validate({"decision_log": str(log), "interval": "5m", "pools": pools})
    report = build_report(config, Demand(), DAY, END, [])
    text = report_text(report, "EUR").replace(str(log), "LOG")
    assert text == EXPECTED


def test_a_line_read_is_kept_in_less_memory_than_it_takes_on_disk(tmp_path: Path) -> None:
    """Each line read was kept as its parsed dict, ~2.4 KB against ~500 B on disk: a day's
    digest of 1,000 pools ticking each minute (1.8 M lines) grew the daemon by 4 GB. The
    lines are the daemon's own (DecisionLog.append of decision_record)."""
    log, pools, ticks = tmp_path / "decisions.jsonl", 20, 300
    writer = DecisionLog(log)
    for minute in range(ticks):
        at = DAY + timedelta(minutes=minute, seconds=3)
        times = pd.date_range(at, periods=15, freq="1min")
        forecast = Forecast(times, np.full(15, 11.5 + minute), np.full(15, 14.2), "seasonal")
        for pool in range(pools):
            reasons = ("forecast needs 4 nodes (upper band 14.2 req/s over 15m)", OVERRIDE)
            decision = Decision(at, 3, 4, 4, reasons)
            sizing = Sizing(demand_now=10.5 + pool, forecast=forecast, nodes=4)
            fleet = FleetState(3, 3, 0)
            writer.append(decision_record(TickResult(f"pool-{pool}", at, fleet, sizing, decision)))
    writer.close()
    on_disk = log.stat().st_size / (pools * ticks)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        read = read_records(log, DAY, END)
        kept = (tracemalloc.get_traced_memory()[0] - before) / len(read.records)
    finally:
        tracemalloc.stop()
    assert len(read.records) == pools * ticks and read.unreadable == 0
    assert kept < on_disk, f"{kept:.0f} B a line kept, {on_disk:.0f} B on disk"


def test_a_line_stamped_in_another_offset_does_not_break_demand_from_the_log(
    tmp_path: Path,
) -> None:
    """A line stamped +02:00 among UTC ones (a hand edit, another writer): with the pool's
    metrics down, its demand from the log failed to build ("Tz-aware datetime.datetime
    cannot be converted to datetime64 unless utc=True") and so did the whole report."""
    log = tmp_path / "decisions.jsonl"
    at = DAY + timedelta(hours=1, seconds=7)
    lines = [asr(1, at), {**asr(2, at + timedelta(minutes=5)), "time": "2026-11-26T03:05:07+02:00"}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    pools = [{**POOL, "name": "asr", "demand": {"query": "asr"}}]
    config = Config.model_validate({"decision_log": str(log), "interval": "5m", "pools": pools})
    report = build_report(config, Demand(), DAY, END, [])
    assert report.demand_from_log == ["asr"]
    assert report.digests[0].minutes_with_data == 2
