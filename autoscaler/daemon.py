"""The daemon loop: an apscheduler interval job that ticks every pool, never two at once.

SIGTERM lets the tick in flight finish, then exits 0. SIGHUP asks for a reload,
done between ticks; a broken new config keeps the old one running and alerts.
In simulation (the demo), each tick advances a simulated clock by one interval,
and the scheduler fires `speed` times faster than real time. What a reload and the
overrides file change is autoscaler.daemon_reload; the leader lock, daemon_leadership.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from wsgiref.simple_server import WSGIServer

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from autoscaler import early_signals
from autoscaler.clock_steps import run_now_if_clock_stepped_back
from autoscaler.config.loader import load_config
from autoscaler.daemon_digest import DigestSends
from autoscaler.daemon_fits import HeavyFits, start_fit_workers
from autoscaler.daemon_leadership import Leadership
from autoscaler.daemon_reload import ConfigReloads
from autoscaler.daemon_writes import WriteEpisodes
from autoscaler.digest_trigger import digest_trigger
from autoscaler.fit_workers import FitWorkers
from autoscaler.notify import Notifier, alert_message
from autoscaler.notify_queue import count_failures, finish, gathered
from autoscaler.overrides import OverridesFile
from autoscaler.runtime import Runtime, build_runtime
from autoscaler.state import PoolState
from autoscaler.telemetry import Telemetry
from autoscaler.tick import PoolTicker
from autoscaler.tick_result import TickResult, held
from autoscaler.watchdog import ServiceNotifier, ticks_alive
from backends.leases import LeaderLock
from common.clock import Clock, SimulatedClock
from common.deadline import each_within
from common.tick_circuit import TickCircuit, within

log = logging.getLogger(__name__)

ResultHandler = Callable[[TickResult], None]
STOP_GRACE_S = 5.0
"""After SIGTERM, how long the tick in flight may still take before it is left behind."""


class Daemon(ConfigReloads, Leadership, WriteEpisodes, HeavyFits, DigestSends):
    """Ticks every pool on a schedule; reloads, leadership, its own files' trouble and
    shutdown around the ticks."""

    def __init__(
        self,
        config_path: Path,
        *,
        dry_run: bool = False,
        env: Mapping[str, str] = os.environ,
        notifier: Notifier | None = None,
        on_result: ResultHandler | None = None,
        clock: Clock | None = None,
        leader_lock: LeaderLock | None = None,
    ) -> None:
        self.config_path = config_path
        self.dry_run = dry_run
        self.env = env
        self._notifier_override = notifier
        self.on_result = on_result
        self._write_problems: dict[str, str] = {}
        self._write_lock = threading.Lock()
        self.runtime: Runtime = build_runtime(
            load_config(config_path),
            source=config_path,
            dry_run=dry_run,
            env=env,
            notifier=notifier,
            clock=clock,
        )
        # A simulation replays from its start: yesterday's replay must not shape this one.
        simulated = self.runtime.config.simulation is not None
        self.states = {} if simulated else self.runtime.state_store.load()
        if self.runtime.state_store.problem:
            self._alert(self.runtime.state_store.problem)
        self._say_orphaned_drains()
        self._digest_lock = threading.Lock()
        self._digest_sent = self._digest_claimed = self.runtime.state_store.load_digest_day()
        self.overrides = OverridesFile()
        self._overrides_seen: tuple[int, ...] | None = None
        self._overrides_problem: str | None = None
        self._overrides_unknown: str | None = None
        self._tick_lock = threading.Lock()
        self._reload_requested = threading.Event()
        self._stop = threading.Event()
        self._grace_over = threading.Event()  # set STOP_GRACE_S after a stop is asked for
        self._stuck: set[str] = set()  # pools whose last tick was left behind (alerted)
        self.ticks = 0
        self.skipped_ticks = 0
        self._skip_reported_for: float | None = None
        self._tick_began: float | None = None  # monotonic; for the systemd watchdog
        self._last_began = self._progress = time.monotonic()  # _progress: a pool began
        telemetry = self.runtime.config.telemetry
        self.telemetry = Telemetry(
            telemetry.unhealthy_after if telemetry else timedelta(minutes=5),
            leader_election=self.runtime.config.leader_election is not None,
        )
        count_failures(self.runtime.notifier, self.telemetry.notification_failed)
        election = self.runtime.config.leader_election
        if dry_run and election is not None:  # a dry run must not take or hold it
            log.info("dry run: not taking the leader lock %r; ticking as if active", election.name)
            leader_lock = None
        elif leader_lock is None:
            leader_lock = self.runtime.leader_lock
        self.leader = leader_lock
        self._leading: bool | None = None
        self._lock_problem: str | None = None
        self._lock_call: tuple[datetime, threading.Event] | None = None
        self._guard_writes(self.runtime)
        self._fit_workers = start_fit_workers(self.runtime, self._grace_over)
        self._find_weeks()  # while the workers start

    # ---- one tick ----------------------------------------------------------------

    def tick(self) -> list[TickResult]:
        """Tick every pool once. Serialised: a second caller waits for the first."""
        with self._tick_lock:
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload()
            if not self._lead():
                self._let_fit_workers_go()  # a standby's first tick as leader fits in-process
                return []
            self._refresh_overrides()
            runtime = self.runtime
            now = runtime.clock.now()
            started = time.monotonic()
            circuit = TickCircuit()  # a server one pool's call found silent: once a tick
            fits = self._send_heavy_fits(runtime, now, circuit)
            try:
                with gathered(runtime.notifier):  # the tick's news in few posts, at its end
                    results = self._tick_pools(runtime, now, fits, circuit)
            finally:
                if fits is not None:
                    self._fits_done(fits)
            self._still_lead()  # a tick past the interval skips the next: renew for the gap
            self.telemetry.tick_finished(results, time.monotonic() - started)
            self._watch_decision_log()
            self._save_state()
            if runtime.config.simulation is not None and isinstance(runtime.clock, SimulatedClock):
                runtime.clock.advance(runtime.config.interval)
            self.ticks += 1
            return results

    def _tick_pools(
        self, runtime: Runtime, now: datetime, fits: FitWorkers | None, circuit: TickCircuit
    ) -> list[TickResult]:
        """Each pool's tick within a deadline of its own (the interval): a pool stuck in a
        call no deadline bounds must starve neither the other pools nor a shutdown. A
        tick left behind may not write to its fleet, and its pool is skipped while it
        runs. Once stopping, the pools not ticked yet wait for the next start. A server
        that leaves one pool's call unanswered is not asked again this tick (one circuit
        for the tick: common.tick_circuit)."""
        tickers = runtime.tickers
        limit = runtime.config.interval.total_seconds()
        calls = [(t.pool.name, partial(self._tick_pool, t, now, fits, circuit)) for t in tickers]
        late = partial(self._left_behind, tickers, now, limit)
        results = each_within(limit, calls, late, self._grace_over)
        for result in results:
            self.telemetry.record(result)
            self._report(result)
        return results

    def _report(self, result: TickResult) -> None:
        """The caller's hook (the console of `--once` and the demo). One that fails, as
        when stdout is a pipe closed under it (rich then raises SystemExit), is let go:
        it must not cost the tick its state save, nor a simulation its clock."""
        try:
            if self.on_result is not None:
                self.on_result(result)
        except (Exception, SystemExit) as exc:
            why = "its output is closed" if isinstance(exc, SystemExit) else repr(exc)
            log.warning("cannot print the tick's results (%s); printing no more", why)
            self.on_result = None

    def _alert(self, text: str) -> None:
        log.error("%s", text)
        try:
            self.runtime.notifier.send(alert_message(text))
        except Exception:
            log.exception("notifier failed")

    # ---- the loop ----------------------------------------------------------------

    def finished(self) -> bool:
        simulation = self.runtime.config.simulation
        return simulation is not None and self.runtime.clock.now() >= simulation.end

    def run_forever(self, install_signals: bool = True) -> int:
        config = self.runtime.config
        seconds = config.interval.total_seconds()
        if config.simulation is not None:
            seconds /= config.simulation.speed
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self._scheduled_tick,
            IntervalTrigger(seconds=seconds),
            id="tick",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        scheduler.add_listener(self._on_skipped_tick, EVENT_JOB_MAX_INSTANCES)
        if install_signals:
            self.finish_on_stop_signals()
            signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
            if early_signals.take_reload():  # asked for while starting (autoscaler.cli.entry)
                self.request_reload()
        server = None
        if config.telemetry is not None and self.dry_run:
            log.info("dry run: self-metrics are not served (the real daemon may hold the port)")
        elif config.telemetry is not None:
            server = self._serve_telemetry(config.telemetry.listen)
        trigger = digest_trigger(config, self.dry_run)
        if trigger is not None:
            # Sent once the host wakes (a suspend, a clock stepped forward), not dropped
            # as apscheduler's 1 s misfire grace had it: one, for the day due last.
            scheduler.add_job(
                self._start_digest, trigger, id="digest", misfire_grace_time=None, coalesce=True
            )
        scheduler.start()
        log.info("autoscaler running: %d pools, every %s", len(config.pools), config.interval)
        service = ServiceNotifier()
        service.ready(f"{len(config.pools)} pools, every {config.interval}")
        try:
            while not self._stop.wait(0.5 if config.simulation is None else 0.01):
                if self._tick_began is None:  # in flight, it would count as one skipped
                    run_now_if_clock_stepped_back(scheduler, "tick", seconds)
                now, limit = time.monotonic(), service.watchdog_s or 0.0
                progressed = None if self._tick_began is None else self._progress
                alive = ticks_alive(now, progressed, self._last_began, seconds, limit)
                service.beat(now, alive)
        finally:
            service.stopping()
            scheduler.shutdown(wait=True)  # lets the tick in flight finish
            self._let_fit_workers_go()  # stopped before the first tick
            finish(self.runtime.notifier)  # what the last ticks told, posted (a short wait)
            self.save_weeks()
            self.release_leadership()
            if server is not None:
                server.shutdown()
        log.info("autoscaler stopped after %d ticks", self.ticks)
        return 0

    def stop(self) -> None:
        self._stop.set()
        grace = threading.Timer(STOP_GRACE_S, self._grace_over.set)
        grace.daemon = True
        grace.start()

    def _tick_pool(
        self, ticker: PoolTicker, now: datetime, fits: FitWorkers | None, circuit: TickCircuit
    ) -> TickResult:
        """One pool's tick, on each_within's thread (its fit taken from the fit workers)."""
        self._progress = time.monotonic()  # a tick of many pools is not a hung one
        name = ticker.pool.name
        state = self.states.setdefault(name, PoolState())
        ticker.persist = partial(self._save_pool, name, state)
        hold = partial(held, name, ticker.dry_run, now, state)
        if ticker.in_flight:
            return hold("the previous tick is still running past its deadline")
        if not self._still_lead():
            return hold("this daemon no longer holds the leader lock")
        ticker.abandoned.clear()
        if fits is not None:
            fits.take(ticker)
        with within(circuit, name):
            result = ticker.tick(now, state, self.overrides)
        if name in self._stuck:
            self._stuck.discard(name)
            self._alert(f"{name}: tick recovered: it finished within its deadline again")
        return result

    def _left_behind(
        self, tickers: list[PoolTicker], now: datetime, limit: float, index: int
    ) -> TickResult:
        """A pool's tick past its deadline (or in flight at a stop): told not to write,
        alerted once, held."""
        self._progress = time.monotonic()
        ticker = tickers[index]
        ticker.abandoned.set()
        name = ticker.pool.name
        stopping = self._grace_over.is_set()
        why = "stopping" if stopping else f"{limit:g} s"
        detail = f"tick did not finish within its deadline ({why}); it will not write"
        if name not in self._stuck and not stopping:
            self._alert(f"{name}: tick failing: {detail}")
        self._stuck.add(name)
        state = self.states.setdefault(name, PoolState())
        return held(name, ticker.dry_run, now, state, detail)

    def _serve_telemetry(self, listen: str) -> WSGIServer | None:
        """/metrics and /healthz; a port taken by another process is told, not fatal:
        the fleet is better scaled without self-metrics than not at all."""
        host, _, port = listen.rpartition(":")
        try:
            server = self.telemetry.serve(host, int(port))
        except (OSError, OverflowError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._alert(
                f"self-metrics cannot listen on {listen} ({reason}); running without "
                "/metrics and /healthz until a restart"
            )
            return None
        log.info("self-metrics on http://%s/metrics and /healthz", listen)
        return server

    def _scheduled_tick(self) -> None:
        if self._stop.is_set():
            return
        self._progress = self._last_began = time.monotonic()
        self._tick_began = self._progress  # after _progress: the loop reads them in turn
        try:
            self.tick()
        except Exception:
            log.exception("tick failed")
        finally:
            self._tick_began = None
        self._catch_up_digest()  # at a start or a takeover after the digest's time (not --once)
        if self.finished():
            self._stop.set()

    def _on_skipped_tick(self, event: JobSubmissionEvent) -> None:
        """A tick still running when the next was due: that one is skipped. Said once per
        tick that overran (a warning in production; expected in a simulation, which fires
        faster than a tick runs, so only at DEBUG there)."""
        self.skipped_ticks += 1
        began = self._tick_began
        if began is None or began == self._skip_reported_for:
            return
        self._skip_reported_for = began
        simulated = self.runtime.config.simulation is not None
        log.log(
            logging.DEBUG if simulated else logging.WARNING,
            "a tick has run longer than the interval (%s); the next one is skipped",
            self.runtime.config.interval,
            extra={"skipped_ticks": self.skipped_ticks},
        )

    def finish_on_stop_signals(self) -> None:
        """SIGTERM and SIGINT let the tick in flight finish: the daemon's, and `--once`'s."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: finishing the tick in flight", signal.Signals(signum).name)
        self.stop()
