"""What every command line of the project shares: `-h` beside `--help`, and `--version`."""

from __future__ import annotations

import math
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from common.durations import parse_duration
from common.version import package_version

CONTEXT = {"help_option_names": ["-h", "--help"]}
"""Typer(context_settings=CONTEXT): subcommands inherit it from the root."""
MOMENTS = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
"""The times a command takes: a report from year 1 overflowed as it reached back a day
(a traceback), and pandas, which holds the series, ends in 2262."""
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?", re.IGNORECASE)


def add_version_option(app: typer.Typer, program: str) -> None:
    """`program --version` prints "program VERSION" and exits 0."""

    def show(value: bool) -> None:
        if value:
            typer.echo(f"{program} {package_version()}")
            raise typer.Exit()

    @app.callback()
    def _root(
        _version: bool = typer.Option(
            False, "--version", callback=show, is_eager=True, help="print the version and exit"
        ),
    ) -> None:
        """The commands below; `COMMAND -h` for each one's options."""


def option_duration(option: str, text: str, *, positive: bool = False) -> timedelta:
    """A duration given on the command line, as in the config (`3s`, `10m`, `1h30m`); a
    bare number is seconds. A ValueError names the option."""
    try:
        value = parse_duration(float(text) if _NUMBER.fullmatch(text.strip()) else text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    if positive and value <= timedelta(0):
        raise ValueError(f"{option}: must be longer than 0, got {text!r}")
    return value


def option_positive(option: str, value: float, unit: str) -> float:
    """A positive, finite number given on the command line; a ValueError names the option."""
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{option}: expected a positive number of {unit}, got {value!r}")
    return value


def option_moment(option: str, text: str) -> datetime:
    """An ISO time with its UTC offset given on the command line (a time without one would
    be read in whatever zone the ops box happens to be in); a ValueError names the option."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option}: expected an ISO time such as 2026-11-27T08:00+05:30, got {text!r}"
        ) from None
    if moment.tzinfo is None:  # the example is a whole time: a date-only 2026-11-27+00:00
        example = moment.isoformat(timespec="seconds" if moment.second else "minutes")
        raise ValueError(f"{option}: {text!r} has no UTC offset; add one, e.g. {example}+00:00")
    if not MOMENTS[0] <= moment.astimezone(UTC) < MOMENTS[1]:  # pandas holds 1677..2262
        raise ValueError(f"{option}: {text!r} is outside the years 1970 to 2199")
    return moment


def option_output(option: str, path: Path) -> Path:
    """A file the command writes once its work is done, checked before that work begins (a
    folder, or one under a file or a read-only folder, found only afterwards lost the work
    to a traceback). Nothing is left behind; a ValueError names the option."""
    if path.is_dir():
        raise ValueError(f"{option}: {path} cannot be written: it is a folder, not a file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders missing are made at the write
    if not folder.is_dir():
        raise ValueError(f"{option}: {path} cannot be written: {folder} is not a folder")
    try:  # a write tried, not os.access, which says yes to root on a read-only disk
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise ValueError(f"{option}: {path} cannot be written: {folder}: {why}") from None
    return path
