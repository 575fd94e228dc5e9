"""`autoscaler report`: each pool's day from the decision log and the metrics, on the
terminal and (with --slack) on Slack with a PNG of the day in the thread."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from autoscaler.config.loader import load_config
from autoscaler.config.metrics_source import ReplayMetrics
from autoscaler.config.problems import ConfigError
from autoscaler.config.schema import Config
from autoscaler.daily_report import attachments, build_report, report_message, report_text
from autoscaler.metrics import MetricsSource
from autoscaler.notify import Attachment
from autoscaler.notify_slack import SlackNotifier
from common.atomic import replace_atomically
from common.cli import option_duration, option_moment
from common.clock import SimulatedClock, SystemClock
from common.durations import format_duration

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def report_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="the daemon's YAML config")],
    since: Annotated[str, typer.Option(help="how far back from --until, e.g. 24h")] = "24h",
    until: Annotated[
        str | None, typer.Option(help="end of the report, ISO time with offset (default: now)")
    ] = None,
    pool: Annotated[list[str] | None, typer.Option(help="only these pools")] = None,
    slack: Annotated[
        bool, typer.Option("--slack", help="post it to the config's Slack channel, with PNGs")
    ] = False,
    plot_dir: Annotated[
        Path | None, typer.Option(help="also write each pool's PNG of the day here")
    ] = None,
) -> None:
    """Per pool: node-hours and cost, service delivered, forecast error, scale actions,
    overrides, and what a static and a reactive fleet would have cost."""
    try:
        parsed = load_config(config)
    except ConfigError as exc:
        errors.print(f"[red]invalid config[/]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    end, start = _window(since, until)
    unknown = sorted(set(pool or ()) - {p.name for p in parsed.pools})
    if unknown:
        _fail(f"unknown pool(s): {', '.join(unknown)}")
    if slack and parsed.slack is None:
        _fail("--slack: the config has no slack block")
    try:
        metrics = _metrics(parsed, end)
        report = build_report(parsed, metrics, start, end, list(pool or ()))
        report = replace(report, title=f"{format_duration(report.end - report.start)} report")
    except (ValueError, OSError, ConfigError) as exc:  # ConfigError: a capacity profile
        _fail(f"cannot build the report: {exc}")
    currency = parsed.digest.currency if parsed.digest else "USD"
    console.print(report_text(report, currency), highlight=False, markup=False)
    plots = plot_dir is not None or (slack and (parsed.digest is None or parsed.digest.plot))
    try:
        files = attachments(report) if plots else []
    except ValueError as exc:  # the plots extra is not installed
        _fail(str(exc))
    if plot_dir is not None:
        _write_pngs(plot_dir, files)
    if slack:
        assert parsed.slack is not None
        try:
            notifier = SlackNotifier.from_config(parsed.slack, os.environ)
        except ValueError as exc:
            _fail(str(exc))
        if not notifier.send_with_files(report_message(report, currency), files):
            _fail("Slack did not take the digest (see the log line above)", code=1)
        console.print(f"posted to Slack {parsed.slack.channel} with {len(files)} PNG(s)")


def _write_pngs(folder: Path, files: list[Attachment]) -> None:
    """Each PNG whole or not at all (common.atomic), a new one 0644 (a report to share),
    said by its path. A folder that cannot take them (a file in its place, a full disk)
    is said, naming the file: it was a traceback, and a PNG cut short where the disk
    filled."""
    if folder.exists() and not folder.is_dir():
        _fail(f"--plot-dir: {folder} is not a folder")
    for attachment in files:
        path, content = folder / attachment.filename, attachment.content
        try:
            replace_atomically(path, lambda h, c=content: h.write(c), new_mode=0o644)
        except OSError as exc:
            _fail(f"--plot-dir: cannot write {path}: {exc.strerror or exc}")
        console.print(f"plot: {path}", highlight=False, markup=False)


def _window(since: str, until: str | None) -> tuple[datetime, datetime]:
    try:  # as every command line reads a duration: a bare number is seconds
        span = option_duration("--since", since, positive=True)
    except ValueError as exc:
        _fail(str(exc))
    if until is None:
        end = SystemClock().now().replace(second=0, microsecond=0)
    else:
        try:
            end = option_moment("--until", until)
        except ValueError as exc:
            _fail(str(exc))
    end = end.astimezone(UTC)
    return end, end - span


def _metrics(config: Config, end: datetime) -> MetricsSource:
    from autoscaler.runtime import make_metrics

    # A replayed trace shows nothing after its clock's now: put that clock at the end.
    clock = SimulatedClock(end) if isinstance(config.metrics, ReplayMetrics) else SystemClock()
    return make_metrics(config, clock, os.environ)


def _fail(text: str, code: int = 2) -> None:
    errors.print(f"[red]error[/]: {escape(text)}", highlight=False)
    raise typer.Exit(code)
