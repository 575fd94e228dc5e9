"""Manual overrides: a person pins a pool's size (or its bounds) until a stated time.

The overrides live in their own YAML file so that people, the CLI and the daemon can
each touch them without rewriting the main config. Every override expires: a
forgotten "12 nodes for Black Friday" must not run for ever; one may also wait for its
`starts` (a dated window planned ahead: a campaign's floor from 08:00 to 22:00).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from common.settings import MAX_NODES, Strict


class Override(Strict):
    nodes: int | None = Field(default=None, ge=0, le=MAX_NODES, description="fixed node count")
    min_nodes: int | None = Field(default=None, ge=0, le=MAX_NODES)
    max_nodes: int | None = Field(default=None, ge=0, le=MAX_NODES)
    starts: datetime | None = Field(
        default=None, description="a dated window: in force from here (default: at once)"
    )
    expires: datetime
    reason: str
    set_by: str | None = None

    @field_validator("expires", "starts")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(
                f"{info.field_name} needs a UTC offset, such as 2026-11-27T18:00:00+05:30 or "
                "...Z; a time without one is ambiguous"
            )
        return value

    @field_validator("reason")
    @classmethod
    def _said_why(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason must say why the override exists")
        return _plain(" ".join(value.split()))  # one line: it goes into tables and Slack

    @field_validator("set_by")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        return None if value is None else _plain(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Override:
        has_bounds = self.min_nodes is not None or self.max_nodes is not None
        if self.nodes is not None and has_bounds:
            raise ValueError("nodes cannot be combined with min_nodes/max_nodes; give one kind")
        if self.nodes is None and not has_bounds:
            raise ValueError("nodes (a fixed count) or min_nodes/max_nodes is required")
        if self.starts is not None and self.starts >= self.expires:
            raise ValueError("starts must be before expires")
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
        now = _aware(now)
        return (self.starts is None or self.starts <= now) and now < self.expires

    def is_expired(self, now: datetime) -> bool:
        return _aware(now) >= self.expires


class OverridesFile(Strict):
    overrides: dict[str, Override] = Field(default_factory=dict)

    @field_validator("overrides", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return {} if value is None else value


def _plain(text: str) -> str:
    """People's text without control characters: `override list` and `status` print it to
    a terminal, where ESC [2J clears the screen of the next person to look."""
    for character in text:
        if unicodedata.category(character) == "Cc":
            raise ValueError(
                f"holds a control character (U+{ord(character):04X}); write plain text"
            )
    return text


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
    return {pool: o for pool, o in _entries(overrides).items() if o.is_expired(now)}
