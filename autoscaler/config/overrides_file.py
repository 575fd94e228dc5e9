"""Editing the overrides file for `autoscaler override set|clear`: one editor at a time,
laid out for people, and checked to read back as written before it replaces the old file."""

from __future__ import annotations

import fcntl
import os
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import yaml

from autoscaler.config.loader import OVERRIDES_MAX_BYTES, load_overrides
from autoscaler.overrides import Override, OverridesFile
from common.atomic import write_atomically

HEADER = """\
# Manual overrides for the autoscaler, one entry per pool: a fixed `nodes` count or
# `min_nodes`/`max_nodes` bounds, until `expires` (with a UTC offset). Expired entries
# are ignored. `autoscaler override set|list|clear` edits this file (and drops comments).
"""


READABLE = 0o644
"""A new overrides file's mode: the daemon's user reads what `sudo autoscaler override set`
writes (mkstemp's 0600, root's own, left it unreadable there, the override never applied)."""


class _Dumper(yaml.SafeDumper):
    pass


def _timestamp(dumper: yaml.SafeDumper, value: datetime) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", value.isoformat())


_Dumper.add_representer(datetime, _timestamp)


def dump_overrides(overrides: OverridesFile) -> str:
    """YAML laid out for people: a header, one block per pool, keys in a fixed order."""
    if not overrides.overrides:
        return HEADER + "overrides: {}\n"
    blocks = [
        textwrap.indent(
            yaml.dump(
                {pool: override.model_dump(exclude_none=True)},
                Dumper=_Dumper,
                sort_keys=False,
                allow_unicode=True,
                default_flow_style=False,
                width=1000,
            ),
            "  ",
        )
        for pool, override in overrides.overrides.items()
    ]
    return HEADER + "overrides:\n" + "\n".join(blocks)


def _write(path: Path, overrides: OverridesFile) -> None:
    """Check the text reads back as the same overrides before it replaces the old file,
    and is no larger than the daemon reads: else every override in it, the new one with
    the rest, would stop applying (at the daemon's next start) and no edit could follow."""
    text = dump_overrides(overrides)
    size = len(text.encode("utf-8"))
    if size > OVERRIDES_MAX_BYTES:
        raise ValueError(
            f"{path} would be {size:,} bytes, more than the {OVERRIDES_MAX_BYTES:,} the "
            "daemon reads; shorten the reasons (file left unchanged)"
        )
    if OverridesFile.model_validate(yaml.safe_load(text)) != overrides:
        raise RuntimeError("overrides would not read back as written; file left unchanged")
    write_atomically(path, text, new_mode=READABLE)


@contextmanager
def _editing(path: Path) -> Iterator[None]:
    """One editor at a time: two `override set` runs must not lose each other's change.
    `path` is the real file (_real): a link to it is one name of the same file. The lock
    is on its folder, which every editor may read (it replaces the file there): a lock
    file made by `sudo autoscaler override set` was root's, and the daemon's user could
    no longer edit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # which lets the lock go


def _real(path: Path) -> Path:
    """The file a symlink names: the new text replaces it, not the link (which then named
    nothing the command wrote), and its lock is the same whichever name an editor used."""
    return path.resolve()


def set_override(path: Path, pool: str, override: Override) -> Override | None:
    """Add or replace the pool's override (a pool has one); the one it replaced, read under
    the same lock, for the caller to say. A broken existing file is reported, not replaced."""
    path = _real(path)
    with _editing(path):
        return _set_locked(path, pool, override, load_overrides(path))


def _set_locked(
    path: Path, pool: str, override: Override, current: OverridesFile
) -> Override | None:
    entries = dict(current.overrides)
    replaced = entries.get(pool)
    entries[pool] = Override.model_validate(override.model_dump())
    _write(path, OverridesFile(overrides=entries))
    return replaced


def clear_override(path: Path, pool: str) -> bool:
    """Remove the pool's override; False when it had none (the file is then untouched, and
    a folder that is not there is not made: a clear that finds nothing leaves nothing)."""
    path = _real(path)
    if not path.parent.is_dir():
        return False
    with _editing(path):
        current = load_overrides(path)
        if pool not in current.overrides:
            return False
        entries = {name: o for name, o in current.overrides.items() if name != pool}
        _write(path, OverridesFile(overrides=entries))
        return True
