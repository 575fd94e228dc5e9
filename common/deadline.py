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
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"deadline: {what}"[:60], daemon=True)
    worker.start()
    if stop is None:
        worker.join(max(0.0, seconds))
    else:
        _join_unless(worker, seconds, stop)
    if worker.is_alive():
        raise DeadlineExceeded(f"{what}: no whole answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


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
        job = _Job(call, f"deadline: {what}"[:60])
        jobs.put(job)
        if stop is None:
            job.done.wait(max(0.0, seconds))
        else:
            _wait_unless(job.done, seconds, stop)
        if not job.done.is_set():
            self._jobs = None  # the thread stays with the call left behind
            jobs.put(None)  # and ends once it returns
            raise DeadlineExceeded(f"{what}: no whole answer within {seconds:g} s")
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[no-any-return]


class _Job:
    def __init__(self, call: Callable[[], Any], name: str) -> None:
        self.call, self.name = call, name
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    current = threading.current_thread()
    while (job := jobs.get()) is not None:
        current.name = job.name
        try:
            job.value = job.call()
        except BaseException as exc:  # handed to the caller's thread
            job.error = exc
        finally:
            job.done.set()


def _wait_unless(done: threading.Event, seconds: float, stop: threading.Event) -> None:
    waited = 0.0
    while not done.is_set() and waited < seconds and not stop.is_set():
        step = min(0.05, seconds - waited)
        done.wait(step)
        waited += step


def _join_unless(worker: threading.Thread, seconds: float, stop: threading.Event) -> None:
    waited = 0.0
    while worker.is_alive() and waited < seconds and not stop.is_set():
        step = min(0.05, seconds - waited)
        worker.join(step)
        waited += step


def whole_answer_s(timeout_s: float) -> float:
    """The total deadline for a call whose per-read timeout is `timeout_s`: connecting and
    the first byte may each take one timeout (the client's own error wins then); the whole
    answer gets no longer than both."""
    return 2.0 * timeout_s
