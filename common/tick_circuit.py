"""A circuit per server for one tick: once a call to a server went unanswered (timed out,
refused, unreachable), the other pools on it do not wait for it again this tick.

The daemon ticks its pools one after another, each within a deadline of its own; many
share one Nomad, one Kubernetes API server, one AWS endpoint, one Prometheus. A server
that blackholes cost each of them its timeouts and retries in turn, so a tick of 14 such
pools lasted over twice the interval and the pools after them were decided minutes late.
Now the first pool pays; the others hold this tick (missing data holds, a backend failure
holds), saying why, and the next tick asks the server again.

The daemon opens a `TickCircuit` for each tick and runs each pool's tick `within` it (on
the thread that makes the pool's calls); calls made outside (the CLI, the leader lock, a
test) see none and are never skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit


class TickCircuit:
    """The servers that did not answer a call this tick, and whose call it was."""

    def __init__(self) -> None:
        self._unanswered: dict[str, str] = {}
        self._lock = threading.Lock()

    def trip(self, server: str, pool: str) -> None:
        with self._lock:
            self._unanswered.setdefault(server, pool)

    def skipped(self, server: str) -> str | None:
        """Why a call to `server` is not made this tick; None: make it."""
        with self._lock:
            pool = self._unanswered.get(server)
        if pool is None:
            return None
        return f"skipped: {server} did not answer pool {pool}'s call this tick"


_circuit: ContextVar[tuple[TickCircuit, str] | None] = ContextVar("tick_circuit", default=None)


@contextmanager
def within(circuit: TickCircuit, pool: str) -> Iterator[None]:
    """Calls made inside (on this thread) are `pool`'s, under `circuit`."""
    token = _circuit.set((circuit, pool))
    try:
        yield
    finally:
        _circuit.reset(token)


def skipped(server: str | None) -> str | None:
    """Why this thread's call to `server` is not made (its circuit is open); None: make it."""
    held = _circuit.get()
    return None if held is None or server is None else held[0].skipped(server)


def unanswered(server: str | None) -> None:
    """This thread's call to `server` went unanswered: the other pools skip it this tick."""
    held = _circuit.get()
    if held is not None and server is not None:
        held[0].trip(server, held[1])


def server_of(url: str) -> str:
    """A server as the circuit knows it, safe to print: scheme, host and port (no user,
    password, path or query)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or (443 if scheme == "https" else 80)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"
