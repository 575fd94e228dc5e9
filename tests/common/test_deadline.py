"""A deadline for any call; the runner that keeps its thread between calls."""

from __future__ import annotations

import threading
import time

import pytest

from common.deadline import DeadlineExceeded, DeadlineRunner, call_within


def test_the_runner_answers_as_call_within_on_one_kept_thread() -> None:
    runner = DeadlineRunner()
    threads = {runner.call_within(5.0, threading.get_ident) for _ in range(20)}
    assert len(threads) == 1  # one thread, kept between calls
    assert runner.call_within(5.0, lambda: 42) == call_within(5.0, lambda: 42) == 42

    def fails() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        runner.call_within(5.0, fails)
    assert runner.call_within(5.0, lambda: "after") == "after"  # an error keeps the thread


def test_a_call_left_behind_keeps_its_thread_and_the_next_call_gets_a_new_one() -> None:
    runner = DeadlineRunner()
    first = runner.call_within(5.0, threading.current_thread)
    released = threading.Event()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"stuck: no whole answer within 0\.2 s"):
        runner.call_within(0.2, released.wait, "stuck")
    assert time.monotonic() - started < 2.0
    second = runner.call_within(5.0, threading.current_thread)
    assert second is not first and second.is_alive()
    assert first.is_alive()  # still in the call left behind
    released.set()
    first.join(5.0)
    assert not first.is_alive()  # and ends once it returns
    assert second.name == "deadline: call"


def test_a_stop_ends_the_wait() -> None:
    runner = DeadlineRunner()
    stop = threading.Event()
    released = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        runner.call_within(60.0, released.wait, "slow", stop)
    assert time.monotonic() - started < 2.0
    released.set()
