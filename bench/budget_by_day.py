"""Where the untuned policy's service budget goes, day by day: a diagnostic, not a result.

The untuned policy (`autoscaler backtest --no-tune`, issue 15's headline) runs on one
trace as bench/backtest_untuned.py runs it (its per-node capacity, 10-minute boot, 7
days of warm-up); then, for each day of the scored span, this prints the requests, the
late ones (the backtest's own queue rule), the share of the whole run's budget that day
took, and the fleet's mean count. A run that spends little on ordinary days and most of
its budget on one burst, or the reverse, reads at a glance; so does what the fleet cost
in each week (the portfolio compares its members only once a week of ticks is kept).
`--anchors` also runs bench/backtest_untuned.py's anchors, tuned in hindsight, and
prints the cheapest that meets the target beside each day: its mean count and the
policy's over it, so the days where the policy pays more than the anchor read at a glance.

    python bench/budget_by_day.py NAME|FILE [--traces DIR] [--twice] [--variant V]
        [--target 0.01] [--anchors] [--burn-in 7d]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from backtest_targets import capacity_for  # run from bench/: its folder is on sys.path
from backtest_untuned import ANCHORS
from rich.console import Console
from rich.table import Table
from trace_files import DEFAULT_TRACES, trace_name, trace_path
from trace_variants import VARIANTS, write_played_twice, write_variants

from autoscaler.backtest.budget import Day, count_ratio, days_of
from autoscaler.backtest.engine import DEFAULT_BURN_IN
from autoscaler.backtest.runner import BacktestReport, BacktestSettings, load_trace, run_backtest
from common.durations import parse_duration


def by_day(report: BacktestReport) -> Table:
    """One row a day of the scored span (autoscaler.backtest.budget), and their total;
    where an anchor meets the target, the cheapest one's mean count beside each."""
    days = days_of(report)
    best = report.best_baseline()
    anchor = days_of(report, best.name) if best is not None else None
    requests = sum(day.requests for day in days)
    budget = report.settings.service_target * requests
    late_share = report.result("policy").score.late_share
    title = f"policy by day: {late_share:.3%} late over the run"
    if best is None and len(report.results) > 1:
        title += "; no anchor meets the target"
    table = Table(title=title)
    for column in ("day from", "requests", "late", "late share", "of the budget", "mean nodes"):
        table.add_column(column, justify="right")
    if best is not None:
        table.add_column(f"{best.name} nodes", justify="right")
        table.add_column("× it", justify="right")
    for at, day in enumerate(days):
        label = f"{day.start:%Y-%m-%d %H:%M}"
        cells = _cells(label, day.requests, day.late, day.mean_nodes, budget)
        table.add_row(*cells, *(_versus(days[at : at + 1], anchor[at : at + 1]) if anchor else ()))
    mean_nodes = _mean_count(days)
    late = sum(day.late for day in days)
    table.add_section()
    total = _cells("all", requests, late, mean_nodes, budget)
    table.add_row(*total, *(_versus(days, anchor) if anchor else ()))
    return table


def _mean_count(days: list[Day]) -> float:
    """A run's mean count over these days (each weighted by its minutes)."""
    return float(np.average([day.mean_nodes for day in days], weights=[d.minutes for d in days]))


def _versus(mine: list[Day], theirs: list[Day]) -> tuple[str, str]:
    """The anchor's mean count over these days, and the policy's node-hours over its."""
    ratio = count_ratio(mine, theirs)
    return f"{_mean_count(theirs):.1f}", "-" if ratio is None else f"{ratio:.3f}"


def _cells(
    label: str, requests: float, late: float, mean_nodes: float, budget: float
) -> tuple[str, ...]:
    return (
        label,
        f"{requests:,.0f}",
        f"{late:,.1f}",
        f"{late / requests:.3%}" if requests > 0 else "-",
        f"{late / budget:.0%}" if budget > 0 else "-",
        f"{mean_nodes:.1f}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="a trace's name (in --traces) or a trace file")
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    parser.add_argument(
        "--twice",
        action="store_true",
        help="the trace played twice, timestamps continued (as backtest_untuned.py --twice)",
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="one stress variant")
    parser.add_argument("--target", type=float, default=0.01, help="service target (0.01)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the backtest")
    parser.add_argument(
        "--anchors",
        action="store_true",
        help="also run the anchors, tuned in hindsight, and set the cheapest that meets the "
        "target beside each day",
    )
    parser.add_argument(
        "--burn-in",
        type=parse_duration,
        default=DEFAULT_BURN_IN,
        help="how long the policy runs before scoring (`autoscaler backtest --burn-in`; 7d: "
        "its loop settled, a diagnostic; default: 1h)",
    )
    args = parser.parse_args()
    given = Path(args.trace)
    source = given if given.suffix in (".csv", ".gz") else trace_path(args.traces, args.trace)
    name = trace_name(source)
    per_node_rps = capacity_for(name, float(load_trace(source).mean()))
    with tempfile.TemporaryDirectory(prefix="variant-") as folder:
        # The capacity stays the source's: a played-twice file or a variant changes the
        # traffic, not the nodes (and its name would pick another capacity).
        path = write_played_twice(source, name, Path(folder)) if args.twice else source
        if args.variant:
            base = trace_name(path)
            written = write_variants(path, base, Path(folder))
            path = next(p for p in written if p.stem == f"{base}_{args.variant}")
        trace = load_trace(path)
        settings = BacktestSettings(
            per_node_rps=per_node_rps,
            service_target=args.target,
            tune=False,
            baselines=tuple(a for a in ANCHORS if a != "oracle") if args.anchors else (),
            jobs=args.jobs,
            burn_in=args.burn_in,
        )
        report = run_backtest(path, settings, trace=trace)
    Console(width=120).print(by_day(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
