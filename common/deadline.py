"""A total deadline for any call: `requests`, urllib and urllib3 time each read, not the
answer, so a server that sends its body a byte a second holds a call as long as it likes.

`call_within` runs the call in a daemon thread and stops waiting at the deadline. Python
cannot stop a thread: the call is abandoned, finishes or fails on its own (its socket's
read timeout still bounds each read), and its result is dropped. Callers must treat an
abandoned write as one that may land, as they treat a lost answer. `each_within` gives
each of a row of calls (a daemon's pools in a tick) a deadline of its own in the same way.
A call made under either can ask `seconds_left()`: a retry loop told by a server to wait
must know whether that wait would outlast the deadline (backends.retry).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """No whole answer within the deadline (a TimeoutError, so `except OSError` sees it)."""


@dataclass(frozen=True)
class Due:
    """When the call in hand must be done, on `clock` (monotonic; a test's fake one)."""

    at: float
    clock: Callable[[], float] = time.monotonic

    def left(self) -> float:
        return self.at - self.clock()


_due: ContextVar[Due | None] = ContextVar("call_due", default=None)


def seconds_left() -> float | None:
    """Time left before the deadline of the call this thread is in; None under none."""
    due = _due.get()
    return None if due is None else due.left()


@contextmanager
def due_within(seconds: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Calls made inside (on this thread) are due within `seconds`, or sooner where an
    outer deadline says so."""
    due = Due(clock() + seconds, clock)
    outer = _due.get()
    token = _due.set(due if outer is None or outer.left() > due.left() else outer)
    try:
        yield
    finally:
        _due.reset(token)


def call_within(
    seconds: float, call: Callable[[], T], what: str = "call", stop: threading.Event | None = None
) -> T:
    """`call()`'s result or exception if it ends within `seconds`, else DeadlineExceeded.

    `stop`, when set, ends the wait early too (a shutdown does not wait for slow servers).
    """
    job = _Job(call, what, seconds)
    threading.Thread(target=job.run, name=job.name, daemon=True).start()
    return job.answer(seconds, stop)


class DeadlineRunner:
    """call_within on a thread kept for the next call: starting a thread for each call
    cost ~0.3-0.5 ms, a fifth of a pool's steady read from Prometheus. A call left behind
    past its deadline keeps that thread, which ends after it; the next call gets a new
    one. A call made while another is in flight (from another thread) gets a thread of
    its own, as call_within gives it. `close` lets the kept thread end; a call after it
    (a digest still reading from a source a reload closed) gets a thread of its own too,
    which ends with it: a thread kept then would wait for a next call for ever."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._busy = threading.Lock()
        self._closed = False

    def call_within(
        self,
        seconds: float,
        call: Callable[[], T],
        what: str = "call",
        stop: threading.Event | None = None,
    ) -> T:
        """As call_within."""
        if not self._busy.acquire(blocking=False):
            return call_within(seconds, call, what, stop)
        try:
            if self._closed:
                return call_within(seconds, call, what, stop)
            jobs = self._jobs
            if jobs is None:
                jobs = self._jobs = queue.SimpleQueue()
                threading.Thread(target=_serve, args=(jobs,), name="deadline", daemon=True).start()
            job = _Job(call, what, seconds)
            jobs.put(job)
            try:
                return job.answer(seconds, stop)
            except DeadlineExceeded:
                self._jobs = None  # the thread stays with the call left behind
                jobs.put(None)  # and ends once it returns
                raise
        finally:
            self._busy.release()

    def close(self) -> None:
        """The kept thread ends (after a call in flight, which this waits for)."""
        with self._busy:
            self._closed = True
            jobs, self._jobs = self._jobs, None
            if jobs is not None:
                jobs.put(None)


def each_within(
    seconds: float,
    calls: Sequence[tuple[str, Callable[[], T]]],
    left_behind: Callable[[int], T],
    stop: threading.Event | None = None,
) -> list[T]:
    """Each named call's result, the calls made one after another on a thread of their own,
    each within `seconds` of its own start.

    A call past its deadline is left behind (it finishes on its own; its result is
    dropped, as call_within's) and `left_behind(its index)` stands for it, called as soon
    as the deadline passes; the calls after it go on on a new thread. With `stop` set,
    the call in flight is left behind too and no further call starts: the list ends
    there. A call's exception ends the run and is raised here.

    Awaiting each call in turn from here (call_within per call) cost two thread hand-offs
    a call: ~0.2 ms, a fifth of a second a tick for a daemon's 1,000 pools. This thread
    now only watches the clock.
    """
    run = _Run(calls, stop, seconds)
    run.start()
    while not run.ended.is_set():
        overdue = run.overdue(seconds)
        if overdue is None:
            run.ended.wait(run.wait_s(seconds))
            continue
        index, in_flight = overdue
        if in_flight:
            stand_in = left_behind(index)  # before the call left behind may go on
            run.resume_after(stand_in)
    if run.error is not None:
        raise run.error
    return run.outcomes


class _Run(Generic[T]):
    """each_within's calls and outcomes, and the crew number of the thread making them: a
    thread left behind holds an older number and drops what it finishes."""

    def __init__(
        self,
        calls: Sequence[tuple[str, Callable[[], T]]],
        stop: threading.Event | None,
        seconds: float,
    ):
        self.calls, self.stop, self.seconds = calls, stop, seconds
        self.lock = threading.Lock()
        self.ended = threading.Event()
        self.outcomes: list[T] = []
        self.error: BaseException | None = None
        self.crew = 0
        self.started: float | None = None  # monotonic start of the call in flight

    def start(self) -> None:
        thread = threading.Thread(target=self._work, args=(self.crew,), daemon=True)
        thread.start()

    def _work(self, crew: int) -> None:
        current = threading.current_thread()
        while True:
            with self.lock:
                if crew != self.crew:
                    return
                index = len(self.outcomes)
                if index == len(self.calls) or (self.stop is not None and self.stop.is_set()):
                    self.ended.set()
                    return
                self.started = time.monotonic()
            name, call = self.calls[index]
            current.name = f"deadline: {name}"[:60]
            try:
                with due_within(self.seconds):
                    outcome = call()
            except BaseException as exc:  # handed to the caller's thread
                with self.lock:
                    if crew == self.crew:
                        self.error = exc
                        self.ended.set()
                return
            with self.lock:
                if crew != self.crew:
                    return  # left behind: dropped
                self.outcomes.append(outcome)
                self.started = None

    def overdue(self, seconds: float) -> tuple[int, bool] | None:
        """The call to leave behind now (its index, and whether one is in flight), its
        thread retired; None while the call in flight is within its deadline."""
        with self.lock:
            if self.ended.is_set():
                return None
            stopping = self.stop is not None and self.stop.is_set()
            started = self.started
            late = started is not None and time.monotonic() - started >= seconds
            if not (stopping or late):
                return None
            self.crew += 1
            self.started = None
            if stopping:
                self.ended.set()
            return len(self.outcomes), started is not None

    def resume_after(self, stand_in: T) -> None:
        """The call left behind stands as `stand_in`; the next calls go on on a new thread
        (none after a stop)."""
        with self.lock:
            self.outcomes.append(stand_in)
        if not self.ended.is_set():
            self.start()

    def wait_s(self, seconds: float) -> float:
        """How long to sleep: until the call in flight is due, and at most 0.05 s while a
        stop may come."""
        started = self.started
        due = seconds if started is None else started + seconds - time.monotonic()
        return max(0.0, min(due, 0.05) if self.stop is not None else due)


class _Job:
    """One call, run on some thread, and its outcome for the thread that waits for it."""

    def __init__(self, call: Callable[[], Any], what: str, seconds: float) -> None:
        self.call, self.what, self.seconds = call, what, seconds
        self.outer = _due.get()  # the caller's deadline, if sooner, holds in the call too
        self.name = f"deadline: {what}"[:60]
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        token = _due.set(self.outer)
        try:
            with due_within(self.seconds):
                self.value = self.call()
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        finally:
            _due.reset(token)
            self.done.set()

    def answer(self, seconds: float, stop: threading.Event | None) -> Any:
        """The call's result or exception once it ended within `seconds` (`stop` ends the
        wait early too); DeadlineExceeded otherwise."""
        if stop is None:
            self.done.wait(max(0.0, seconds))
        else:
            waited = 0.0
            while not self.done.is_set() and waited < seconds and not stop.is_set():
                step = min(0.05, seconds - waited)
                self.done.wait(step)
                waited += step
        if not self.done.is_set():
            raise DeadlineExceeded(f"{self.what}: no whole answer within {seconds:g} s")
        if self.error is not None:
            raise self.error
        return self.value


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    current = threading.current_thread()
    while (job := jobs.get()) is not None:
        current.name = job.name
        job.run()


def whole_answer_s(timeout_s: float) -> float:
    """The total deadline for a call whose per-read timeout is `timeout_s`: connecting and
    the first byte may each take one timeout (the client's own error wins then); the whole
    answer gets no longer than both."""
    return 2.0 * timeout_s
