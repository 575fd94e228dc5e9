"""`autoscaler backtest`: the project's policy and the baselines on a recorded trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from common.cli import option_duration
from common.durations import parse_duration
from common.extras import require

console = Console(soft_wrap=True, width=None if Console().is_terminal else 140)
errors = Console(stderr=True, soft_wrap=True)


def backtest_command(
    trace: Annotated[
        Path, typer.Option("--trace", help="CSV of timestamp,requests per minute", exists=True)
    ],
    per_node_rps: Annotated[
        float | None, typer.Option("--per-node-rps", help="req/s one node serves at the SLO")
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="gpu-bench capacity profile instead of --per-node-rps"),
    ] = None,
    boot_delay: Annotated[str, typer.Option(help="time from order to a ready node")] = "10m",
    tick: Annotated[str, typer.Option(help="the policy's tick interval")] = "1m",
    latency_target: Annotated[
        str, typer.Option(help="a request is late if its queue takes longer (3s, 500ms)")
    ] = "3s",
    service_target: Annotated[
        float, typer.Option(help="largest share of late requests that meets the target")
    ] = 0.01,
    warmup: Annotated[str, typer.Option(help="history before scoring starts")] = "7d",
    predictor: Annotated[
        str | None, typer.Option(help="the policy's predictor (default: seasonal)")
    ] = None,
    predictor_targets: Annotated[
        str | None,
        typer.Option(
            help="service targets to try in the predictor's upper quantile, e.g. 0.01,0.05 "
            "(one full run each; default: --service-target)"
        ),
    ] = None,
    tune: Annotated[
        bool, typer.Option(help="sweep the policy's utilization, stabilization and floor")
    ] = True,
    margin: Annotated[
        str,
        typer.Option(
            help="the predictor's margin: band (as the forecaster made it) or loop "
            "(calibrated on the policy's own replay of its recent ticks)"
        ),
    ] = "band",
    policy: Annotated[
        str,
        typer.Option(
            help="what the fleet is sized for: forecast, reactive, recent_peak, or auto "
            "(the cheapest on the replay that meets the target); all but forecast need "
            "--margin loop"
        ),
    ] = "forecast",
    scale_up_max_step: Annotated[
        int | None, typer.Option(help="the policy adds at most this many nodes per action")
    ] = None,
    scale_up_max_percent: Annotated[
        float | None,
        typer.Option(help="the policy adds at most this % of its current count per action"),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(help="processes to use (default: every CPU); the report is the same"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    decisions_out: Annotated[
        Path | None, typer.Option(help="CSV of the policy's ticks: timestamp,desired,ready,pending")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG: demand vs ready capacity, late minutes marked")
    ] = None,
) -> None:
    """Replay a trace through the daemon's forecast/size/decide code and compare baselines."""
    from autoscaler.backtest.report import backtest_table, report_json, summary_line
    from autoscaler.backtest.report import write_decisions as write_decisions_csv
    from autoscaler.backtest.runner import BacktestSettings, run_backtest

    capacity = _capacity(per_node_rps, profile)
    try:
        if plot is not None:  # before the run, not after it
            require("--plot", "matplotlib")
        settings = BacktestSettings(
            per_node_rps=capacity,
            boot_delay=parse_duration(boot_delay),
            tick=parse_duration(tick),
            latency_target_s=option_duration("--latency-target", latency_target).total_seconds(),
            service_target=service_target,
            warmup=parse_duration(warmup),
            predictor=predictor,
            predictor_targets=tuple(
                float(v) for v in (predictor_targets or "").split(",") if v.strip()
            ),
            tune=tune,
            margin=margin,
            policy=policy,
            scale_up_max_step=scale_up_max_step,
            scale_up_max_percent=scale_up_max_percent,
            jobs=jobs,
        )
    except ValueError as exc:
        errors.print(f"[red]invalid option[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    with Progress(
        TextColumn("replaying {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    ) as progress:
        task = progress.add_task(trace.name, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            report = run_backtest(trace, settings, on_progress=advance)
        except ValueError as exc:
            errors.print(f"[red]cannot backtest[/]: {exc}", highlight=False)
            raise typer.Exit(2) from None
    if decisions_out is not None:
        write_decisions_csv(report, decisions_out)
    if plot is not None:
        from autoscaler.cli.plots import backtest_plot

        backtest_plot(report, plot)
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
    else:
        console.print(backtest_table(report))
        console.print(summary_line(report), highlight=False)


def _capacity(per_node_rps: float | None, profile: Path | None) -> float:
    if (per_node_rps is None) == (profile is None):
        errors.print("[red]give exactly one of --per-node-rps or --profile[/]")
        raise typer.Exit(2)
    if profile is not None:
        from gpu_bench.profile import load_profile

        try:
            return load_profile(profile).per_node_rps
        except (OSError, ValueError) as exc:
            errors.print(f"[red]cannot read profile[/]: {exc}", highlight=False)
            raise typer.Exit(2) from None
    assert per_node_rps is not None
    if per_node_rps <= 0:
        errors.print("[red]--per-node-rps must be positive[/]")
        raise typer.Exit(2)
    return per_node_rps
