"""The daemon's side of leader election: only the holder of the lock acts in a tick.

Its own room because taking, renewing and releasing the lock, telling a lost or regained
lock once, and guarding every fleet write with it are one concern apart from the tick
loop. `Daemon` takes these methods in as a mixin and owns the state they read.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime

from autoscaler.leader import WRITE_MARGIN, LeaderGuardedBackend
from autoscaler.runtime import Runtime
from autoscaler.state import PoolState
from autoscaler.telemetry import Telemetry
from backends.leases import LeaderLock, LeaderLockError
from common.deadline import DeadlineExceeded, call_within, due_within, whole_answer_s

log = logging.getLogger("autoscaler.daemon")  # the daemon's logger, as before the split

RENEW_MARGIN = 2 / 3  # of the TTL: between pools, the lock is renewed with less left


def trouble_of(problem: str) -> str:
    """The lock's trouble, its figures left out: a wait the server asked for, or the time
    left, is a little different at each tick, and each new text was alerted again."""
    return re.sub(r"\d+(?:\.\d+)?", "#", problem)


class Leadership:
    """Leader-lock handling for `autoscaler.daemon.Daemon`, which sets these."""

    runtime: Runtime
    telemetry: Telemetry
    leader: LeaderLock | None
    _leading: bool | None
    states: dict[str, PoolState]
    _lock_problem: str | None
    _lock_call: tuple[datetime, threading.Event] | None  # (when begun, set once it ended)
    _alert: Callable[[str], None]

    def _lead(self) -> bool:
        """Renew (or try to take) the leader lock; only its holder acts this tick."""
        if self.leader is None:
            return True
        try:
            leading = self._ask_lock()
        except (LeaderLockError, DeadlineExceeded) as exc:
            self.telemetry.set_leader(False)
            self._leading = None
            if self._lock_problem is None or trouble_of(str(exc)) != trouble_of(self._lock_problem):
                self._alert(f"leader lock unreachable; this daemon does not act: {exc}")
            self._lock_problem = str(exc)
            return False
        if self._lock_problem is not None:
            self._alert("leader lock reachable again")
            self._lock_problem = None
        if leading and not self._leading:
            self._forget_fleet_counts()
        if leading != self._leading:
            log.warning(
                "%s",
                f"this daemon ({self.leader.identity}) is now the active one"
                if leading
                else f"this daemon ({self.leader.identity}) stands by",
            )
        self._leading = leading
        self.telemetry.set_leader(leading)
        if not leading:
            log.info("standby: %s is active", self.leader.holder() or "another daemon")
            self.telemetry.standby_tick()
        return leading

    def _ask_lock(self) -> bool:
        """acquire_or_renew under the lock's deadline, one call at a time: a call left
        behind that never returns (a kubeconfig exec plugin that hangs: the client waits on
        it without a timeout) is not joined by another each tick, a thread and a plugin
        process more every tick, for as long as it hangs."""
        assert self.leader is not None
        if self._lock_call is not None and not self._lock_call[1].is_set():
            raise LeaderLockError(
                f"the lock call begun at {self._lock_call[0]:%Y-%m-%d %H:%M:%S} UTC has not "
                "returned (a credential plugin or the lock's server hanging?); none is made "
                "until it does"
            )
        leader, done = self.leader, threading.Event()
        self._lock_call = (self.runtime.clock.now(), done)

        def ask() -> bool:
            try:
                return leader.acquire_or_renew()
            finally:
                done.set()

        return call_within(self._lock_deadline(), ask, "lock")

    def _still_lead(self) -> bool:
        """Before each pool of a tick: the lock renewed once a third of its TTL has gone.
        The pools tick one after another (each within the interval), so a tick of many
        or slow pools outlives a lease renewed only at its start: the last pools' writes
        were refused every tick and the standby took the lock over mid-tick. False once
        the lock was lost (or unreachable) this tick: the pools left are held."""
        if self.leader is None:
            return True
        if not self._leading:
            return False
        if self.leader.is_held(self.leader.ttl_s * RENEW_MARGIN):
            return True
        return self._lead()

    def _forget_fleet_counts(self) -> None:
        """On taking the lead: the count each fleet had when this daemon last looked is
        not one to hold the fleet to, as the other replica may have scaled it since (a
        count changed meanwhile would read as a change by hand: an alert and a hold for
        the cooldown, on every takeover). The first tick as leader reads it afresh."""
        for state in self.states.values():
            state.last_known_desired = None

    def release_leadership(self) -> None:
        """On shutdown: the standby takes over at its next tick, not after the TTL. Under
        the lock's own deadline, as `_lead`: a server's Retry-After past it is not waited
        (the lock then expires by itself), so it holds no stop or `--once` for long."""
        if self._lock_call is not None and not self._lock_call[1].is_set():
            log.warning("not releasing the leader lock: a lock call has not returned; it expires")
            return
        if self.leader is not None and self._leading:
            with due_within(self._lock_deadline()):
                self.leader.release()
            self._leading = False
            self.telemetry.set_leader(False)

    def _guard_writes(self, runtime: Runtime) -> None:
        """Every backend write checks, just before it, that the lease is still ours."""
        if self.leader is None:
            return
        margin_s = self.leader.ttl_s * WRITE_MARGIN
        for ticker in runtime.tickers:
            if not isinstance(ticker.backend, LeaderGuardedBackend):
                ticker.backend = LeaderGuardedBackend(ticker.backend, self.leader, margin_s)

    def _lock_deadline(self) -> float:
        election = self.runtime.config.leader_election
        if election is not None:
            return whole_answer_s(election.timeout.total_seconds())
        return self.leader.ttl_s / 3 if self.leader is not None else 10.0
