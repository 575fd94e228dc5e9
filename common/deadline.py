"""A total deadline for any call: `requests`, urllib and urllib3 time each read, not the
answer, so a server that sends its body a byte a second holds a call as long as it likes.

`call_within` runs the call in a daemon thread and stops waiting at the deadline. Python
cannot stop a thread: the call is abandoned, finishes or fails on its own (its socket's
read timeout still bounds each read), and its result is dropped. Callers must treat an
abandoned write as one that may land, as they treat a lost answer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """No whole answer within the deadline (a TimeoutError, so `except OSError` sees it)."""


def call_within(
    seconds: float, call: Callable[[], T], what: str = "call", stop: threading.Event | None = None
) -> T:
    """`call()`'s result or exception if it ends within `seconds`, else DeadlineExceeded.

    `stop`, when set, ends the wait early too (a shutdown does not wait for slow servers).
    """
    job = _Job(call, what)
    threading.Thread(target=job.run, name=job.name, daemon=True).start()
    return job.answer(seconds, stop)


class DeadlineRunner:
    """call_within for calls made one after another (a daemon's pools in a tick), on one
    thread kept for the next call: starting a thread per call cost ~0.2 ms a pool a tick.
    A call left behind past its deadline keeps that thread, which ends after it; the next
    call gets a new one. Not for calls made at once from several threads."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] | None = None

    def call_within(
        self,
        seconds: float,
        call: Callable[[], T],
        what: str = "call",
        stop: threading.Event | None = None,
    ) -> T:
        """As call_within."""
        jobs = self._jobs
        if jobs is None:
            jobs = self._jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(jobs,), name="deadline", daemon=True).start()
        job = _Job(call, what)
        jobs.put(job)
        try:
            return job.answer(seconds, stop)
        except DeadlineExceeded:
            self._jobs = None  # the thread stays with the call left behind
            jobs.put(None)  # and ends once it returns
            raise


class _Job:
    """One call, run on some thread, and its outcome for the thread that waits for it."""

    def __init__(self, call: Callable[[], Any], what: str) -> None:
        self.call, self.what = call, what
        self.name = f"deadline: {what}"[:60]
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.value = self.call()
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        finally:
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
