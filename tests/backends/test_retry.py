from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime

import pytest

from backends.base import BackendError
from backends.retry import (
    RETRY_AFTER_LIMIT_S,
    GiveUp,
    backoff_cap,
    call_with_retries,
    describe_safely,
    full_jitter_delay,
    wait_before_retry,
)
from common.deadline import due_within
from tests.support import FakeClock


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


def failing_then(result: str, failures: list[BaseException]):
    """An operation that raises each of `failures` in turn, then returns `result`."""
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return result

    return operation, calls


def retry(operation, *, retries: int = 3, sleeps: list[float] | None = None, **kw):
    sleeps = [] if sleeps is None else sleeps
    return call_with_retries(
        operation,
        what="scaling pool gpu",
        retries=retries,
        is_retryable=lambda e: isinstance(e, Flaky),
        sleep=sleeps.append,
        random_fraction=lambda: 1.0,
        **kw,
    )


def test_success_first_time_does_not_sleep() -> None:
    operation, calls = failing_then("ok", [])
    sleeps: list[float] = []
    assert retry(operation, sleeps=sleeps) == "ok"
    assert calls["n"] == 1
    assert sleeps == []


def test_retryable_errors_are_retried_with_growing_delays() -> None:
    operation, calls = failing_then("ok", [Flaky(), Flaky(), Flaky()])
    sleeps: list[float] = []
    assert retry(operation, sleeps=sleeps, base_delay=0.5, max_delay=8.0) == "ok"
    assert calls["n"] == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_delays_are_capped_at_max_delay() -> None:
    operation, _ = failing_then("ok", [Flaky()] * 6)
    sleeps: list[float] = []
    retry(operation, retries=6, sleeps=sleeps, base_delay=1.0, max_delay=5.0)
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_gives_up_after_retries_with_what_attempts_and_cause() -> None:
    operation, calls = failing_then("never", [Flaky()] * 10)
    with pytest.raises(BackendError) as caught:
        retry(operation, retries=2, describe=lambda e: "HTTP 503 from Nomad")
    assert calls["n"] == 3
    message = str(caught.value)
    assert "scaling pool gpu" in message
    assert "3 attempts" in message
    assert "HTTP 503 from Nomad" in message


def test_zero_retries_means_one_attempt() -> None:
    operation, calls = failing_then("never", [Flaky(), Flaky()])
    with pytest.raises(BackendError, match="after 1 attempt:"):
        retry(operation, retries=0)
    assert calls["n"] == 1


def test_non_retryable_error_is_not_retried() -> None:
    operation, calls = failing_then("never", [Fatal("HTTP 403")])
    sleeps: list[float] = []
    with pytest.raises(BackendError) as caught:
        retry(operation, sleeps=sleeps, describe=lambda e: "token refused")
    assert calls["n"] == 1
    assert sleeps == []
    assert str(caught.value) == "scaling pool gpu failed: token refused"


def test_non_retryable_after_retryable_names_the_attempt() -> None:
    operation, calls = failing_then("never", [Flaky(), Fatal()])
    with pytest.raises(BackendError, match="on attempt 2 of 4: Fatal"):
        retry(operation)
    assert calls["n"] == 2


def test_backend_error_from_the_operation_passes_through_unchanged() -> None:
    original = BackendError("job 'x' has no task group 'gpu'")
    operation, _ = failing_then("never", [original])
    with pytest.raises(BackendError) as caught:
        retry(operation)
    assert caught.value is original


def test_default_description_never_repeats_exception_text() -> None:
    secret = "s3cr3t-token-value"
    operation, _ = failing_then("never", [Fatal(f"header X-Nomad-Token: {secret}")])
    with pytest.raises(BackendError) as caught:
        retry(operation)
    assert secret not in str(caught.value)
    assert "Fatal" in str(caught.value)
    assert describe_safely(BackendError("safe words")) == "safe words"


def test_final_error_does_not_chain_the_original(caplog: pytest.LogCaptureFixture) -> None:
    """A logged traceback must not print the original exception (it may quote a request)."""
    secret = "s3cr3t-token-value"
    operation, _ = failing_then("never", [Flaky(secret), Flaky(secret)])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as caught:
        retry(operation, retries=1)
    printed = "".join(traceback.format_exception(caught.value))
    assert secret not in printed
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert secret not in caplog.text


def test_each_retry_is_logged_with_the_safe_cause(caplog: pytest.LogCaptureFixture) -> None:
    operation, _ = failing_then("ok", [Flaky(), Flaky()])
    caplog.set_level(logging.WARNING, logger="backends.retry")
    retry(operation, describe=lambda e: "HTTP 503")
    retry_lines = [r.getMessage() for r in caplog.records]
    assert len(retry_lines) == 2
    assert "attempt 1 of 4 failed (HTTP 503); retrying in 0.50s" in retry_lines[0]


def test_backoff_cap_and_full_jitter() -> None:
    assert [backoff_cap(n, base_delay=0.5, max_delay=3.0) for n in (1, 2, 3, 4)] == [
        0.5,
        1.0,
        2.0,
        3.0,
    ]
    assert backoff_cap(500, base_delay=0.5, max_delay=8.0) == 8.0  # no overflow
    assert full_jitter_delay(3, base_delay=0.5, max_delay=8.0, random_fraction=lambda: 0.0) == 0
    assert full_jitter_delay(3, base_delay=0.5, max_delay=8.0, random_fraction=lambda: 0.5) == 1.0
    draws = [full_jitter_delay(2, base_delay=0.5, max_delay=8.0) for _ in range(200)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert len(set(draws)) > 100  # really jittered, not a fixed delay
    with pytest.raises(ValueError):
        backoff_cap(0, base_delay=0.5, max_delay=8.0)


def test_negative_retries_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        retry(lambda: "x", retries=-1)


def test_calls_are_not_begun_once_called_off_and_only_where_called_off() -> None:
    """A tick the daemon stopped waiting for sets its event: the scale's next call (a
    retry, or the write after a slow read) is not begun; other threads' calls go on."""
    import threading

    from backends.base import calls_off_once

    called_off, attempts = threading.Event(), []

    def flaky() -> str:
        attempts.append(1)
        called_off.set()  # the deadline passes during the first attempt
        raise TimeoutError("slow")

    with calls_off_once(called_off), pytest.raises(BackendError, match="past its deadline"):
        call_with_retries(
            flaky, what="scaling ocr", retries=3, is_retryable=lambda e: True, sleep=lambda s: None
        )
    assert len(attempts) == 1
    elsewhere: list[str] = []
    with calls_off_once(called_off):
        other = threading.Thread(
            target=lambda: elsewhere.append(
                call_with_retries(lambda: "ok", what="r", retries=0, is_retryable=lambda e: False)
            )
        )
        other.start()
        other.join()
    assert elsewhere == ["ok"]
    assert call_with_retries(lambda: "ok", what="r", retries=0, is_retryable=lambda e: False)


# ---- a server that says how long to wait (Retry-After) ---------------------------------


class Throttled(Flaky):
    """A 429 or 503 whose answer carried a Retry-After header."""

    def __init__(self, retry_after: str | None) -> None:
        super().__init__("HTTP 429")
        self.retry_after = retry_after


def retry_told(operation, clock: FakeClock, **kw):
    return call_with_retries(
        operation,
        what="scaling pool gpu",
        retries=kw.pop("retries", 3),
        is_retryable=lambda e: isinstance(e, Flaky),
        describe=lambda e: "HTTP 429",
        sleep=clock.sleep,
        random_fraction=lambda: 1.0,
        retry_after=lambda e: getattr(e, "retry_after", None),
        wall=lambda: datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        **kw,
    )


def test_wait_is_the_backoff_or_the_longer_retry_after() -> None:
    assert wait_before_retry(0.5, None, None) == 0.5
    assert wait_before_retry(0.5, 3.0, None) == 3.0
    assert wait_before_retry(4.0, 1.0, 30.0) == 4.0  # the backoff is the floor
    assert wait_before_retry(0.5, 0.0, 30.0) == 0.5
    assert wait_before_retry(0.5, 20.0, 30.0) == 20.0
    assert wait_before_retry(0.5, None, 1.0) == 0.5


def test_a_wait_past_the_deadline_or_absurd_is_given_up() -> None:
    late = wait_before_retry(0.5, 30.0, 12.0)
    assert isinstance(late, GiveUp)
    assert late.why == "the server asked to wait 30 s, past the deadline (12.0 s left)"
    assert isinstance(wait_before_retry(5.0, 2.0, 4.0), GiveUp)  # the backoff crosses it
    absurd = wait_before_retry(0.5, 3600.0, None)
    assert isinstance(absurd, GiveUp)
    assert "asked to wait 3600 s, longer than a retry waits (60 s)" in absurd.why
    assert wait_before_retry(0.5, RETRY_AFTER_LIMIT_S, None) == RETRY_AFTER_LIMIT_S


def test_the_loop_waits_what_the_server_asked(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    operation, calls = failing_then("ok", [Throttled("5"), Throttled(None), Throttled("0.2")])
    caplog.set_level(logging.WARNING, logger="backends.retry")
    with due_within(30.0, clock):
        assert retry_told(operation, clock, base_delay=0.5) == "ok"
    assert calls["n"] == 4
    assert clock.sleeps == [5.0, 1.0, 2.0]  # Retry-After, then the backoff, the floor
    assert "retrying in 5.00s (the server asked for 5 s)" in caplog.text


def test_an_http_date_is_waited_until() -> None:
    clock = FakeClock()
    operation, _ = failing_then("ok", [Throttled("Mon, 02 Mar 2026 12:00:07 GMT")])
    assert retry_told(operation, clock) == "ok"
    assert clock.sleeps == [7.0]


@pytest.mark.parametrize("garbled", ["-3", "soon", "1e9", ""])
def test_a_garbled_or_negative_retry_after_leaves_the_backoff(garbled: str) -> None:
    clock = FakeClock()
    operation, _ = failing_then("ok", [Throttled(garbled)])
    assert retry_told(operation, clock) == "ok"
    assert clock.sleeps == [0.5]


def test_a_wait_that_would_cross_the_deadline_is_not_begun() -> None:
    clock = FakeClock()
    operation, calls = failing_then("never", [Throttled("2"), Throttled("20")])
    with due_within(10.0, clock), pytest.raises(BackendError) as caught:
        retry_told(operation, clock)
    assert calls["n"] == 2 and clock.sleeps == [2.0]
    assert str(caught.value) == (
        "scaling pool gpu failed on attempt 2 of 4: HTTP 429; "
        "the server asked to wait 20 s, past the deadline (8.0 s left)"
    )


def test_an_absurd_retry_after_ends_the_retries_at_once() -> None:
    clock = FakeClock()
    operation, calls = failing_then("never", [Throttled("3600")])
    with pytest.raises(BackendError, match="asked to wait 3600 s, longer than a retry waits"):
        retry_told(operation, clock)
    assert calls["n"] == 1 and clock.sleeps == []


def test_a_backoff_past_the_deadline_gives_up_at_once() -> None:
    """Before, a backoff without Retry-After was slept through past the tick's deadline
    (up to 8 s), for an attempt the deadline then refused: the pool's thread outlived its
    tick. Now it gives up, saying why."""
    late = wait_before_retry(9.0, None, 1.0)
    assert isinstance(late, GiveUp)
    assert "backoff (9.0 s) ends past the deadline (1.0 s left)" in late.why


def _unanswered_kinds() -> list[BaseException]:
    import botocore.exceptions
    import requests
    import urllib3.exceptions

    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return [
        requests.ConnectTimeout("connect timed out"),
        urllib3.exceptions.MaxRetryError(None, "/apis", refused),  # type: ignore[arg-type]
        urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"),  # type: ignore[arg-type]
        botocore.exceptions.EndpointConnectionError(endpoint_url="https://autoscaling.example"),
    ]


@pytest.mark.parametrize("error", _unanswered_kinds(), ids=lambda e: type(e).__name__)
def test_a_call_left_unanswered_is_not_made_again_by_other_pools_this_tick(
    error: BaseException,
) -> None:
    """The Kubernetes client's urllib3 errors, requests' and botocore's: once one pool's call
    to a server goes unanswered after its retries, another pool's call to it this tick
    fails at once saying why; a call to another server, or in the next tick, is made."""
    from common.tick_circuit import TickCircuit, within

    def call(operation, server: str):  # type: ignore[no-untyped-def]
        return call_with_retries(
            operation,
            what="reading",
            retries=1,
            is_retryable=lambda e: True,
            sleep=lambda s: None,
            server=server,
        )

    circuit = TickCircuit()
    with within(circuit, "ocr"), pytest.raises(BackendError):
        call(failing_then("never", [error, error])[0], "https://k8s.internal:6443")
    other, _ = failing_then("fleet", [])
    with within(circuit, "asr"), pytest.raises(BackendError) as skipped:
        call(other, "https://k8s.internal:6443")
    assert "skipped: https://k8s.internal:6443 did not answer pool ocr's call" in str(skipped.value)
    with within(circuit, "asr"):
        assert call(other, "https://nomad.internal:4646") == "fleet"
    with within(TickCircuit(), "asr"):
        assert call(other, "https://k8s.internal:6443") == "fleet"


def test_a_server_that_answers_an_error_is_asked_again_by_the_next_pool() -> None:
    """A 503 after every retry is an answer: the server is up, the next pool asks it."""
    from common.tick_circuit import TickCircuit, within

    circuit = TickCircuit()
    with within(circuit, "ocr"), pytest.raises(BackendError):
        call_with_retries(
            failing_then("never", [Flaky("503"), Flaky("503")])[0],
            what="reading",
            retries=1,
            is_retryable=lambda e: True,
            sleep=lambda s: None,
            server="https://nomad.internal:4646",
        )
    assert circuit.skipped("https://nomad.internal:4646") is None
