"""`autoscaler override set|list|clear`: edit the overrides file with the daemon's validation.

Exit codes: 0 done, 2 bad input (config, pool, options or overrides file). The file
is only ever replaced whole and atomically, so the daemon never reads half an edit.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from autoscaler.cli.views import field_blocks
from autoscaler.config.loader import load_config, load_overrides
from autoscaler.config.overrides_file import clear_override, set_override
from autoscaler.config.problems import ConfigError
from autoscaler.config.schema import Config
from autoscaler.overrides import Override
from common.cli import option_duration, option_moment
from common.durations import format_span
from common.settings import validation_problem

OVERRIDES_TABLE_WIDTH = 120
"""Below this many columns the table cut reasons and states short ("reas…"): blocks."""

override_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Set, list or clear manual overrides (fixed node counts or bounds, with expiry).",
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="the daemon's YAML config")]
PoolArgument = Annotated[str, typer.Argument(help="pool name, as in the config")]


def _now() -> datetime:
    """Replaced in tests; everything else takes time as an argument."""
    return datetime.now(UTC)


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error[/]: {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _load(config_path: Path) -> tuple[Config, Path]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(f"invalid config\n{exc}")
    if config.overrides_file is None:
        _fail(
            f"{config_path} sets no overrides_file; add one, e.g. "
            "`overrides_file: overrides.yaml`, so the daemon and this command share it"
        )
    return config, config.overrides_file


def _expiry(
    now: datetime, begins: datetime | None, duration: str | None, until: str | None
) -> datetime:
    """When the override ends: --for after its start (--from, else now), or --until; an
    end already past would write an override that never applies, so it is refused."""
    if (duration is None) == (until is None):
        _fail("give exactly one of --for (e.g. 2h) or --until (e.g. 2026-11-27T18:00+05:30)")
    if duration is not None:
        try:  # as every command line reads a duration: a bare number is seconds
            length = option_duration("--for", duration)
        except ValueError as exc:
            _fail(str(exc))
        if length <= timedelta(0):
            _fail("--for must be longer than zero")
        start = begins or now
        try:
            expires = start + length
        except OverflowError:
            _fail(f"--for: {duration} after {start.isoformat()} is past the year 9999")
        if expires <= now:
            _fail(f"--for: {duration} after --from {start.isoformat()} is already past")
        return expires
    assert until is not None
    expires = _moment("--until", until)
    if expires <= now:
        _fail(f"--until: {until} is already past")
    return expires


def _start(starts: str | None) -> datetime | None:
    return None if starts is None else _moment("--from", starts)


def _moment(option: str, text: str) -> datetime:
    """A time for the overrides file, whose YAML timestamps hold an offset in whole
    minutes: +05:30:15, which Python reads, was written and then failed to read back."""
    try:
        moment = option_moment(option, text)
    except ValueError as exc:
        _fail(str(exc))
    offset = moment.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        _fail(f"{option}: {text!r} has a UTC offset with seconds; give whole minutes (+05:30)")
    return moment


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


@override_app.command("set")
def set_command(
    pool: PoolArgument,
    config: ConfigOption,
    reason: Annotated[str, typer.Option("--reason", help="why; shown in Slack and decisions")],
    nodes: Annotated[int | None, typer.Option("--nodes", help="fixed node count")] = None,
    min_nodes: Annotated[int | None, typer.Option("--min", help="lower bound")] = None,
    max_nodes: Annotated[int | None, typer.Option("--max", help="upper bound")] = None,
    duration: Annotated[str | None, typer.Option("--for", help="how long, e.g. 2h")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time with offset")] = None,
    starts: Annotated[
        str | None,
        typer.Option("--from", help="a dated window: ISO time with offset; --for counts from it"),
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="who (default: your user)")] = None,
) -> None:
    """Pin a pool to a node count (--nodes) or bounds (--min/--max) until a time."""
    parsed, path = _load(config)
    pool_names = [p.name for p in parsed.pools]
    if pool not in pool_names:
        _fail(f"unknown pool {pool!r}; {config} has: {', '.join(pool_names)}")
    if nodes is not None and (min_nodes is not None or max_nodes is not None):
        _fail("give --nodes, or --min/--max, not both")
    if nodes is None and min_nodes is None and max_nodes is None:
        _fail("give --nodes N, or --min N and/or --max N")
    if min_nodes is not None and max_nodes is not None and min_nodes > max_nodes:
        _fail(f"--min {min_nodes} is above --max {max_nodes}: no count lies between them")
    now = _now().replace(microsecond=0)
    begins = _start(starts)
    expires = _expiry(now, begins, duration, until)
    if begins is not None and expires <= begins:  # only --until can end it before it starts
        _fail(f"--until {until} is not after --from {starts}: the override would never apply")
    try:
        override = Override(
            starts=begins,
            nodes=nodes,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            expires=expires,
            reason=reason,
            set_by=by or _user(),
        )
    except ValidationError as exc:
        _fail("; ".join(validation_problem(e, FLAGS) for e in exc.errors()))
    try:
        replaced = set_override(path, pool, override)
    except ConfigError as exc:
        _fail(f"overrides file is broken; fix it (or clear it) first\n{exc}")
    except OSError as exc:  # a full disk, a folder this user may not write in
        _fail(f"cannot write {exc.filename or path}: {exc.strerror or exc}")
    except ValueError as exc:  # more than the daemon reads
        _fail(str(exc))
    console = Console()
    window = f" from {begins.isoformat()}" if begins is not None else ""
    console.print(
        f"override set: {pool} → {override.describe()}{window} until {expires.isoformat()} "
        f"({format_span(expires - now)} from now), reason: {override.reason}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if replaced is not None:  # a pool has one override: the new one takes its place
        console.print(
            f"it replaces: {replaced.describe()} until {replaced.expires.isoformat()}, "
            f"reason: {replaced.reason}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    limit = parsed.pool(pool).max_nodes
    wanted = override.nodes if override.nodes is not None else override.min_nodes
    if wanted is not None and wanted > limit:
        console.print(
            f"[yellow]note[/]: pool max_nodes is {limit}; the daemon caps the count there",
            highlight=False,
        )


FLAGS = {
    "nodes": "--nodes",
    "min_nodes": "--min",
    "max_nodes": "--max",
    "reason": "--reason",
    "set_by": "--by",
}
"""An override's fields as `override set` spells them."""


@override_app.command("list")
def list_command(config: ConfigOption) -> None:
    """Show every override, active or expired."""
    parsed, path = _load(config)
    try:
        overrides = load_overrides(path)
    except ConfigError as exc:
        _fail(f"overrides file is broken\n{exc}")
    console = Console()
    if not overrides.overrides:
        console.print(f"no overrides in {path}", highlight=False)
        return
    now = _now()
    pools = {p.name for p in parsed.pools}
    rows = []
    for name, override in overrides.overrides.items():
        if override.is_active(now):
            status = f"active ({format_span(override.expires - now)} left)"
        elif not override.is_expired(now) and override.starts is not None:
            wait = format_span(override.starts - now)
            status = f"starts {override.starts:%Y-%m-%d %H:%M %z} (in {wait})"
        else:
            status = "expired"
        if name not in pools:
            status += ", unknown pool"
        kind = "fixed" if override.nodes is not None else "bounds"
        cells = (
            name,
            kind,
            override.describe(),
            f"{override.expires:%Y-%m-%d %H:%M %z}",
            override.reason,
            override.set_by or "",
            status,
        )
        rows.append(cells)
    _print_overrides(console, f"overrides ({path})", rows)


OVERRIDE_COLUMNS = ("pool", "kind", "value", "expires", "reason", "by", "status")


def _print_overrides(console: Console, title: str, rows: list[tuple[str, ...]]) -> None:
    """A table where the terminal holds it; else a block per override, a field a line."""
    if console.width < OVERRIDES_TABLE_WIDTH:
        fields = [list(zip(OVERRIDE_COLUMNS[1:], cells[1:], strict=True)) for cells in rows]
        headings = [Text(cells[0], style="bold") for cells in rows]
        console.print(field_blocks(title, list(zip(headings, fields, strict=True))))
        return
    table = Table(title=title)
    for column in OVERRIDE_COLUMNS:
        table.add_column(column, no_wrap=column in ("pool", "value", "expires"))
    for cells in rows:
        table.add_row(*(Text(cell) for cell in cells))  # people's text, not markup
    console.print(table)


@override_app.command("clear")
def clear_command(pool: PoolArgument, config: ConfigOption) -> None:
    """Remove a pool's override (also one for a pool no longer in the config)."""
    parsed, path = _load(config)
    try:
        removed = clear_override(path, pool)
    except ConfigError as exc:
        _fail(f"overrides file is broken\n{exc}")
    except OSError as exc:
        _fail(f"cannot write {exc.filename or path}: {exc.strerror or exc}")
    if removed:
        Console().print(f"override cleared: {pool}", highlight=False, markup=False)
        return
    pool_names = [p.name for p in parsed.pools]
    if pool not in pool_names:
        _fail(f"unknown pool {pool!r}; {config} has: {', '.join(pool_names)}")
    Console().print(f"{pool} has no override; nothing to clear", highlight=False, markup=False)
