"""Manual overrides: a person pins a pool's size (or its bounds) until a stated time.

The overrides live in their own YAML file so that people, the CLI and the daemon can
each touch them without rewriting the main config. Every override expires: a
forgotten "12 nodes for Black Friday" must not run for ever.
"""

from __future__ import annotations

import fcntl
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.atomic import write_atomically

HEADER = """\
# Manual overrides for the autoscaler, one entry per pool: a fixed `nodes` count or
# `min_nodes`/`max_nodes` bounds, until `expires` (with a UTC offset). Expired entries
# are ignored. `autoscaler override set|list|clear` edits this file (and drops comments).
"""


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: int | None = Field(default=None, ge=0, description="fixed node count")
    min_nodes: int | None = Field(default=None, ge=0)
    max_nodes: int | None = Field(default=None, ge=0)
    expires: datetime
    reason: str
    set_by: str | None = None

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "expires needs a UTC offset, such as 2026-11-27T18:00:00+05:30 or ...Z; "
                "a time without one is ambiguous"
            )
        return value

    @field_validator("reason")
    @classmethod
    def _said_why(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason must say why the override exists")
        return " ".join(value.split())  # one line: it goes into tables and Slack

    @model_validator(mode="after")
    def _one_kind(self) -> Override:
        has_bounds = self.min_nodes is not None or self.max_nodes is not None
        if self.nodes is not None and has_bounds:
            raise ValueError("nodes cannot be combined with min_nodes/max_nodes; give one kind")
        if self.nodes is None and not has_bounds:
            raise ValueError("nodes (a fixed count) or min_nodes/max_nodes is required")
        if (
            self.min_nodes is not None
            and self.max_nodes is not None
            and self.min_nodes > self.max_nodes
        ):
            raise ValueError("min_nodes must not exceed max_nodes")
        return self

    @property
    def kind(self) -> str:
        return "nodes" if self.nodes is not None else "bounds"

    def describe(self) -> str:
        """Short text for tables and Slack: "12 nodes" or "min 3, max 10"."""
        if self.nodes is not None:
            return f"{self.nodes} nodes"
        parts = []
        if self.min_nodes is not None:
            parts.append(f"min {self.min_nodes}")
        if self.max_nodes is not None:
            parts.append(f"max {self.max_nodes}")
        return ", ".join(parts)

    def is_active(self, now: datetime) -> bool:
        return _aware(now) < self.expires


class OverridesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    overrides: dict[str, Override] = Field(default_factory=dict)

    @field_validator("overrides", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return {} if value is None else value


Overrides = OverridesFile
OverridesLike = OverridesFile | Mapping[str, Override]


def _entries(overrides: OverridesLike) -> Mapping[str, Override]:
    return overrides.overrides if isinstance(overrides, OverridesFile) else overrides


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be time-zone aware")
    return now


def active_override(overrides: OverridesLike, pool: str, now: datetime) -> Override | None:
    """The pool's override if it has one that has not expired at `now`."""
    override = _entries(overrides).get(pool)
    return override if override is not None and override.is_active(now) else None


def expired_overrides(overrides: OverridesLike, now: datetime) -> dict[str, Override]:
    """Entries past their expiry: ignored by the policy, reported (once) by the daemon."""
    return {pool: o for pool, o in _entries(overrides).items() if not o.is_active(now)}


# ---- the file -------------------------------------------------------------------------


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
    """Check the text reads back as the same overrides before it replaces the old file."""
    text = dump_overrides(overrides)
    if OverridesFile.model_validate(yaml.safe_load(text)) != overrides:
        raise RuntimeError("overrides would not read back as written; file left unchanged")
    write_atomically(path, text)


@contextmanager
def _editing(path: Path) -> Iterator[None]:
    """One editor at a time: two `override set` runs must not lose each other's change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def set_override(path: Path, pool: str, override: Override) -> None:
    """Add or replace the pool's override. A broken existing file is reported, not replaced."""
    from autoscaler.config.loader import load_overrides

    with _editing(path):
        _set_locked(path, pool, override, load_overrides(path))


def _set_locked(path: Path, pool: str, override: Override, current: OverridesFile) -> None:
    entries = dict(current.overrides)
    entries[pool] = Override.model_validate(override.model_dump())
    _write(path, OverridesFile(overrides=entries))


def clear_override(path: Path, pool: str) -> bool:
    """Remove the pool's override; False when it had none (the file is then untouched)."""
    from autoscaler.config.loader import load_overrides

    with _editing(path):
        current = load_overrides(path)
        if pool not in current.overrides:
            return False
        entries = {name: o for name, o in current.overrides.items() if name != pool}
        _write(path, OverridesFile(overrides=entries))
        return True
