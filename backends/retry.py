"""Retries with capped exponential backoff and full jitter, shared by every backend.

Fleet APIs fail in passing (a leader election, a 503 from a load balancer, a
dropped connection); a tick should ride over those, but never retry what cannot
succeed (a refused token, a missing job). Each backend says which errors are
worth another try and how to describe one without leaking secrets; this module
owns the loop, the delays and the final error, so no backend copies them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from backends.base import BackendError, calls_are_off
from common.deadline import DeadlineExceeded, call_within

T = TypeVar("T")

log = logging.getLogger(__name__)


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
) -> T:
    """Run `operation`, retrying up to `retries` more times on retryable errors.

    Raises BackendError naming `what`, the attempts made and `describe(error)`;
    the original exception is not chained (its text or request may carry a
    secret), so callers log only what `describe` chose to say. With `deadline_s`, each
    attempt must end within it (common.deadline: a server dripping its answer counts as
    a timeout, and is retried like one).
    """
    if retries < 0:
        raise ValueError("retries cannot be negative")
    attempts_allowed = retries + 1
    attempt = 0
    while True:
        attempt += 1
        if calls_are_off():
            raise BackendError(f"{what}: not attempted, the tick is past its deadline")
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
            if attempt >= attempts_allowed:
                raise BackendError(
                    f"{what} failed after {attempt} attempt{'s' if attempt > 1 else ''}: {cause}"
                ) from None
            delay = full_jitter_delay(
                attempt,
                base_delay=base_delay,
                max_delay=max_delay,
                random_fraction=random_fraction,
            )
            log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.2fs",
                what,
                attempt,
                attempts_allowed,
                cause,
                delay,
            )
            sleep(delay)


def _said_plainly(describe: Callable[[BaseException], str]) -> Callable[[BaseException], str]:
    """A missed deadline in its own words (they name no secret); other errors as before."""

    def said(error: BaseException) -> str:
        return str(error) if isinstance(error, DeadlineExceeded) else describe(error)

    return said
