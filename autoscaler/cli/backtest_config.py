"""`autoscaler backtest --config FILE --pool P`: one pool's real settings on its past.

The config is read by the daemon's own loader (the same errors, naming file, line and
field); the pool runs as configured (schedules, bounds, step limits, spare, cooldown,
boot time, predictor with its margin and policy) on a simulated fleet, never its real
backend, and no overrides file is read. The demand is a trace file or the pool's own
history from the config's Prometheus, through the daemon's metrics checks (missing data
is never zero load). Then the same pool replays with other predictor settings
(autoscaler.backtest.recommend) and the cheapest that meets the target is printed as
the config lines to use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from autoscaler.backtest.engine import DEFAULT_BURN_IN, MINUTE, BacktestSettings
from autoscaler.backtest.recommend import (
    Candidate,
    config_lines,
    hindsight_note,
    recommend,
    recommendation_json,
    variant_pools,
)
from autoscaler.backtest.runner import BacktestReport, run_backtest
from autoscaler.backtest.tuning import forked_executor, processes_for
from autoscaler.config.capacity import boot_time_of, per_node_rps_of
from autoscaler.config.loader import load_config
from autoscaler.config.metrics_source import ReplayMetrics
from autoscaler.config.problems import ConfigError
from autoscaler.config.schema import Config, Pool
from autoscaler.metrics import MetricsError, MetricsSource, check_demand
from common.durations import format_duration

Demand = tuple[pd.Series, int]
"""The demand per minute to replay, and the minutes each row of its trace covers (one for
a Prometheus history): frame_replay's `row_minutes`."""

console = Console(soft_wrap=True, width=None if Console().is_terminal else 140)
errors = Console(stderr=True, soft_wrap=True)


@contextmanager
def replay_progress(name: str) -> Iterator[Any]:
    """A progress bar on a terminal's stderr (none elsewhere); yields the callback."""
    with Progress(
        TextColumn("replaying {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as progress:
        task = progress.add_task(name, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


@dataclass(frozen=True)
class PoolRun:
    """What the command line asks of a pool's backtest beside the config itself."""

    config: Path
    pool: str
    trace: Path | None
    history: timedelta
    warmup: timedelta
    burn_in: timedelta = DEFAULT_BURN_IN
    per_node_rps: float | None = None
    latency_target_s: float | None = None
    service_target: float | None = None
    jobs: int | None = None


OPTION_OF = {
    "per_node_rps": "--per-node-rps",
    "boot_delay": "--boot-delay",
    "tick": "--tick",
    "warmup": "--warmup",
    "burn_in": "--burn-in",
    "latency_target_s": "--latency-target",
    "service_target": "--service-target",
    "predictor": "--predictor",
    "predictor_targets": "--predictor-targets",
    "margin": "--margin",
    "policy": "--policy",
    "scale_up_max_step": "--scale-up-max-step",
    "scale_up_max_percent": "--scale-up-max-percent",
    "jobs": "--jobs",
}
"""The backtest's settings as its command line spells them."""


def option_problem(exc: ValueError) -> str:
    """A setting's problem led by the option that gives it (a SettingError names its
    field), as the other option errors are: "--tick: tick must be whole minutes ..."."""
    option = OPTION_OF.get(getattr(exc, "setting", ""))
    return f"{option}: {exc}" if option else str(exc)


def load_pool(path: Path, name: str) -> tuple[Config, Pool, float]:
    """The config, the pool (its profile's start-up time in its boot time when it asks
    for that) and its per-node rate; exit 2 naming file, line and field, or the pools."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        errors.print(f"[red]invalid config[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    found = [p for p in config.pools if p.name == name]
    if not found:
        names = ", ".join(p.name for p in config.pools)
        errors.print(f"no pool named {name!r} in {path}; the config has: {names}", markup=False)
        raise typer.Exit(2)
    pool = found[0]
    try:
        per_node_rps = per_node_rps_of(pool.capacity)
        pool = pool.model_copy(update={"boot_time": boot_time_of(pool)})
    except (ConfigError, OSError) as exc:
        errors.print(f"[red]cannot read the pool's capacity[/]\n{escape(str(exc))}")
        raise typer.Exit(2) from None
    return config, pool, per_node_rps


def pool_settings(
    config: Config, pool: Pool, per_node_rps: float, run: PoolRun
) -> BacktestSettings:
    """The backtest's settings from the pool; targets from its predictor's params unless
    the command line gives them. Raises ValueError for a setting a replay cannot use."""
    _check_whole_minutes(config, pool, run.config)
    params = pool.predictor.params
    return BacktestSettings(
        per_node_rps=run.per_node_rps or per_node_rps,
        boot_delay=pool.boot_time,
        tick=config.interval,
        latency_target_s=_first(run.latency_target_s, pool.predictor.latency_target_s),
        service_target=_first(run.service_target, pool.predictor.service_target),
        warmup=run.warmup,
        burn_in=run.burn_in,
        demand_window=pool.demand.window,
        max_staleness=config.metrics.max_staleness,
        predictor=pool.predictor.kind,
        predictor_params=dict(params),
        tune=False,
        margin=pool.predictor.margin,
        policy=pool.predictor.policy,
        scale_up_max_step=pool.scale_up.max_step,
        scale_up_max_percent=pool.scale_up.max_percent,
        jobs=run.jobs,
    )


def _check_whole_minutes(config: Config, pool: Pool, path: Path) -> None:
    """The replay steps whole minutes: a valid daemon setting off them is refused naming
    the config's field and its value as written there, not the backtest's own names."""
    fields = {
        "interval": config.interval,
        f"pools[{pool.name}].boot_time": pool.boot_time,
        f"pools[{pool.name}].demand.window": pool.demand.window,
    }
    for name, value in fields.items():
        if value % MINUTE:
            raise ValueError(
                f"{path}: {name}: {format_duration(value)} is not whole minutes, which a "
                "backtest replays minute by minute"
            )


def _first(*values: float | None) -> float:
    return float(next(v for v in values if v is not None))


def pool_history(
    source: MetricsSource, pool: Pool, end: datetime, span: timedelta, max_staleness: timedelta
) -> pd.Series:
    """The pool's demand over `span` up to `end` at a 1-minute step, through the daemon's
    checks (MetricsError if none, stale, negative or ambiguous); minutes without a sample
    are NaN on the grid (missing, never zero load)."""
    end = pd.Timestamp(end).floor("1min").to_pydatetime()
    query = pool.demand.query
    series = source.demand(query, end - span, end, MINUTE).rename(query)
    checked = check_demand(series, end, max_staleness)
    checked.index = checked.index.floor("1min")
    checked = checked[~checked.index.duplicated(keep="last")]
    if len(checked) < 2:
        raise MetricsError("empty", query, "fewer than two samples in the history")
    grid = pd.date_range(checked.index[0], checked.index[-1], freq="1min")
    return checked.reindex(grid)


def demand_of(config: Config, pool: Pool, run: PoolRun) -> tuple[str, Demand, Any]:
    """A label, the demand to replay and the queue depth (or None)."""
    from autoscaler.backtest.runner import load_queue_depth, load_trace_rows

    path = run.trace
    if path is None and isinstance(config.metrics, ReplayMetrics):
        path = config.metrics.trace
    if path is not None:
        series, row_minutes = load_trace_rows(path)
        return str(path), (series, row_minutes), load_queue_depth(path, series.index)
    from autoscaler.runtime import prometheus_source

    with prometheus_source(config, source=run.config, env=os.environ) as source:
        now = datetime.now(UTC)
        series = pool_history(source, pool, now, run.history, config.metrics.max_staleness)
    label = f"{pool.name} history ({series.index[0]:%Y-%m-%d %H:%M} → {now:%Y-%m-%d %H:%M} UTC)"
    return label, (series, 1), None


def config_backtest(run: PoolRun, as_json: bool) -> BacktestReport:
    """Replay the pool as configured and its variants; print the table and what to change."""
    from autoscaler.backtest.report import backtest_table, report_json, summary_lines

    config, pool, per_node_rps = load_pool(run.config, run.pool)
    try:
        settings = pool_settings(config, pool, per_node_rps, run)
    except ValueError as exc:
        if getattr(run, getattr(exc, "setting", ""), None) is not None:  # an option gave it
            errors.print(f"[red]invalid option[/]: {escape(option_problem(exc))}", highlight=False)
        else:
            errors.print(f"[red]cannot backtest pool {pool.name}[/]: {escape(str(exc))}")
        raise typer.Exit(2) from None
    try:
        label, demand, queue = demand_of(config, pool, run)
        report, others = replay_all(pool, settings, demand, queue, label)
        configured = Candidate.of(pool, report.result("policy"), configured=True)
    except ConfigError as exc:  # the config's Prometheus credentials, located
        errors.print(f"[red]invalid config[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except (ValueError, MetricsError, OSError) as exc:
        errors.print(f"[red]cannot backtest[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    chosen = recommend(configured, others)
    if as_json:
        document = report_json(report)
        document["pool"] = pool.name
        document["config"] = str(run.config)
        note = hindsight_note(settings.burn_in)
        document["recommendations"] = recommendation_json(
            configured, others, chosen, note, pool.predictor
        )
        document["signals_not_replayed"] = unreplayed_signals(pool, queue)
        typer.echo(json.dumps(document, indent=2))
    else:
        console.print(backtest_table(report))
        for line in summary_lines(report):
            console.print(line, highlight=False)
        if left_out := unreplayed_signals(pool, queue):
            console.print(
                f"not replayed: the pool's signals {', '.join(left_out)} (the daemon also "
                "sizes by them, so it may run dearer than this)",
                highlight=False,
                markup=False,
            )
        print_recommendation(pool, configured, others, chosen, settings)
    return report


def unreplayed_signals(pool: Pool, queue: object | None) -> list[str]:
    """The pool's signals this replay leaves out: all but a queue_depth signal, and that
    one too without a trace's queue_depth column. A pool sized by them would look cheaper
    here than it runs, without a word."""
    return [
        f"{signal.name} ({signal.kind})"
        for signal in pool.signals
        if signal.kind != "queue_depth" or queue is None
    ]


def replay_all(
    pool: Pool, settings: BacktestSettings, demand: Demand, queue: Any, label: str
) -> tuple[BacktestReport, list[Candidate]]:
    """The pool as configured (with the baselines) and each variant, a full replay each;
    with more than one CPU the variants run on forked workers meanwhile."""
    variants = variant_pools(pool)
    workers = forked_executor(len(variants)) if variants and processes_for(settings) > 1 else None
    if workers is None:
        report = _configured(pool, settings, demand, queue, label)
        return report, [_variant(v, settings, demand, queue, label, True) for v in variants]
    with workers:
        futures = [
            workers.submit(_variant, v, settings, demand, queue, label, False) for v in variants
        ]
        report = _configured(pool, settings, demand, queue, label)
        return report, [f.result() for f in futures]


def _configured(
    pool: Pool, settings: BacktestSettings, demand: Demand, queue: Any, label: str
) -> BacktestReport:
    trace, rows = demand
    with replay_progress(pool.name) as advance:
        return run_backtest(
            Path(label),
            settings,
            pool=pool,
            on_progress=advance,
            trace=trace,
            queue=queue,
            row_minutes=rows,
        )


def _variant(
    pool: Pool,
    settings: BacktestSettings,
    demand: Demand,
    queue: Any,
    label: str,
    progress: bool,
) -> Candidate:
    """The pool with another predictor setting: a full replay by the same code."""
    varied = replace(
        settings, baselines=(), margin=pool.predictor.margin, policy=pool.predictor.policy
    )
    name = f"{pool.name} (margin {pool.predictor.margin}, policy {pool.predictor.policy})"
    trace, rows = demand
    with replay_progress(name) if progress else nullcontext(None) as advance:
        report = run_backtest(
            Path(label),
            varied,
            pool=pool,
            on_progress=advance,
            trace=trace,
            queue=queue,
            row_minutes=rows,
        )
    return Candidate.of(pool, report.result("policy"))


def print_recommendation(
    pool: Pool,
    configured: Candidate,
    others: list[Candidate],
    chosen: Candidate | None,
    settings: BacktestSettings,
) -> None:
    target = settings.service_target
    for candidate in (configured, *others):
        mark = " (as configured)" if candidate.configured else ""
        meets = "meets" if candidate.meets else "misses"
        console.print(
            f"{candidate.label}{mark}: {candidate.node_hours:,.1f} node-hours, "
            f"{candidate.late_share:.3%} late ({meets} the {target:.2%} target)",
            highlight=False,
            markup=False,
        )
    if chosen is None:
        console.print(
            f"no other setting beats pool {pool.name} as configured on this span"
            + ("" if configured.meets else " (none tried meets the target)"),
            highlight=False,
            markup=False,
        )
        return
    console.print(
        f"recommended: in pool {pool.name}, this predictor: block in place of its own "
        f"({chosen.node_hours / configured.node_hours:.2f}x the node-hours as configured):"
        if configured.node_hours > 0 and configured.meets
        else f"recommended: in pool {pool.name}, this predictor: block in place of its own "
        "(it meets the target; as configured it does not):",
        highlight=False,
        markup=False,
    )
    console.print(config_lines(chosen, pool.predictor), highlight=False, markup=False)
    console.print(f"This is {hindsight_note(settings.burn_in)}.", highlight=False, markup=False)
