"""systemd readiness and watchdog (sd_notify): a hung daemon stops pinging and is restarted.

The unit is `Type=notify` with `WatchdogSec=`: systemd starts counting the daemon as up
at READY=1, and kills and restarts it when WATCHDOG=1 has not come for WatchdogSec.
The pings come from the main loop, and only while ticks go on: a tick in which no
pool has begun for longer than the watchdog period (or than a pool's deadline, the
interval, where that is longer: a pool may take its deadline before it is left behind),
or no tick started for an interval plus that period, stops them. A tick of many pools,
each within its deadline, may run longer than the period (a slow Prometheus costs each
pool its timeout): it is not hung, and killing it lost the tick and restarted the daemon
into the same tick. Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from sdnotify import SystemdNotifier

log = logging.getLogger(__name__)

DEADLINE_SLACK = 1.1
"""A pool may take its deadline (the interval) before it is left behind, and the next then
begins (common.deadline's hand-over to a new thread, the stand-in's writing; the fit
workers' observing ends at half the interval): within a tenth more, a tick makes progress."""


def ticks_alive(
    now: float, progressed: float | None, last_began: float, interval_s: float, limit_s: float
) -> bool:
    """Whether the tick loop is making progress (monotonic seconds).

    `progressed` is when the tick in flight last made progress: it started, or began a
    pool (None: no tick is in flight); `last_began` when the last tick started (or the
    daemon did).
    """
    if progressed is not None:  # a pool may take its deadline (the interval) and more
        return now - progressed <= max(limit_s, interval_s * DEADLINE_SLACK)
    return now - last_began <= interval_s + limit_s


class ServiceNotifier:
    """READY=1 once the loop runs, WATCHDOG=1 at a third of the watchdog period, STOPPING=1."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.watchdog_s = _watchdog_seconds(env) if self.enabled else None
        self._socket = SystemdNotifier() if self.enabled else None
        if self._socket is not None and self._socket.socket is not None:
            self._socket.socket.settimeout(1.0)  # a stalled manager must not stall the loop
        self._last_ping: float | None = None

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def beat(self, now: float, alive: bool) -> bool:
        """Ping the watchdog if it is due and the loop is alive; True when a ping went."""
        if self.watchdog_s is None or not alive:
            return False
        if self._last_ping is not None and now - self._last_ping < self.watchdog_s / 3:
            return False
        self._last_ping = now
        self._send("WATCHDOG=1")
        return True

    def _send(self, message: str) -> None:
        if self._socket is not None:
            self._socket.notify(message)


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """$WATCHDOG_USEC, when it is meant for this process ($WATCHDOG_PID, if set, is ours)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
        pid = int(env.get("WATCHDOG_PID", str(os.getpid())))
    except ValueError:
        log.warning("ignoring a malformed WATCHDOG_USEC/WATCHDOG_PID")
        return None
    return usec / 1e6 if usec > 0 and pid == os.getpid() else None
