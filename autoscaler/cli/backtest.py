"""`autoscaler backtest`: the project's policy and the baselines on a recorded trace."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from common.cli import option_duration, option_output
from common.extras import require

if TYPE_CHECKING:
    from autoscaler.backtest.runner import BacktestReport, BacktestSettings
    from autoscaler.cli.backtest_config import PoolRun

console = Console(soft_wrap=True, width=None if Console().is_terminal else 140)
errors = Console(stderr=True, soft_wrap=True)


def backtest_command(
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace",
            help="CSV of timestamp,requests, a row a minute (or every k minutes: spread)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="the daemon's config: replay --pool as configured", exists=True
        ),
    ] = None,
    pool: Annotated[str | None, typer.Option(help="the pool of --config to replay")] = None,
    history: Annotated[
        str,
        typer.Option(help="with --config and no --trace: the pool's Prometheus history span"),
    ] = "14d",
    per_node_rps: Annotated[
        float | None, typer.Option("--per-node-rps", help="req/s one node serves at the SLO")
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="gpu-bench capacity profile instead of --per-node-rps"),
    ] = None,
    boot_delay: Annotated[
        str | None, typer.Option(help="time from order to a ready node (default: 10m)")
    ] = None,
    tick: Annotated[
        str | None, typer.Option(help="the policy's tick interval (default: 1m)")
    ] = None,
    latency_target: Annotated[
        str | None,
        typer.Option(
            help="a request is late if its queue takes longer, e.g. 3s or 500ms (default: 3s, or "
            "the pool's latency_target_s)"
        ),
    ] = None,
    service_target: Annotated[
        float | None,
        typer.Option(
            help="largest share of late requests that meets the target (default: 0.01, or "
            "the pool's service_target)"
        ),
    ] = None,
    warmup: Annotated[str, typer.Option(help="history before scoring starts")] = "7d",
    burn_in: Annotated[
        str | None,
        typer.Option(
            help="how long the daemon runs before scoring starts (default: 1h, as one just "
            "started); as long as --warmup: as if it had run from the trace's start, its loop "
            "settled (a diagnostic)"
        ),
    ] = None,
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
        bool,
        typer.Option(
            help="sweep the policy's utilization, stabilization and floor (not with "
            "--config: the pool runs as configured)"
        ),
    ] = True,
    margin: Annotated[
        str | None,
        typer.Option(
            help="the predictor's margin: band (as the forecaster made it), loop "
            "(calibrated on the policy's own replay of its recent ticks) or widen (the same, "
            "never below a member's own level while the budget is being spent) (default: widen)"
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="what the fleet is sized for: forecast, reactive, recent_peak, static, or auto "
            "(the cheapest on the replay that meets the target); all but forecast need "
            "--margin loop or widen (default: auto; forecast with --margin band)"
        ),
    ] = None,
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
    """Replay a trace through the daemon's forecast/size/decide code and compare baselines;
    with --config and --pool, that pool as configured, and what it should change."""
    from autoscaler.backtest.report import backtest_table, report_json, summary_lines
    from autoscaler.backtest.runner import BacktestSettings
    from autoscaler.cli.backtest_config import config_backtest, option_problem

    plot = _check_outputs(decisions_out, plot)  # before the run, not after it
    if config is not None or pool is not None:
        refused = _given(
            boot_delay=boot_delay,
            tick=tick,
            predictor=predictor,
            predictor_targets=predictor_targets,
            margin=margin,
            policy=policy,
            scale_up_max_step=scale_up_max_step,
            scale_up_max_percent=scale_up_max_percent,
        )
        run = replace(
            _pool_run(config, pool, trace, history, warmup, refused, jobs),
            per_node_rps=_capacity_override(per_node_rps, profile),
            latency_target_s=_latency_target(latency_target),
            service_target=service_target,
        )
        if burn_in:
            run = replace(run, burn_in=_duration("--burn-in", burn_in))
        _outputs(config_backtest(run, as_json), decisions_out, plot, as_json)
        return
    if trace is None:
        errors.print("[red]give --trace, or --config and --pool[/]")
        raise typer.Exit(2)
    per_node = _capacity(per_node_rps, profile)
    try:
        given = {  # the rest keep BacktestSettings' own defaults
            "boot_delay": option_duration("--boot-delay", boot_delay) if boot_delay else None,
            "tick": option_duration("--tick", tick) if tick else None,
            "latency_target_s": _seconds(latency_target) if latency_target else None,
            "service_target": service_target,
            "burn_in": _duration("--burn-in", burn_in) if burn_in else None,
            "margin": margin,
            "policy": policy,
        }
        settings = BacktestSettings(
            per_node_rps=per_node,
            warmup=option_duration("--warmup", warmup),
            predictor=predictor,
            predictor_targets=_targets(predictor_targets or ""),
            tune=tune,
            scale_up_max_step=scale_up_max_step,
            scale_up_max_percent=scale_up_max_percent,
            jobs=jobs,
            **{name: value for name, value in given.items() if value is not None},
        )
    except ValueError as exc:
        errors.print(f"[red]invalid option[/]: {escape(option_problem(exc))}", highlight=False)
        raise typer.Exit(2) from None
    report = _trace_report(trace, settings)
    _outputs(report, decisions_out, plot, as_json)
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
        return
    console.print(backtest_table(report))
    for line in summary_lines(report):
        console.print(line, highlight=False)


def _trace_report(trace: Path, settings: BacktestSettings) -> BacktestReport:
    from autoscaler.backtest.runner import run_backtest
    from autoscaler.cli.backtest_config import replay_progress

    with replay_progress(trace.name) as advance:
        try:
            return run_backtest(trace, settings, on_progress=advance)
        except ValueError as exc:
            errors.print(f"[red]cannot backtest[/]: {exc}", highlight=False)
            raise typer.Exit(2) from None
        except OSError as exc:  # unreadable, or not the compression its name says
            errors.print(
                f"[red]cannot read trace[/] {trace}: {exc.strerror or exc}", highlight=False
            )
            raise typer.Exit(2) from None


def _targets(text: str) -> tuple[float, ...]:
    """--predictor-targets: shares such as 0.01,0.05; a ValueError names the option."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"--predictor-targets: expected shares such as 0.01,0.05, got {text!r}"
        ) from None


def _given(**options: object) -> list[str]:
    """The options given on the command line, as they are spelled there."""
    return [f"--{name.replace('_', '-')}" for name, value in options.items() if value is not None]


def _check_outputs(decisions_out: Path | None, plot: Path | None) -> Path | None:
    """Refuse, before the run, an output the run's end could not write: found then, it was a
    traceback and the report lost (a folder, a path under a file, a format with no writer).
    The plot's file as it will be written (a name without a suffix gets .png)."""
    try:
        if decisions_out is not None:
            option_output("--decisions-out", decisions_out)
        if plot is not None:
            from autoscaler.cli.plots import plot_output

            require("--plot", "matplotlib")
            return plot_output(plot)
        return None
    except ValueError as exc:
        errors.print(f"[red]invalid option[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


def _latency_target(text: str | None) -> float | None:
    return None if text is None else _seconds(text)


def _seconds(text: str) -> float:
    return _duration("--latency-target", text).total_seconds()


def _duration(option: str, text: str) -> timedelta:
    """A duration option's value; exit 2 naming the option where it is none."""
    try:
        return option_duration(option, text)
    except ValueError as exc:
        errors.print(f"[red]invalid option[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


def _pool_run(
    config: Path | None,
    pool: str | None,
    trace: Path | None,
    history: str,
    warmup: str,
    refused: list[str],
    jobs: int | None,
) -> PoolRun:
    """What --config/--pool asks for; exit 2 on a missing half or a policy option (the
    pool's own settings are what is replayed)."""
    from autoscaler.cli.backtest_config import PoolRun

    if config is None or pool is None:
        errors.print("[red]--config and --pool go together[/]")
        raise typer.Exit(2)
    if refused:
        errors.print(
            f"[red]{', '.join(refused)}: with --config the pool runs as configured[/]; "
            "change its config instead",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        span = option_duration("--history", history, positive=True)
        return PoolRun(config, pool, trace, span, option_duration("--warmup", warmup), jobs=jobs)
    except ValueError as exc:
        errors.print(f"[red]invalid option[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


def _outputs(
    report: BacktestReport, decisions_out: Path | None, plot: Path | None, as_json: bool
) -> None:
    """Write the files asked for, each said by its path (on stderr under --json, whose
    stdout is the JSON alone)."""
    from autoscaler.backtest.report import write_decisions

    said = errors if as_json else console
    path = decisions_out
    try:
        if decisions_out is not None:
            write_decisions(report, decisions_out)
            said.print(f"decisions: {decisions_out}", highlight=False, markup=False)
        if plot is not None:
            from autoscaler.cli.plots import backtest_plot

            path = plot
            backtest_plot(report, plot)
            said.print(f"plot: {plot}", highlight=False, markup=False)
    except OSError as exc:  # checked before the run; a full disk comes only now
        errors.print(f"[red]cannot write[/] {path}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(2) from None


def _capacity_override(per_node_rps: float | None, profile: Path | None) -> float | None:
    """With --config: the pool's own capacity unless the command line gives one."""
    return None if per_node_rps is None and profile is None else _capacity(per_node_rps, profile)


def _capacity(per_node_rps: float | None, profile: Path | None) -> float:
    if (per_node_rps is None) == (profile is None):
        errors.print("[red]give exactly one of --per-node-rps or --profile[/]")
        raise typer.Exit(2)
    if profile is not None:
        # read as a pool's capacity.profile is (a hand-written one may give per_node_rps
        # alone), not by gpu-bench's whole profile model: one rule for one file
        from autoscaler.config.capacity import read_per_node_rps
        from autoscaler.config.problems import ConfigError

        try:
            return read_per_node_rps(profile)
        except ConfigError as exc:
            errors.print(f"[red]cannot read profile[/]: {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
    assert per_node_rps is not None
    if not (per_node_rps > 0 and math.isfinite(per_node_rps)):  # nan and inf too
        errors.print(
            f"[red]--per-node-rps must be a positive number of req/s, not {per_node_rps}[/]"
        )
        raise typer.Exit(2)
    return per_node_rps
