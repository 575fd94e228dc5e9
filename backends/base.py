"""The backend interface: read the fleet's size, set a desired size.

Nothing outside backends/ knows which kind of fleet it talks to (see DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class FleetState:
    """What the fleet looks like now: the count asked for, and how much of it serves."""

    desired: int
    ready: int
    pending: int


class BackendError(Exception):
    """The fleet could not be read or changed; the message is safe to log (no secrets)."""


class Backend(Protocol):
    """A fleet. A backend may also set `last_note: str | None` after scale() to say what the
    fleet made of the request (e.g. clamped to a cloud group's MaxSize); the tick reports it."""

    name: str

    def read(self) -> FleetState: ...

    def check(self) -> None:
        """Raise BackendError unless the fleet is reachable and its target exists."""
        ...

    def scale(self, desired: int, reason: str) -> None:
        """Set the desired count. Must not write when it is already `desired`."""
        ...
