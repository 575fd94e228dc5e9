"""The backtest's outputs: a table, a JSON document, and the policy's decisions as CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from autoscaler.backtest.baselines import PolicyResult
from autoscaler.backtest.budget import budget_line, days_of
from autoscaler.backtest.engine import DEFAULT_BURN_IN
from autoscaler.backtest.runner import BacktestReport
from common.atomic import write_atomically
from common.durations import format_duration, format_span

SHORT_NAMES = {"utilization": "u", "stabilization_min": "stab_min", "headroom": "h"}


def describe_knobs(knobs: dict[str, Any]) -> str:
    parts = []
    for name, value in knobs.items():
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{SHORT_NAMES.get(name, name)}={text}")
    return " ".join(parts) or "-"


def ratio_to_oracle(report: BacktestReport, result: PolicyResult) -> float | None:
    oracle = report.oracle_node_hours
    return result.score.node_hours / oracle if oracle else None


def policy_vs_best(report: BacktestReport) -> tuple[float | None, PolicyResult | None]:
    """The project's node-hours over the cheapest baseline that meets the target."""
    best = report.best_baseline()
    policy = report.result("policy")
    if best is None or best.score.node_hours <= 0:
        return None, best
    return policy.score.node_hours / best.score.node_hours, best


def least_node_hours(report: BacktestReport) -> float:
    """No fleet that meets the target costs less, but for L seconds of its largest count
    (L the latency target): at least (1 - target) of the scored requests are on time, each
    served by a node's capacity at or after its arrival, even with every node at full use,
    each minute foreseen and no boot delay; only the queue left when the span ends is never
    served, and its on-time part is at most L seconds of the capacity it joined. The
    oracle spends none of the budget, so it costs more than this."""
    replay = report.replay
    requests = float(replay.arrivals[replay.score_start :].sum())
    return (1.0 - replay.service_target) * requests / (replay.per_node_rps * 3600.0)


def least_vs_best(report: BacktestReport) -> float | None:
    """least_node_hours over the cheapest baseline that meets the target (None where none
    does, or it needs no node): a saving goal under it is out of any policy's reach."""
    best = report.best_baseline()
    if best is None or best.score.node_hours <= 0:
        return None
    return least_node_hours(report) / best.score.node_hours


def backtest_table(report: BacktestReport) -> Table:
    settings = report.settings
    table = Table(
        title=(
            f"{Path(report.trace).name}: scored {report.scored_from:%Y-%m-%d %H:%M} → "
            f"{report.end:%Y-%m-%d %H:%M} UTC; {settings.per_node_rps:.4g} req/s per node, "
            f"boot {format_duration(settings.boot_delay)}, "
            f"late = queue > {settings.latency_target_s:g} s, "
            f"target ≤ {settings.service_target:.2%} late"
            + (
                "; the policy replays the trace's queue_depth"
                if report.replay.queue is not None
                else ""
            )
            + (
                f"; policies ran {format_span(report.scored_from - report.start)} before "
                "scoring (--burn-in: a settled loop, not what a new pool gets)"
                if settings.burn_in != DEFAULT_BURN_IN  # not what a new pool gets: said
                else ""
            )
        )
    )
    for column in ("policy", "setting (swept)", "node-hours", "× oracle", "late", "late min"):
        table.add_column(
            column, justify="left" if column.startswith(("policy", "set")) else "right"
        )
    table.add_column("actions", justify="right")
    table.add_column("meets", justify="center")
    for result in report.results:
        ratio = ratio_to_oracle(report, result)
        table.add_row(
            result.name,
            describe_knobs(result.knobs),
            f"{result.score.node_hours:,.0f}",
            "-" if ratio is None else f"{ratio:.2f}",
            f"{result.score.late_share:.3%}",
            str(result.score.late_minutes),
            str(result.score.scale_actions),
            "yes" if result.meets_target else "[red]no[/]",
        )
    return table


def summary_line(report: BacktestReport) -> str:
    ratio, best = policy_vs_best(report)
    policy = report.result("policy")
    if best is None:
        return "no baseline meets the service target"
    verdict = "meets" if policy.meets_target else "MISSES"
    if ratio is None:  # the best baseline needed no node at all (a trace of no requests)
        versus = (
            f"{policy.score.node_hours:,.0f} node-hours; the best baseline that meets it "
            f"({best.name}) needs none"
        )
    else:
        versus = (
            f"node-hours {ratio:.3f} × the best baseline that meets it "
            f"({best.name}, {best.score.node_hours:,.0f} node-hours)"
        )
    return f"policy {verdict} the target; {versus}; ran in {report.elapsed_s:.1f} s"


def summary_lines(report: BacktestReport) -> list[str]:
    """The summary line, how the policy's late requests fell on its days (where any), and
    the least any fleet meeting the target could cost (where a baseline needed nodes)."""
    by_day = budget_line(report)
    lines = [summary_line(report), *([by_day] if by_day else [])]
    start = report.replay.score_start
    scored = report.replay.rps[start:]
    missing = int(np.count_nonzero(~np.isfinite(scored)))
    if missing:
        lines.append(
            f"{missing:,} of {len(scored):,} scored minutes have no sample in the trace: "
            "counted as no requests in every figure above"
        )
    queue = report.replay.queue
    gone = 0 if queue is None else int(np.count_nonzero(~np.isfinite(queue[start:])))
    if gone:  # a signal without a reading blocks scale-down, as missing demand does
        lines.append(
            f"{gone:,} of {len(scored):,} scored minutes have no queue_depth sample in the "
            "trace: the policy's queue signal had no reading there (past its hold, no "
            "scale-down, as for missing demand)"
        )
    versus = least_vs_best(report)
    if versus is not None:
        lines.append(
            f"no fleet that meets the target costs under {least_node_hours(report):,.0f} "
            f"node-hours, less {report.settings.latency_target_s:g} s of its largest count "
            f"(on-time requests at full use, foreseen): {versus:.3f} × the best baseline"
        )
    return lines


def report_json(report: BacktestReport) -> dict[str, Any]:
    settings = report.settings
    ratio, best = policy_vs_best(report)
    return {
        "trace": report.trace,
        "start": report.start.isoformat(),
        "scored_from": report.scored_from.isoformat(),
        "end": report.end.isoformat(),
        "settings": {
            "per_node_rps": settings.per_node_rps,
            "boot_delay_s": settings.boot_delay.total_seconds(),
            "tick_s": settings.tick.total_seconds(),
            "latency_target_s": settings.latency_target_s,
            "service_target": settings.service_target,
            "warmup_s": settings.warmup.total_seconds(),
            "burn_in_s": settings.burn_in.total_seconds(),
            "predictor": settings.predictor_kind,
            "tuned": settings.tune,
        },
        "policies": [
            {
                "name": r.name,
                "description": r.description,
                "knobs": r.knobs,
                "settings_tried": r.settings_tried,
                "node_hours": r.score.node_hours,
                "ratio_to_oracle": ratio_to_oracle(report, r),
                "late_share": r.score.late_share,
                "late_minutes": r.score.late_minutes,
                "scale_actions": r.score.scale_actions,
                "requests": r.score.requests,
                "meets_target": r.meets_target,
            }
            for r in report.results
        ],
        "policy_by_day": [
            {
                "start": day.start.isoformat(),
                "minutes": day.minutes,
                "requests": day.requests,
                "late_requests": day.late,
                "mean_nodes": day.mean_nodes,
            }
            for day in days_of(report)
        ],
        "least_node_hours": least_node_hours(report),
        "best_baseline": best.name if best else None,
        "policy_to_best_baseline": ratio,
        "elapsed_s": report.elapsed_s,
    }


def write_decisions(report: BacktestReport, path: Path) -> None:
    """One row per policy tick: the count it set, and the fleet's ready and booting nodes.
    A new file is 0644, as the plot beside it: a report to share, holding no secret."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["timestamp", "desired", "ready", "pending"])
    for tick in report.policy_ticks:
        writer.writerow(
            [tick.at.strftime("%Y-%m-%dT%H:%M:%SZ"), tick.desired, tick.ready, tick.pending]
        )
    write_atomically(path, buffer.getvalue(), new_mode=0o644)
