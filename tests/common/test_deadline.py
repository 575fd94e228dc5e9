"""A deadline of its own for each of a row of calls, made on a thread of their own; the
runner that keeps its thread between calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from common.deadline import DeadlineExceeded, DeadlineRunner, call_within, each_within


def named(*calls: Callable[[], object]) -> list[tuple[str, Callable[[], object]]]:
    return [(f"call {number}", call) for number, call in enumerate(calls)]


def never_late(index: int) -> object:
    raise AssertionError(f"call {index} was left behind")


def test_each_within_makes_the_calls_in_turn_on_one_thread_of_their_own() -> None:
    order: list[int] = []
    calls = named(*(partial(order.append, n) for n in range(50)), threading.current_thread)
    outcomes = each_within(5.0, calls, never_late)
    assert order == list(range(50)) and outcomes[:50] == [None] * 50
    worker = outcomes[50]
    assert worker is not threading.current_thread() and worker.name == "deadline: call 50"


def test_a_call_past_its_deadline_stands_as_told_and_the_rest_go_on_a_new_thread() -> None:
    released = threading.Event()
    stuck_in: list[threading.Thread] = []

    def stuck() -> str:
        stuck_in.append(threading.current_thread())
        released.wait(10.0)
        return "late"

    told: list[int] = []

    def left_behind(index: int) -> str:
        told.append(index)
        assert released.is_set() is False  # told while the call is still stuck
        return "held"

    calls = named(threading.current_thread, stuck, threading.current_thread)
    started = time.monotonic()
    first, held, after = each_within(0.3, calls, left_behind)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert held == "held" and told == [1]
    assert first is stuck_in[0] and after is not first  # a new thread after the one left behind
    released.set()
    first.join(5.0)
    assert not first.is_alive()  # it ends once its call returns, its result dropped


def test_a_stop_leaves_the_call_in_flight_behind_and_starts_no_other() -> None:
    stop = threading.Event()
    released = threading.Event()
    made: list[str] = []
    threading.Timer(0.2, stop.set).start()
    calls = named(partial(made.append, "first"), released.wait, partial(made.append, "never"))
    started = time.monotonic()
    outcomes = each_within(60.0, calls, lambda index: f"left {index}", stop)
    assert time.monotonic() - started < 2.0
    assert outcomes == [None, "left 1"] and made == ["first"]
    released.set()
    time.sleep(0.1)
    assert made == ["first"]  # the call left behind did not go on to the next


def test_an_error_ends_the_run_and_is_raised_to_the_caller() -> None:
    made: list[int] = []

    def fails() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        each_within(5.0, named(partial(made.append, 1), fails, partial(made.append, 3)), never_late)
    assert made == [1]


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


def test_a_call_made_while_another_is_in_flight_gets_a_thread_of_its_own() -> None:
    runner = DeadlineRunner()
    kept = runner.call_within(5.0, threading.current_thread)
    released = threading.Event()
    inner: list[threading.Thread] = []

    def first() -> None:
        inner.append(runner.call_within(5.0, threading.current_thread))  # from its thread
        released.wait(5.0)

    caller = threading.Thread(target=runner.call_within, args=(5.0, first))
    caller.start()
    time.sleep(0.2)
    assert inner and inner[0] is not kept  # the kept thread was busy with `first`
    released.set()
    caller.join(5.0)
    assert runner.call_within(5.0, threading.current_thread) is kept  # kept for the next


def test_close_lets_the_kept_thread_end() -> None:
    runner = DeadlineRunner()
    kept = runner.call_within(5.0, threading.current_thread)
    runner.close()
    kept.join(5.0)
    assert not kept.is_alive()
    assert runner.call_within(5.0, lambda: "after") == "after"  # a new one when asked again


def test_a_call_under_a_deadline_knows_the_time_left() -> None:
    """each_within and call_within tell the calls they run how long they have left (a
    retry loop must not begin a wait that would outlast it); outside them, nothing."""
    from common.deadline import due_within, seconds_left

    assert seconds_left() is None
    seen = each_within(30.0, [("pool", seconds_left)], lambda i: None)
    assert seen[0] is not None and 0.0 < seen[0] <= 30.0
    assert 0.0 < call_within(5.0, seconds_left) <= 5.0  # type: ignore[operator]
    now = [100.0]
    with due_within(3.0, lambda: now[0]):
        assert seconds_left() == 3.0
        assert call_within(60.0, seconds_left) == 3.0  # the sooner, outer deadline holds
        with due_within(10.0, lambda: now[0]):
            assert seconds_left() == 3.0
        now[0] += 1.0
        assert seconds_left() == 2.0
    assert seconds_left() is None
