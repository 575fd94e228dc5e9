"""The heavy forecaster fits of many pools, done in worker processes beside the tick.

A forecaster's heavy fit is most of a pool's tick when it comes: the seasonal one's refit
is ~7-17 ms of CPU on 14 days of minutes, against ~1 ms for a tick between refits. It
comes for every pool at the daemon's first tick (1,000 pools used to take 7-8 s of one
core before the last of them decided), then about once an hour per pool, spread by the
pool's refit phase (~17 of 1,000 pools a tick: a fifth of a steady tick's CPU). So before
the pools tick, each pool whose fit is due (`PoolTicker.heavy_fit_due`) is observed (its
tick then uses that very answer, not a second query) and sent, with its forecaster, to a
worker process that fits it and forecasts the pool's horizon; the fitted forecaster comes
back to the pool just before its tick, so the other pools tick while the workers fit. The
tick fits it again on the same samples, which costs no refit, so the forecast is the one
the pool would have made by itself, to the last bit. A pool whose loop calibration
recalibrates on the tick (its replay of the kept week, every 6 h on the pool's phase:
~35 ms each, ~0.1 s of a week-old daemon's steady tick of 1,000 pools) is sent whole,
forecaster and calibration, and comes back whole (`PoolTicker.predictor_to_fit`); each
worker compiles that replay once, as the first tick ends, not in a later tick (`_warm`).

Nothing here can hold or scale a fleet: a pool whose history is missing, whose fit fails
or is not back by the deadline, or whose worker died, fits in its own tick as before.
Workers are spawned (fresh interpreters, not forks of a daemon with threads) when the
daemon starts, so their imports overlap its start, and kept while it leads. Workers that
broke (one was killed) are let go, and the pools refit in their own ticks from then on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from multiprocessing import get_context
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from autoscaler.replay_decide import compile_replay
from common.deadline import DeadlineExceeded, call_within
from common.log_lines import setup_logging
from common.tick_circuit import TickCircuit, within
from predictors import Predictor
from predictors.history_grid import epoch_index

if TYPE_CHECKING:
    from autoscaler.tick import PoolTicker

log = logging.getLogger(__name__)

WORKERS_FROM = 32
"""With fewer pools than this the daemon starts no workers: each pool's first fit is done
sooner in its own tick than workers could start, and their refits are a small share."""
MOST_WORKERS = 8
BATCH = 8
"""Pools sent to a worker at a time at most: fewer round trips than one each, and the
workers still start on the first pools while the later ones are observed. Fewer pools are
sent in smaller batches (`_batch_size`), so that the first fits come back soon."""


def worker_count(setting: int | None) -> int:
    """Worker processes for the heavy fits: the setting, or the CPUs this process may use."""
    if setting is not None:
        return setting
    return min(MOST_WORKERS, len(os.sched_getaffinity(0)))


Answers = Future[list["Predictor | str"]]


@dataclass
class _Sent:
    """One pool's part: its observation, and where its fitted forecaster will come back."""

    observed: pd.Series | str
    answers: Answers | None = None
    position: int = 0


class FitWorkers:
    """Worker processes that fit forecasters beside the tick.

    Each tick: `send` observes the pools due a heavy fit and sends them off; `take`, just
    before each pool's tick, hands it its observation and, once its batch is back, its
    fitted forecaster (the pools first in line tick while the workers still fit the later
    ones); `summary` says how that tick's fits went.
    """

    def __init__(self, workers: int, stop: threading.Event | None = None) -> None:
        self.workers = workers
        self._stop = stop
        """Set when the daemon is stopping: `take` waits no longer (nor `send` observes)."""
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=_log_as_the_daemon,
            initargs=(logging.getLogger().getEffectiveLevel(),),
        )
        self.starting = [self._executor.submit(_ready) for _ in range(workers)]
        """The workers' first tasks, sent now so that they start (and import) before the
        first tick: done once they are up."""
        self._sent: dict[int, _Sent] = {}  # by id(ticker)
        self._now: datetime | None = None
        self._deadline = 0.0
        self.pools = 0
        self.fitted = 0
        self.missed: dict[str, int] = {}
        """This tick's pools left to fit in their own ticks, by why."""
        self.broken = False
        """A worker died (killed, out of memory): the executor takes no more work."""
        self.warming: list[Future[bool]] = []
        """Each worker's compile of the loop calibration's replay, sent once the first tick
        that sent a loop-calibrated pool is over (`_warm`)."""
        self._warm_due = False

    def send(
        self,
        tickers: Sequence[PoolTicker],
        now: datetime,
        seconds: float,
        circuit: TickCircuit | None = None,
    ) -> None:
        """Observe each pool and send it with its forecaster to the workers. Within
        `seconds`, which bound `take`'s waits too: pools not observed by then are left to
        their own ticks. The observing runs as each pool's own tick does, under a deadline
        and the tick's `circuit` (a Prometheus that left one pool's query unanswered is not
        asked for the others): a metrics call that never returns is left behind, with what
        was observed so far."""
        self._now, self._deadline = now, time.monotonic() + seconds
        self.pools, self.fitted, self.missed = len(tickers), 0, {}
        if not self.warming and any(t.recalibrates for t in tickers):
            self._warm_due = True
        given_up = threading.Event()
        batch_size = _batch_size(len(tickers), self.workers)
        observe = partial(self._observe_all, tickers, now, batch_size, given_up, circuit)
        try:
            self._sent = call_within(seconds, observe, "fit workers: observe", self._stop)
        except DeadlineExceeded:
            given_up.set()  # it stops after the call it is stuck in; its answers are dropped
            self._sent = {}
        unobserved = len(tickers) - len(self._sent)
        if unobserved:
            self._miss("not observed in time", unobserved)

    def _observe_all(
        self,
        tickers: Sequence[PoolTicker],
        now: datetime,
        batch_size: int,
        given_up: threading.Event,
        circuit: TickCircuit | None,
    ) -> dict[int, _Sent]:
        sent: dict[int, _Sent] = {}
        batch: list[tuple[PoolTicker, pd.Series]] = []
        for ticker in tickers:
            if time.monotonic() >= self._deadline or self._stopping() or given_up.is_set():
                break
            with within(circuit or TickCircuit(), ticker.pool.name):
                answer = ticker.observe(now)
            sent[id(ticker)] = _Sent(answer)
            history = None if isinstance(answer, str) else ticker.history_to_fit(answer)
            if history is not None:
                batch.append((ticker, history))
            if len(batch) == batch_size:
                self._send(batch, sent)
                batch = []
        if batch:
            self._send(batch, sent)
        return sent

    def take(self, ticker: PoolTicker) -> None:
        """Hand `ticker` what `send` made for it (nothing, if it was not observed there),
        waiting for its batch until the deadline at most."""
        sent = self._sent.pop(id(ticker), None)
        if sent is None or self._now is None:
            return
        try:
            ticker.take_fit(self._now, sent.observed, self._fitted(sent))
        except Exception as exc:  # never in the way of the pool's tick
            self._miss(f"not taken ({type(exc).__name__})")

    def finish(self) -> None:
        """The tick is over: what it did not take (a stop cut it short) is let go. A pool's
        tick left behind at the stop may still be taking its own: the dict is swapped, not
        iterated where that tick pops from it."""
        sent_all, self._sent, self._now = self._sent, {}, None
        for sent in list(sent_all.values()):
            if sent.answers is not None:
                sent.answers.cancel()
        if self._warm_due:
            self._warm()

    def _warm(self) -> None:
        """One compile of the replay per worker, now, while they idle between ticks: the
        worker that makes a pool's first recalibration then does not compile it in that
        tick (numba, ~0.7-0.9 s; ~110 MB a worker, which the first recalibration there
        would take anyway). A worker that takes two leaves the other to compile at its
        first: a cost in time, never in results."""
        self._warm_due = False
        try:
            self.warming = [self._executor.submit(compile_replay) for _ in range(self.workers)]
        except RuntimeError as exc:  # a broken pool takes no more work
            self.broken = self.broken or isinstance(exc, BrokenExecutor)

    def summary(self) -> str:
        missed = ", ".join(f"{count} {why}" for why, count in self.missed.items())
        fitted = f"{self.fitted} of {self.pools} pools' forecasters fitted"
        return f"{fitted} in {self.workers} worker processes" + (
            f"; fitting in their own ticks: {missed}" if missed else ""
        )

    def close(self) -> None:
        """Let the workers go, and stop any still running (one fitting past the deadline,
        one a broken pool left behind), so that none can hold the daemon's exit."""
        executor = self._executor
        workers = list((executor._processes or {}).values())  # no public handle in 3.11
        executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()

    def _send(self, batch: list[tuple[PoolTicker, pd.Series]], sent: dict[int, _Sent]) -> None:
        assert self._now is not None
        now = self._now
        jobs = [(t.predictor_to_fit(now), _packed(history), t.pool.horizon) for t, history in batch]
        try:
            answers = self._executor.submit(fit_batch, jobs)
        except RuntimeError as exc:  # a broken pool (a worker died) takes no more work
            self.broken = self.broken or isinstance(exc, BrokenExecutor)
            self._miss(f"not sent ({exc})", len(batch))
            return
        for position, (ticker, _) in enumerate(batch):
            sent[id(ticker)].answers, sent[id(ticker)].position = answers, position

    def _fitted(self, sent: _Sent) -> Predictor | None:
        if sent.answers is None:  # no history to fit: its tick says why
            return None
        while not sent.answers.done():  # in short waits: a stop must not wait for it
            left = self._deadline - time.monotonic()
            if left <= 0 or self._stopping():
                sent.answers.cancel()
                self._miss("not back in time")
                return None
            wait((sent.answers,), timeout=min(0.05, left))
        try:
            answer = sent.answers.result()[sent.position]
        except Exception as exc:  # a worker that died, a forecaster that did not pickle
            self.broken = self.broken or isinstance(exc, BrokenExecutor)
            self._miss(f"lost ({type(exc).__name__}: {exc})")
            return None
        if isinstance(answer, str):  # the pool's own fit meets the error again and says it
            self._miss(f"failed ({answer.split(':')[0]})")
            return None
        self.fitted += 1
        return answer

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _miss(self, why: str, count: int = 1) -> None:
        self.missed[why] = self.missed.get(why, 0) + count


def fit_batch(jobs: list[tuple[Predictor, PackedHistory, timedelta]]) -> list[Predictor | str]:
    """In a worker: each forecaster fitted and its horizon forecast (what the pool's tick
    does, so its tick finds the work done); an error as its text."""
    answers: list[Predictor | str] = []
    for forecaster, packed, horizon in jobs:
        try:
            forecaster.fit(_unpacked(packed)).forecast(horizon)
        except Exception as exc:  # the pool's own tick meets it again and says it
            answers.append(f"{type(exc).__name__}: {exc}")
            continue
        answers.append(forecaster)
    return answers


@dataclass(frozen=True)
class RegularHistory:
    """A history on a regular grid, sent as its values and first time, half the bytes
    of the series with its index (the index is as long as the values)."""

    values: np.ndarray
    first_ns: int
    step_ns: int
    unit: str
    tz: object
    name: object


PackedHistory = RegularHistory | pd.Series


def _batch_size(pools: int, workers: int) -> int:
    """Pools a batch: BATCH at most, and about four batches a worker, so that a few pools
    (a steady tick's refits) come back one by one, soon after the tick starts."""
    return max(1, min(BATCH, pools // (4 * max(1, workers))))


def _packed(history: pd.Series) -> PackedHistory:
    index = history.index
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return history
    stamps = index.asi8
    steps = np.diff(stamps)
    if not (steps == steps[0]).all():
        return history
    return RegularHistory(
        history.to_numpy(), int(stamps[0]), int(steps[0]), index.unit, index.tz, history.name
    )


def _unpacked(packed: PackedHistory) -> pd.Series:
    if isinstance(packed, pd.Series):
        return packed
    count = len(packed.values)
    stamps = packed.first_ns + np.arange(count, dtype=np.int64) * packed.step_ns
    index = epoch_index(stamps, packed.unit, packed.tz)
    return pd.Series(packed.values, index=index, name=packed.name)


def _log_as_the_daemon(level: int) -> None:
    """A worker's log lines as the daemon's (JSON, the journal's levels): a fresh
    interpreter's went to Python's last-resort handler, a bare line among them."""
    setup_logging(logging.getLevelName(level))


def _ready() -> None:
    """A worker's first task: it is up, with the forecasters' modules imported."""
    import predictors.seasonal  # noqa: F401
