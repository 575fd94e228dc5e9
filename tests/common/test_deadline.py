"""A deadline of its own for each of a row of calls, made on a thread of their own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from common.deadline import each_within


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
