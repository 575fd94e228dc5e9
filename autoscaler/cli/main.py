"""`autoscaler` command line: run, forecast, validate, override."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from autoscaler.config.loader import load_config, load_overrides
from autoscaler.config.problems import ConfigError
from autoscaler.overrides import OverridesFile
from autoscaler.state import PoolState
from common.cli import CONTEXT, add_version_option
from common.durations import format_duration
from common.extras import require
from common.log_lines import ErrorText, setup_logging

if TYPE_CHECKING:
    from autoscaler.cli.demo import ConsoleReporter
    from autoscaler.cli.forecast import PoolForecast
    from autoscaler.config.schema import Config
    from autoscaler.daemon import Daemon

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Predictive autoscaler for GPU worker fleets.",
    context_settings=CONTEXT,
)
add_version_option(app, "autoscaler")
console = Console(soft_wrap=True)
errors = Console(file=ErrorText(), soft_wrap=True)  # stderr, err in the journal

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="the daemon's YAML config")]
INSTANCE_LOCK = "autoscaler.lock"
"""In the state folder: held by the daemon running on it (common.instance_lock)."""
LOCK_HELD_EXIT = 75
LOCK_WAIT_S = 60.0
"""How long a daemon started by systemd waits for a state folder another run holds
before it exits LOCK_HELD_EXIT (the unit's TimeoutStartSec is 2 min): with the unit's
retry 15 s later, a hand-run `--once` has minutes, not the ~70 s that five quick
refusals left it before the unit's start limit (5 in 10 min) gave up on the service."""
"""EX_TEMPFAIL: the state folder is held (by a hand-run `--once`, say). Not 2, the config
error's status the systemd unit does not restart on: the service started meanwhile is
retried once the holder is done, not left stopped."""


@app.command()
def run(
    config: ConfigOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="decide and report, never scale")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="one tick of every pool, then exit")] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "",
) -> None:
    """Run the daemon (or one tick with --once)."""
    if log_level and log_level.upper() not in logging.getLevelNamesMapping():
        errors.print(
            "[red]invalid option[/]: --log-level: expected DEBUG, INFO, WARNING or ERROR, "
            f"got {escape(repr(log_level))}",
            highlight=False,
        )
        raise typer.Exit(2)
    try:
        parsed = load_config(config)
    except ConfigError as exc:
        errors.print(f"[red]invalid config[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    simulated = parsed.simulation is not None
    setup_logging(log_level or ("WARNING" if simulated else "INFO"))
    lock = None if dry_run else _instance_lock(parsed, lock_wait_s(once, os.environ))
    try:
        code = _run(parsed, config, dry_run, once)
    finally:
        if lock is not None:
            lock.close()
    raise typer.Exit(code)


def lock_wait_s(once: bool, env: Mapping[str, str]) -> float:
    """How long `run` waits for a held state folder: LOCK_WAIT_S for the daemon as systemd
    starts it (a notify service: $NOTIFY_SOCKET), none for `--once` (cron's, or a hand's)
    or a daemon started by hand, which are told at once."""
    return LOCK_WAIT_S if not once and env.get("NOTIFY_SOCKET") else 0.0


def _instance_lock(parsed: Config, wait_s: float) -> IO[str] | None:
    """One daemon per state folder (common.instance_lock). Where the lock file cannot be
    made (a read-only state folder) the daemon runs on unlocked, as it runs on when its
    state cannot be written: scaling matters more than the lock."""
    from common.instance_lock import InstanceLockHeld, hold_instance_lock

    path = parsed.state_dir / INSTANCE_LOCK
    log = logging.getLogger(__name__)
    try:
        return hold_instance_lock(
            path,
            wait_s,
            lambda who: log.warning("%s (a hand-run --once?): waiting up to %gs", who, wait_s),
        )
    except InstanceLockHeld as held:
        errors.print(
            f"[red]cannot start[/]: another autoscaler runs on this state folder ({held}); "
            "stop it first, or look without acting with --dry-run",
            highlight=False,
        )
        raise typer.Exit(LOCK_HELD_EXIT) from None
    except OSError as exc:
        log.warning(
            "no instance lock at %s (%s): a second daemon on this state would not be refused",
            path,
            exc,
        )
        return None


def _run(parsed: Config, config: Path, dry_run: bool, once: bool) -> int:
    """The daemon's run (or one tick): its exit code."""
    from autoscaler.cli.demo import ConsoleReporter, pool_zone
    from autoscaler.daemon import Daemon
    from autoscaler.notify_queue import finish
    from common.collector import tune_collector

    simulated = parsed.simulation is not None
    tune_collector()
    reporter = ConsoleReporter({}, parsed.interval, console) if (simulated or once) else None
    try:
        daemon = Daemon(config, dry_run=dry_run, on_result=reporter)
    except (ConfigError, ValueError, OSError) as exc:
        errors.print(f"[red]cannot start[/]: {escape(str(exc))}", highlight=False)
        return 2
    if reporter is not None:
        reporter.per_node_rps.update({t.pool.name: t.per_node_rps for t in daemon.runtime.tickers})
        reporter.zones.update({p.name: pool_zone(p) for p in parsed.pools})
    if once:
        daemon.finish_on_stop_signals()  # cron's or systemd's stop killed it mid-tick
        try:
            results = daemon.tick()
            daemon.save_weeks()  # a `--once` from cron learns as the daemon does
        finally:  # the next run (another pid) or the service need not wait out its TTL
            daemon.release_leadership()
            finish(daemon.runtime.notifier)  # the tick's news posted before the exit
        failed = any(r.errors for r in results) or daemon.unwritten_files()
        return 1 if failed else 0
    if simulated:
        sim = parsed.simulation
        assert sim is not None
        zone = pool_zone(parsed.pools[0])
        console.print(
            f"simulating {sim.start.astimezone(zone):%Y-%m-%d %H:%M} → "
            f"{sim.end.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}, "
            f"one tick every {format_duration(parsed.interval)}, {sim.speed:.0f}× real time"
            + (" (dry run)" if dry_run else ""),
            highlight=False,
        )
    code = daemon.run_forever()
    if reporter is not None and simulated:
        reporter.print_summary()
        _compare(reporter, daemon)
    return code


def _compare(reporter: ConsoleReporter, daemon: Daemon) -> None:
    """A replayed day: what a static and a reactive fleet would have cost on it."""
    from autoscaler.daily_report import digest_settings
    from autoscaler.replay_source import TraceReplaySource

    runtime = daemon.runtime
    sim = runtime.config.simulation
    if sim is None or not isinstance(runtime.metrics, TraceReplaySource):
        return
    pools = [t.pool for t in runtime.tickers]
    settings = {p.name: digest_settings(p) for p in pools}
    reporter.print_comparison(pools, settings, runtime.metrics.trace, sim.start, sim.end)


@app.command()
def validate(
    file: Annotated[Path | None, typer.Argument(help="the daemon's YAML config")] = None,
    config_option: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="the same, as every other command takes it"),
    ] = None,
    check_backends: Annotated[
        bool,
        typer.Option(
            "--check-backends",
            help="also reach each pool's fleet and target, and read the leader lock",
        ),
    ] = False,
) -> None:
    """Check the config and the overrides file; every error names file, line and field."""
    from autoscaler.config.validate import validate_files

    config = _one_config(file, config_option)
    parsed, problems = validate_files(config)
    if problems:
        for problem in problems:
            errors.print(str(problem), highlight=False, markup=False)
        errors.print(f"[red]{len(problems)} problem(s)[/]")
        raise typer.Exit(2)
    assert parsed is not None
    names = [p.name for p in parsed.pools]
    pools = f"{len(names)} pool{'s' if len(names) != 1 else ''}: {', '.join(names)}"
    if check_backends:
        from autoscaler.cli.check import backend_checks, run_checks

        try:
            failed = run_checks(backend_checks(parsed), console, errors)
        except (ConfigError, ValueError, OSError) as exc:
            errors.print(f"[red]cannot check backends[/]: {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
        if failed:
            errors.print(f"[red]{len(failed)} backend check(s) failed[/]", highlight=False)
            raise typer.Exit(2)
        pools += "; every backend check passed"
    console.print(f"[green]ok[/]: {escape(str(config))} ({escape(pools)})", highlight=False)


def _one_config(file: Path | None, option: Path | None) -> Path:
    """`validate FILE` (as ExecReload has it) or `validate --config FILE` (as `run`, `status`
    and `forecast` take it, and what a person types after them); one of the two."""
    if file is not None and option is not None and file != option:
        raise typer.BadParameter(f"two configs given: {file} and --config {option}")
    config = file or option
    if config is None:
        raise typer.BadParameter("no config given: autoscaler validate FILE (or --config FILE)")
    return config


@app.command()
def forecast(
    config: ConfigOption,
    pool: Annotated[str | None, typer.Option(help="only this pool")] = None,
    hours: Annotated[float, typer.Option(help="how far ahead to forecast")] = 2.0,
    every: Annotated[str, typer.Option(help="table row spacing")] = "15m",
    plot: Annotated[
        Path | None, typer.Option(help="PNG: history, forecast band, nodes, schedule floors")
    ] = None,
) -> None:
    """Dry-run forecast from live metrics: a table, and what the daemon would do now."""
    from autoscaler.cli.forecast import forecast_pool, forecast_spans, forecast_view
    from autoscaler.cli.plots import forecast_plot, plot_output
    from autoscaler.runtime import build_runtime

    try:
        ahead_span, row_span = forecast_spans(hours, every)
    except ValueError as exc:
        errors.print(f"[red]invalid option[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    try:
        parsed = load_config(config)
        overrides = load_overrides(parsed.overrides_file) if parsed.overrides_file else None
    except ConfigError as exc:
        errors.print(f"[red]invalid config[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    setup_logging("WARNING")
    try:
        if plot is not None:
            require("--plot", "matplotlib")
            plot = plot_output(plot)  # a folder, a path under a file: said before the work
        runtime = build_runtime(parsed, source=config, dry_run=True)
    except (ConfigError, ValueError) as exc:  # a missing extra, an insecure transport
        errors.print(f"[red]cannot forecast[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    simulated = parsed.simulation is not None  # which, as the daemon, starts from nothing
    states = {} if simulated else runtime.state_store.load(set_aside_corrupt=False)
    now = runtime.clock.now()
    failed = False
    active = overrides or OverridesFile()
    for ticker in runtime.tickers:
        spec = ticker.pool
        if pool is not None and spec.name != pool:
            continue
        seen = forecast_pool(
            ticker,
            runtime.metrics,
            parsed.metrics.max_staleness,
            now,
            states.get(spec.name, PoolState()),
            active,
            ahead_span,
            row_span,
        )
        ahead = seen.long_view.forecast if seen.long_view is not None else None
        if ahead is not None:
            console.print(forecast_view(spec, seen.rows, ahead.model, console))
            if ahead.little_history:
                console.print(f"[yellow]{spec.name}: {escape(ahead.little_history)}[/]")
        if plot is not None and ahead is not None and seen.history is not None:
            one = len(parsed.pools) == 1 or pool
            target = plot if one else plot.with_stem(f"{plot.stem}-{spec.name}")
            try:
                forecast_plot(target, spec, seen.history, ahead, ticker.per_node_rps, active)
            except OSError as exc:  # a full disk: found only now
                said = f"{target}: {exc.strerror or exc}"
                errors.print(f"[red]cannot write[/] {escape(said)}", highlight=False)
                raise typer.Exit(2) from None
            console.print(f"plot: {target}", highlight=False)
        if seen.problem is not None:
            stream = console if seen.fleet is None and seen.now is not None else errors
            stream.print(f"{spec.name}: {seen.problem}", highlight=False)
            failed = True
        if seen.decision is not None:  # a hold on missing data, a floor: the daemon's too
            _print_decision_now(seen, now)
    if pool is not None and pool not in {t.pool.name for t in runtime.tickers}:
        errors.print(f"no pool named {pool!r}")
        failed = True
    raise typer.Exit(1 if failed else 0)


def _print_decision_now(seen: PoolForecast, now: datetime) -> None:
    assert seen.decision is not None and seen.fleet is not None and seen.now is not None
    decision, fleet = seen.decision, seen.fleet
    verb = "would scale" if decision.desired != decision.current else "would hold"
    demand = seen.now.demand_now  # 0.0 is no load, None is no reading: never the same words
    console.print(
        f"[bold]now[/] ({now:%Y-%m-%d %H:%M} UTC): {seen.pool.name} {verb} "
        f"{decision.current} → {decision.desired}; "
        f"demand {'unknown' if demand is None else f'{demand:.2f} req/s'}, "
        f"{fleet.ready} ready, {fleet.pending} pending",
        highlight=False,
    )
    for reason in decision.reasons:
        console.print(f"  - {reason}", highlight=False, markup=False)


@app.command()
def status(config: ConfigOption) -> None:
    """Every pool: current, desired, last decision and reasons, schedule, override, errors."""
    from autoscaler.cli.status import pool_statuses, read_fleets, status_view
    from autoscaler.runtime import state_path
    from autoscaler.state import StateStore
    from common.clock import SystemClock

    try:
        parsed = load_config(config)
    except ConfigError as exc:
        errors.print(f"[red]invalid config[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    overrides: OverridesFile | None = OverridesFile()
    broken_overrides = None
    if parsed.overrides_file:  # a broken one leaves the daemon on its last good overrides
        try:
            overrides = load_overrides(parsed.overrides_file)
        except ConfigError as exc:
            overrides, broken_overrides = None, str(exc)
    store = StateStore(state_path(parsed))
    states = store.load(set_aside_corrupt=False)
    setup_logging("ERROR")  # a fleet's retries are not news here; its failure is shown
    clock = SystemClock()
    fleets = read_fleets(parsed, clock)
    rows = pool_statuses(parsed, states, overrides, clock.now(), fleets)
    console.print(status_view(rows, console.width))
    if store.problem:  # every pool reads "never ticked" then: not an "ok" at 3 a.m.
        errors.print(f"[red]{escape(store.problem)}[/]", highlight=False)
    if broken_overrides is not None:
        errors.print(
            "[red]overrides file broken[/] (a running daemon keeps its last good overrides, "
            f"which this view cannot show):\n{escape(broken_overrides)}",
            highlight=False,
        )
    problem = store.problem or broken_overrides
    raise typer.Exit(1 if problem or any(row.failing for row in rows) else 0)


def _register_subcommands() -> None:
    from autoscaler.cli.backtest import backtest_command
    from autoscaler.cli.override import override_app
    from autoscaler.cli.report import report_command

    app.add_typer(override_app, name="override", help="Set, list or clear manual overrides.")
    app.command("backtest")(backtest_command)
    app.command("report")(report_command)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
