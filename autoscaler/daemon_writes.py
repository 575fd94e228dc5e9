"""The daemon's own files failing to be written (a full disk, a read-only or removed
folder): the fleet is still scaled, and each file's trouble is alerted once when it
starts and once when it ends, naming the file, never once per tick.

Its own room because saving the state and watching the decision log are apart from
scheduling ticks. `Daemon` takes these methods in as a mixin and owns the state they read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from autoscaler.runtime import Runtime
from autoscaler.state import PoolState
from backends.leases import LeaderLock

log = logging.getLogger("autoscaler.daemon")  # the daemon's logger, as before the split

STATE_UNSAVED = (
    "the fleet is still scaled; what the daemon remembers (cooldowns, the stabilization "
    "window) is kept in memory and saved by the first tick that can (a restart meanwhile "
    "starts from the last state saved)"
)
LOG_UNWRITTEN = (
    "the fleet is still scaled and every decision is still in the daemon's own log; "
    "lines for this file are lost until writes to it succeed"
)


class WriteEpisodes:
    """State saving and decision-log watching for `autoscaler.daemon.Daemon`."""

    runtime: Runtime
    states: dict[str, PoolState]
    _alert: Callable[[str], None]
    _write_problems: dict[str, str]
    """Each file whose writes fail now (what it is and where), with the problem told."""
    _write_lock: threading.Lock
    leader: LeaderLock | None
    _leading: bool | None

    def unwritten_files(self) -> list[str]:
        """The daemon's own files whose last write failed ("state file ...")."""
        with self._write_lock:
            return sorted(self._write_problems)

    def _save_pool(self, name: str, state: PoolState) -> None:
        """Just before the pool's fleet is written: its own state, not every pool's (the
        write goes ahead without it). Called on the pools' threads. Its trouble is the
        state file's: one folder, one episode."""
        store = self.runtime.state_store
        try:
            store.save_pool(name, state)
        except OSError as exc:
            where = f"its journal {store.journal.name}: {_reason(exc)}"
            self._write_failed(f"state file {store.path}", where, STATE_UNSAVED)

    def _save_state(self) -> None:
        """Every pool's state at the end of a tick; a failure leaves the file before it
        whole (common.atomic)."""
        store = self.runtime.state_store
        what = f"state file {store.path}"
        try:
            store.save(self.states)
        except OSError as exc:
            self._write_failed(what, _reason(exc), STATE_UNSAVED)
            return
        except RuntimeError as exc:  # a tick left behind changed its pool's state meanwhile
            log.warning("state not saved this tick (%s); the next tick saves it", exc)
            return
        self._write_works(what)

    def _find_weeks(self) -> None:
        """As the daemon starts: each loop-calibrated pool reads the week of ticks it kept
        before the restart, for its first tick to take up."""
        zone = self.runtime.clock.now().tzinfo
        for ticker in self.runtime.tickers:
            ticker.find_week(zone)

    def save_weeks(self) -> None:
        """At a stop (and after `run --once`'s tick): each loop-calibrated pool's week of
        ticks, for the next start to take up (written at each recalibration too;
        autoscaler.kept_ticks_file). Not by a standby, whose weeks are not the ones the
        fleet ran on, nor for a pool whose tick was left behind (it may still change the
        week)."""
        if self.leader is not None and not self._leading:
            return
        for ticker in self.runtime.tickers:
            if not ticker.in_flight:
                ticker.save_week()

    def _watch_decision_log(self) -> None:
        """After the pools' ticks: the decision log's trouble told as it starts and ends."""
        decision_log = self.runtime.decision_log
        if decision_log is None or decision_log.path is None:
            return
        what = f"decision log {decision_log.path}"
        if decision_log.problem is None:
            self._write_works(what)
        else:
            self._write_failed(what, decision_log.problem, LOG_UNWRITTEN)

    def _write_failed(self, what: str, problem: str, consequence: str) -> None:
        with self._write_lock:
            new = what not in self._write_problems
            self._write_problems[what] = problem
        if new:
            self._alert(f"cannot write the {what}: {problem}; {consequence}")
        else:
            log.debug("still cannot write the %s: %s", what, problem)

    def _write_works(self, what: str) -> None:
        with self._write_lock:
            problem = self._write_problems.pop(what, None)
        if problem is not None:
            self._alert(f"the {what} is written again (it failed with: {problem})")


def _reason(exc: OSError) -> str:
    """What the system said ("No space left on device"), without the temporary file's name."""
    return exc.strerror or str(exc) or type(exc).__name__
