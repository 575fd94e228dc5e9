"""The daemon's fit workers: the pools' heavy forecaster fits (every pool's at the first
tick, then the hourly refits that fall due) sent to worker processes beside the tick
(autoscaler.fit_workers), and let go when they fail.

Its own room because handing fits to workers is apart from scheduling ticks. `Daemon`
takes these methods in as a mixin and owns the state they read.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from autoscaler.fit_workers import WORKERS_FROM, FitWorkers, worker_count
from autoscaler.runtime import Runtime
from common.tick_circuit import TickCircuit

log = logging.getLogger("autoscaler.daemon")  # the daemon's logger, as before the split


def start_fit_workers(runtime: Runtime, stop: threading.Event) -> FitWorkers | None:
    """Workers for the pools' heavy fits, started now, where there are enough pools;
    `stop` ends their waits (the daemon's stop grace)."""
    workers = worker_count(runtime.config.fit_workers)
    if workers < 2 or len(runtime.tickers) < WORKERS_FROM:
        return None
    try:
        return FitWorkers(workers, stop)
    except Exception as exc:  # e.g. a sandbox without /dev/shm: slower, never down
        log.warning("no fit workers (%s); each pool fits in its own ticks", exc)
        return None


class HeavyFits:
    """The fit workers' part of `autoscaler.daemon.Daemon`."""

    _fit_workers: FitWorkers | None
    ticks: int

    def _let_fit_workers_go(self) -> None:
        if self._fit_workers is not None:
            self._fit_workers.close()
            self._fit_workers = None

    def _send_heavy_fits(
        self, runtime: Runtime, now: datetime, circuit: TickCircuit
    ) -> FitWorkers | None:
        """The pools whose fit is heavy this tick (all at the first) sent to the fit
        workers, which the pool loop then takes their fits from (autoscaler.fit_workers),
        observed under the tick's `circuit`; None without workers, or with no fit due."""
        fits = self._fit_workers
        if fits is None:
            return None
        due = [t for t in runtime.tickers if not t.in_flight and t.heavy_fit_due(now)]
        if not due:
            return None
        try:
            fits.send(due, now, runtime.config.interval.total_seconds() / 2, circuit)
        except Exception:  # the pools fit in their own ticks, as without workers
            log.exception("fit workers failed; each pool fits in its own ticks")
            self._let_fit_workers_go()
            return None
        return fits

    def _fits_done(self, fits: FitWorkers) -> None:
        fits.finish()
        level = logging.INFO if self.ticks == 0 or fits.missed else logging.DEBUG
        log.log(level, "%s: %s", "first tick" if self.ticks == 0 else "heavy fits", fits.summary())
        if fits.broken:
            log.warning("a fit worker died; each pool fits in its own ticks from now")
            self._let_fit_workers_go()
