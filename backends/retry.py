"""Retries with capped exponential backoff and full jitter, shared by every backend.

Fleet APIs fail in passing (a leader election, a 503 from a load balancer, a
dropped connection); a tick should ride over those, but never retry what cannot
succeed (a refused token, a missing job). Each backend says which errors are
worth another try, how to describe one without leaking secrets, and what its
Retry-After header said; this module owns the loop, the delays and the final error, so
no backend copies them.

A server that says how long to wait (a 429 or 503 with Retry-After) is waited at least
that long: retrying sooner adds to its overload and is likely refused again. The wait
never outlasts the deadline the call is under (common.deadline.seconds_left: a pool's
tick, the leader lock's own): a wait that would is not begun, and the error says so.

A call given its `server` that finally fails unanswered (timed out, refused) opens the
tick's circuit for that server, and calls to it from the other pools this tick are not
made (common.tick_circuit): a blackholed server costs one pool's timeouts, not each one's.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import requests
import urllib3.exceptions

from backends.base import BackendError, calls_are_off
from common.deadline import DeadlineExceeded, call_within, seconds_left
from common.retry_after import retry_after_seconds
from common.tick_circuit import skipped, unanswered

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRY_AFTER_LIMIT_S = 60.0
"""A Retry-After longer than this ends the retries at once: a server asking for an hour
is down for maintenance, not slowing us down, and no tick should hold on for it."""


def describe_safely(error: BaseException) -> str:
    """The default description: a BackendError's own (already safe) text, else only the type.

    An arbitrary exception's text can quote a request, a URL or a header; a
    backend that knows its client passes a richer, sanitised `describe`.
    """
    if isinstance(error, BackendError):
        return str(error)
    return type(error).__name__


def is_transient_status(status: int) -> bool:
    """An HTTP answer worth another try: the server is rate limiting (429) or failing
    (5xx). Any other 4xx says the request itself cannot succeed."""
    return status == 429 or status >= 500


def backoff_cap(retry_number: int, *, base_delay: float, max_delay: float) -> float:
    """Upper bound of the wait before retry `retry_number` (1 for the first retry)."""
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    # Exponent capped so that a large retry count cannot overflow a float.
    return min(max_delay, base_delay * 2 ** min(retry_number - 1, 62))


def full_jitter_delay(
    retry_number: int,
    *,
    base_delay: float,
    max_delay: float,
    random_fraction: Callable[[], float] = random.random,
) -> float:
    """A delay drawn uniformly from [0, cap): spreads retries from many daemons apart."""
    cap = backoff_cap(retry_number, base_delay=base_delay, max_delay=max_delay)
    return cap * random_fraction()


@dataclass(frozen=True)
class GiveUp:
    """No retry: the server asked for a wait that cannot be given; `why` says so."""

    why: str


def wait_before_retry(
    backoff_s: float,
    asked_s: float | None,
    time_left_s: float | None,
    limit_s: float = RETRY_AFTER_LIMIT_S,
) -> float | GiveUp:
    """Seconds to wait before the next attempt: the jittered backoff, or the server's
    Retry-After (`asked_s`) where that is longer; GiveUp where the server asked for more
    than `limit_s`, or where the wait would end past the deadline (`time_left_s`; None
    under no deadline): slept through, the pool's thread outlived its tick for an attempt
    the deadline then refused."""
    if asked_s is not None and asked_s > limit_s:
        return GiveUp(
            f"the server asked to wait {asked_s:g} s, longer than a retry waits ({limit_s:g} s)"
        )
    wait = backoff_s if asked_s is None else max(backoff_s, asked_s)
    if time_left_s is not None and wait >= time_left_s:
        said = (
            f"no time for another attempt: the backoff ({backoff_s:.1f} s) ends"
            if asked_s is None
            else f"the server asked to wait {asked_s:g} s,"
        )
        return GiveUp(f"{said} past the deadline ({max(time_left_s, 0.0):.1f} s left)")
    return wait


def wait_asked_once(
    error: BaseException,
    retry_after: Callable[[BaseException], str | None],
    *,
    random_fraction: Callable[[], float] = random.random,
    wall: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> float | GiveUp | None:
    """For a caller of one attempt (the leader lock: the next tick tries again): the wait
    before one more try where the failed answer said when to come back (a Retry-After,
    the backoff as its floor); None where it said nothing (no retry, as before); GiveUp
    where that wait is over the limit or past the deadline the call is under."""
    asked = retry_after_seconds(retry_after(error), wall())
    if asked is None:
        return None
    backoff = full_jitter_delay(1, base_delay=0.5, max_delay=8.0, random_fraction=random_fraction)
    return wait_before_retry(backoff, asked, seconds_left())


def did_not_answer(error: BaseException) -> bool:
    """The server sent no answer: the call timed out, or could not connect or was cut off
    (a blackhole, a refusal), through requests (python-nomad's wrapping too), urllib3
    (the Kubernetes client) or botocore. A TLS failure is an answer of a kind: not one."""
    cause = getattr(error, "nomad_resp", None)  # python-nomad's wrapping of requests' error
    error = cause if isinstance(cause, BaseException) else error
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return False
    unanswered_kinds: tuple[type[BaseException], ...] = (
        TimeoutError,  # a missed deadline (common.deadline), a socket's own
        ConnectionError,
        requests.Timeout,
        requests.ConnectionError,
        urllib3.exceptions.TimeoutError,  # with NewConnectionError (refused, DNS)
        urllib3.exceptions.ProtocolError,
    )
    botocore = sys.modules.get("botocore.exceptions")  # only loaded where AWS is used
    if botocore is not None:
        if isinstance(error, botocore.SSLError):
            return False
        unanswered_kinds += (botocore.ConnectionError, botocore.ConnectionClosedError)
    return isinstance(error, unanswered_kinds)


def no_retry_after(error: BaseException) -> str | None:
    """The default: the error carries no Retry-After (a backend whose server sends none)."""
    return None


def call_with_retries(
    operation: Callable[[], T],
    *,
    what: str,
    retries: int,
    is_retryable: Callable[[BaseException], bool],
    describe: Callable[[BaseException], str] = describe_safely,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
    random_fraction: Callable[[], float] = random.random,
    deadline_s: float | None = None,
    retry_after: Callable[[BaseException], str | None] = no_retry_after,
    wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    server: str | None = None,
) -> T:
    """Run `operation`, retrying up to `retries` more times on retryable errors.

    Raises BackendError naming `what`, the attempts made and `describe(error)`;
    the original exception is not chained (its text or request may carry a
    secret), so callers log only what `describe` chose to say. With `deadline_s`, each
    attempt must end within it (common.deadline: a server dripping its answer counts as
    a timeout, and is retried like one). `retry_after(error)` is the Retry-After header
    the failed answer carried, if any (read against `wall` where it is a date); the wait
    before the next attempt is wait_before_retry's. `server` (common.tick_circuit's
    server_of): not called where another pool's call to it went unanswered this tick, and
    where this one does, the others are not.
    """
    if retries < 0:
        raise ValueError("retries cannot be negative")
    attempts_allowed = retries + 1
    attempt = 0
    while True:
        attempt += 1
        if calls_are_off():
            raise BackendError(f"{what}: not attempted, the tick is past its deadline")
        why_not = skipped(server)
        if why_not is not None:
            raise BackendError(f"{what}: {why_not}")
        try:
            if deadline_s is None:
                return operation()
            return call_within(deadline_s, operation, what)
        except Exception as error:
            late = isinstance(error, DeadlineExceeded)
            if late:
                describe = _said_plainly(describe)
            if not late and not is_retryable(error):
                if isinstance(error, BackendError):
                    raise  # already worded for people by the backend
                cause = describe(error)
                where = "" if attempt == 1 else f" on attempt {attempt} of {attempts_allowed}"
                raise BackendError(f"{what} failed{where}: {cause}") from None
            cause = describe(error)
            silent = late or did_not_answer(error)  # the last such attempt opens the circuit
            if attempt >= attempts_allowed:
                unanswered(server if silent else None)
                raise BackendError(
                    f"{what} failed after {attempt} attempt{'s' if attempt > 1 else ''}: {cause}"
                ) from None
            backoff = full_jitter_delay(
                attempt,
                base_delay=base_delay,
                max_delay=max_delay,
                random_fraction=random_fraction,
            )
            asked = None if late else retry_after_seconds(retry_after(error), wall())
            delay = wait_before_retry(backoff, asked, seconds_left())
            if isinstance(delay, GiveUp):
                unanswered(server if silent else None)
                raise BackendError(
                    f"{what} failed on attempt {attempt} of {attempts_allowed}: {cause}; "
                    f"{delay.why}"
                ) from None
            log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.2fs%s",
                what,
                attempt,
                attempts_allowed,
                cause,
                delay,
                "" if asked is None else f" (the server asked for {asked:g} s)",
            )
            sleep(delay)


def _said_plainly(describe: Callable[[BaseException], str]) -> Callable[[BaseException], str]:
    """A missed deadline in its own words (they name no secret); other errors as before."""

    def said(error: BaseException) -> str:
        return str(error) if isinstance(error, DeadlineExceeded) else describe(error)

    return said
