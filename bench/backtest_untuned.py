"""Issue 15's yardstick: the policy exactly as a user gets it, against anchors tuned in hindsight.

The policy runs untuned (`autoscaler backtest --no-tune`: its defaults, configured from
the service target alone, one forecasting run); each anchor (static, HPA-like reactive,
the seed's linear regression, seasonal-naive) has its knobs swept on the very span that
is scored, which flattens them. Per trace: per-node capacity = mean demand / 20
(alibaba_genai_lora: 2 requests per minute per node), 10-minute boot, 3 s latency
target, 7 days of warm-up; a 1 % target on every trace, and 0.1 % and 5 % on nasa_jul95.

Each row prints the policy's late share, the share of the service budget it spent
(late share / target), its node-hours and the ratio to the cheapest anchor that meets the
target (and that ratio over the first scored week and after it); then "least", the
least any fleet meeting the target could cost over that anchor (every node at full use,
the future known, no boot delay): a ratio goal below it is out of any policy's reach.
The issue's goal: meets the target, spends at least half of it, ratio <= 0.9.
Not a timed test: run it by hand and record its output.

    python bench/backtest_untuned.py [--only NAME] [--jobs N] [--json F] [--margin band|loop|widen]
        [--policy forecast|auto|reactive|recent_peak|static] [--variants NAME]
        [--twice NAME] [--smooth] [--events] [--batches] [--burn-in 7d] [EXTRA.csv ...]

Extra trace files (a `timestamp,requests` CSV, say one not in the repository) are scored
at the 1 % target with capacity = mean demand / 20. `--variants nasa_jul95` scores
that trace's stress variants (bench/trace_variants.py: traffic changing in ways its
history never showed) with the source's capacity. `--twice servegen_msmall` scores
that trace played twice (timestamps continued) and its variants: its fortnight's surge
comes round again after a calm week, outside the replay's window. `--smooth` scores two
synthetic smooth traces (bench/smooth_traces.py: the class of a large website's or a
city's rides, none of the real traces beside the project). `--events` scores two synthetic
calendar-driven traces (bench/event_traces.py: a season of matches, office hours with a
week off). `--batches` scores three synthetic cycles with a recurring batch
(bench/batch_traces.py: on Mondays, every night, none).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from backtest_targets import capacity_for  # run from bench/: its folder is on sys.path
from batch_traces import write_batch_traces
from event_traces import write_event_traces
from rich.console import Console
from rich.table import Table
from smooth_traces import write_smooth_traces
from trace_files import DEFAULT_TRACES, trace_name, trace_path
from trace_variants import write_played_twice, write_variants

from autoscaler.backtest.baselines import PolicyResult
from autoscaler.backtest.budget import count_ratio, days_of
from autoscaler.backtest.engine import DEFAULT_BURN_IN
from autoscaler.backtest.report import least_vs_best, policy_vs_best
from autoscaler.backtest.runner import (
    BacktestReport,
    BacktestSettings,
    load_trace,
    load_trace_rows,
    run_backtest,
)
from autoscaler.config.schema import DEFAULT_MARGIN, PredictorConfig
from common.durations import format_duration, parse_duration

GOAL, AIM, SPEND = 0.9, 0.8, 0.5
BUNDLED = ("nasa_jul95", "servegen_msmall", "alibaba_genai_lora")
EXTRA_TARGETS = {"nasa_jul95": (0.001, 0.05)}
ANCHORS = ("oracle", "static", "hpa", "linear-20m", "seasonal-naive")
Case = tuple[Path, str, float, float | None]
"""A row to score: the trace file, its name, the target, its per-node rps (None: by name)."""


@dataclass(frozen=True)
class Row:
    trace: str
    target: float
    late: float
    node_hours: float
    best: str | None
    ratio: float | None
    seconds: float
    first_week: float | None = None
    """The ratio over the first scored week alone (the loop still learning), and ..."""
    after: float | None = None
    """... over the rest of the scored span (None where the span is a week or less)."""
    least: float | None = None
    """The least any fleet meeting the target could cost, over the best anchor: how far
    below the anchor any policy could go at all (autoscaler.backtest.report)."""

    @property
    def spent(self) -> float:
        return self.late / self.target

    @property
    def verdict(self) -> str:
        failed = []
        if self.late > self.target + 1e-12:
            failed.append("misses target")
        elif self.spent < SPEND:
            failed.append(f"spends < {SPEND:.0%}")
        if self.ratio is None:
            failed.append("no anchor meets it")
        elif self.ratio > GOAL:
            failed.append(f"> {GOAL}x")
        return "MET" if not failed else "; ".join(failed)


def score(case: Case, args: argparse.Namespace) -> Row:
    """One row, the policy configured by the options (`--margin`, `--policy`, `--jobs`,
    `--burn-in`); a case's per-node rps None: capacity_for the trace by its name and mean."""
    path, name, target, per_node_rps = case
    trace, row_minutes = load_trace_rows(path)
    settings = BacktestSettings(
        per_node_rps=per_node_rps or capacity_for(name, float(trace.mean())),
        service_target=target,
        burn_in=args.burn_in,
        tune=False,
        margin=args.margin,
        policy=args.policy,
        baselines=ANCHORS,
        jobs=args.jobs,
    )
    began = time.perf_counter()
    report = run_backtest(path, settings, trace=trace, row_minutes=row_minutes)
    elapsed = time.perf_counter() - began
    policy = report.result("policy")
    ratio, best = policy_vs_best(report)
    first_week, after = week_split(report, best)
    return Row(
        name,
        target,
        policy.score.late_share,
        policy.score.node_hours,
        None if best is None else best.name,
        ratio,
        elapsed,
        first_week,
        after,
        least_vs_best(report),
    )


def week_split(
    report: BacktestReport, best: PolicyResult | None
) -> tuple[float | None, float | None]:
    """The policy's node-hours over the best anchor's in the first scored week, and after
    it (None where the span is a week or less): until a week of ticks is kept the loop
    cannot compare its members and its margin stays at least the band, so the first week
    shows what learning costs."""
    if best is None:
        return None, None
    mine, theirs = days_of(report), days_of(report, best.name)
    week = 7
    after = count_ratio(mine[week:], theirs[week:]) if len(mine) > week else None
    return count_ratio(mine[:week], theirs[:week]), after


def stress_cases(source: Path, name: str, folder: Path, twice: bool) -> list[Case]:
    """The cases (file, name, target, per-node rps) of the trace's stress variants at 1 %,
    written into `folder`; `twice`: of the trace played twice, and that trace itself. The
    variants change the traffic, not the nodes: the source's capacity for each."""
    per_node_rps = capacity_for(name, float(load_trace(source).mean()))
    base = write_played_twice(source, name, folder) if twice else source
    written = write_variants(base, trace_name(base), folder)
    paths = [base, *written] if twice else written
    return [(path, trace_name(path), 0.01, per_node_rps) for path in paths]


def table(rows: list[Row]) -> Table:
    out = Table(title="untuned policy vs anchors tuned in hindsight")
    for column in ("trace", "target", "late", "budget spent", "node-hours", "best anchor"):
        out.add_column(column, justify="left" if column in ("trace", "best anchor") else "right")
    out.add_column("ratio", justify="right")
    out.add_column("week 1 / after", justify="right")
    out.add_column("least", justify="right")
    out.add_column("verdict")
    out.add_column("s", justify="right")
    for row in rows:
        out.add_row(
            row.trace,
            f"{row.target:.1%}",
            f"{row.late:.3%}",
            f"{row.spent:.0%}",
            f"{row.node_hours:,.0f}",
            row.best or "-",
            "-" if row.ratio is None else f"{row.ratio:.3f}",
            " / ".join("-" if r is None else f"{r:.3f}" for r in (row.first_week, row.after)),
            "-" if row.least is None else f"{row.least:.3f}",
            row.verdict,
            f"{row.seconds:.0f}",
        )
    return out


def cases_of(args: argparse.Namespace, folder: Path) -> list[Case]:
    """The rows the options ask for, in order; generated traces are written into `folder`."""
    named = args.variants or args.twice or args.smooth or args.events or args.batches
    cases: list[Case] = [
        (trace_path(args.traces, name), name, target, None)
        for name in (args.only or ([] if named else BUNDLED))
        for target in (0.01, *EXTRA_TARGETS.get(name, ()))
    ]
    cases += [(path, trace_name(path), 0.01, None) for path in args.extra]
    for name in args.variants or ():
        cases += stress_cases(trace_path(args.traces, name), name, folder, twice=False)
    for name in args.twice or ():
        cases += stress_cases(trace_path(args.traces, name), name, folder, twice=True)
    written = (
        (write_smooth_traces(folder) if args.smooth else [])
        + (write_event_traces(folder) if args.events else [])
        + (write_batch_traces(folder) if args.batches else [])
    )
    return cases + [(path, trace_name(path), 0.01, None) for path in written]


def _choices(field: str) -> tuple[str, ...]:
    """What the pool config accepts for this predictor field (its Literal), not a copy."""
    return get_args(PredictorConfig.model_fields[field].annotation)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extra", nargs="*", type=Path, help="more trace files (1 %% target)")
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--only", action="append", help="run only this bundled trace")
    parser.add_argument(
        "--variants",
        action="append",
        metavar="NAME",
        help="score this trace's stress variants (bench/trace_variants.py: a step up, a ramp, "
        "a time-zone move, a spike day, campaigns) at 1 %%, with its per-node capacity; "
        "with no --only, instead of the bundled traces",
    )
    parser.add_argument(
        "--twice",
        action="append",
        metavar="NAME",
        help="score this trace played twice, timestamps continued, and that trace's stress "
        "variants, at 1 %%, with its per-node capacity (an event that comes round after a "
        "calm stretch longer than the replay's week)",
    )
    parser.add_argument(
        "--smooth",
        action="store_true",
        help="score two synthetic smooth traces (bench/smooth_traces.py: a website's day, a "
        "commuter's) at 1 %%, capacity = mean / 20; with no --only, instead of the bundled",
    )
    parser.add_argument(
        "--events",
        action="store_true",
        help="score two synthetic calendar-driven traces (bench/event_traces.py)",
    )
    parser.add_argument(
        "--batches",
        action="store_true",
        help="score three synthetic traces of a cycle with a recurring batch "
        "(bench/batch_traces.py: weekly, nightly, none) at 1 %%, capacity = mean / 20",
    )
    parser.add_argument("--jobs", type=int, help="processes per backtest (default: all CPUs)")
    parser.add_argument(
        "--burn-in",
        type=parse_duration,
        default=DEFAULT_BURN_IN,
        help="how long the policy runs before scoring (`autoscaler backtest --burn-in`): 7d, "
        "as long as the warmup, is the daemon as if it had run from the trace's start, its "
        "loop settled: a diagnostic, not the untuned policy a new pool gets (default: 1h)",
    )
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument(
        "--margin",
        choices=_choices("margin"),
        default=DEFAULT_MARGIN,
        help=f"the predictor's margin (default: {DEFAULT_MARGIN}, the pool config's)",
    )
    parser.add_argument(
        "--policy",
        choices=_choices("policy"),
        help="what the fleet is sized for (all but forecast need --margin loop or widen; "
        "default: the margin's, as in a pool config)",
    )
    args = parser.parse_args()
    console = Console(width=180)
    console.print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}")
    if args.burn_in != DEFAULT_BURN_IN:
        console.print(
            f"burn-in {format_duration(args.burn_in)}: the policy ran that long before "
            "scoring, its loop settled: a diagnostic, not the untuned policy a new pool gets",
            highlight=False,
        )
    began = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="variants-") as folder:
        cases = cases_of(args, Path(folder))
        for case in cases:
            rows.append(score(case, args))
            console.print(table(rows[-1:]))
    console.print(table(rows))
    console.print(f"total {time.perf_counter() - began:.0f} s", highlight=False)
    if args.json:
        rows_out = [{**dataclasses.asdict(r), "verdict": r.verdict} for r in rows]
        args.json.write_text(json.dumps(rows_out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
