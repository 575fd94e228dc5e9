"""The backend interface: read the fleet's size, set a desired size.

Nothing outside backends/ knows which kind of fleet it talks to (docs/architecture.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class FleetState:
    """What the fleet looks like now: the count asked for, and how much of it serves."""

    desired: int
    ready: int
    pending: int
    stuck: str | None = None
    """Why pending nodes will not come up, where the fleet can tell (a rollout past its
    deadline, pods that cannot be scheduled or keep crashing, allocations Nomad cannot
    place); None: on their way. Told, not acted on."""


def is_count(value: object) -> bool:
    """A whole, non-negative number of nodes, as an API answer or a caller must give one:
    never a bool (True is an int in Python), a float or a string a client would coerce."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def require_count(desired: object) -> None:
    """What every backend's scale() checks first: a count it may write."""
    if not is_count(desired):
        raise ValueError(f"desired count must be a non-negative integer, got {desired!r}")


class BackendError(Exception):
    """The fleet could not be read or changed; the message is safe to log (no secrets)."""


class CountChangedError(BackendError):
    """A failure on whose way the backend itself changed the fleet's count (nodes of a
    failed scale-in given back): the next reading differs by its doing, not by hand."""


class ChangedByOthersError(BackendError):
    """A write not made because someone else changed the count since it was read (a
    person's `kubectl scale`): the next reading differs by their doing, a change by hand."""


class Backend(Protocol):
    """A fleet: its size read, and set."""

    name: str

    def read(self) -> FleetState: ...

    def check(self) -> None:
        """Raise BackendError unless the fleet is reachable and its target exists."""
        ...

    def scale(self, desired: int, reason: str) -> str | None:
        """Set the desired count; must not write when it is already `desired`. Returns what
        the fleet made of the request when that is not simply `desired` (e.g. clamped to a
        cloud group's MaxSize), for the tick to report; else None."""
        ...


class SeesOtherAutoscalers(Protocol):
    """A backend that can tell whether something else also scales its fleet (optional)."""

    def other_autoscalers(self) -> list[str]:
        """Other autoscalers that act on this fleet now, one short phrase each naming it and
        how to turn it off; [] when none. Two autoscalers on one fleet fight: each takes the
        other's change for one by hand. Raises BackendError when it cannot ask (denied,
        timed out); read-only, one attempt (it runs in a tick, within its deadline)."""
        ...


def other_autoscalers(backend: Backend) -> list[str]:
    """What `backend` says acts on its fleet beside us; [] for one that cannot tell (the
    simulated fleet: nothing else scales it)."""
    ask = getattr(backend, "other_autoscalers", None)
    return list(ask()) if callable(ask) else []


_called_off: ContextVar[threading.Event | None] = ContextVar("backend_calls_off", default=None)


@contextmanager
def calls_off_once(event: threading.Event) -> Iterator[None]:
    """Backend calls made inside (on this thread) are not begun once `event` is set: a
    tick the daemon stopped waiting for must not write late. A scale reads, then writes,
    each with retries; a check before the write alone let a slow read's write through."""
    token = _called_off.set(event)
    try:
        yield
    finally:
        _called_off.reset(token)


def calls_are_off() -> bool:
    """Whether this thread's calls to the fleet were called off (backends.retry asks
    before each attempt)."""
    called_off = _called_off.get()
    return called_off is not None and called_off.is_set()
