"""The leader lock as a Nomad variable lock (Nomad 1.7+, "Variable Locks - HTTP API").

PUT /v1/var/:path?lock-acquire with Lock{TTL, LockDelay} takes the lock (409 while
someone holds it, or during the lock delay after it expired); ?lock-renew with the
lock ID keeps it; ?lock-release gives it up at once. The variable's items name the
holder, so a standby can say who is active. Connection settings, TLS and the
token are those of the Nomad backends (backends.nomad_connection), and
the token never reaches a message (errors are re-worded from status codes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import nomad.api
import requests
from nomad.api.exceptions import BaseNomadException

from backends.leases import LeaderElection, LeaderLockError, LeaseTimer
from backends.nomad_connection import (
    NomadAccess,
    NomadConnection,
    nomad_connection,
    requester_settings,
)
from backends.nomad_errors import nomad_retry_after, response_of
from backends.nomad_job import describe_nomad_error, redact
from backends.retry import (
    GiveUp,
    full_jitter_delay,
    is_transient_status,
    wait_asked_once,
    wait_before_retry,
)
from common.deadline import seconds_left
from common.secrets import shorten

log = logging.getLogger(__name__)

LOCK_DELAY_S = 5  # after a holder's TTL lapses, Nomad keeps the lock this much longer
HOLDER_ITEM = "holder"


def nomad_lock_connection(config: LeaderElection, env: Mapping[str, str]) -> NomadConnection:
    """The backends' connection rules, read from the leader_election block."""
    settings = NomadAccess(
        namespace=config.namespace or "default",
        address=config.address,
        region=config.region,
        token_env=config.token_env,
        token_file=config.token_file,
        timeout=config.timeout,
        retries=0,
        verify_tls=config.verify_tls,
    )
    return nomad_connection(settings, env)


def go_duration(seconds: float) -> str:
    """A duration as Go writes it ("15s", "1m30s"), which Nomad's Lock TTL expects."""
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class NomadVariableLock:
    """A lock on one Nomad variable; one request per call, no retries (the next tick retries)."""

    def __init__(
        self,
        connection: NomadConnection,
        path: str,
        *,
        ttl_s: float,
        identity: str,
        lock_delay_s: float = LOCK_DELAY_S,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self._sleep = sleep
        self.path = path
        self.identity = identity
        self.ttl_s = ttl_s
        self.lock_delay_s = lock_delay_s
        self.timer = LeaseTimer(ttl_s, monotonic)
        self._lock_id: str | None = None
        self._holder: str | None = None
        self._variables = nomad.api.Variable(**requester_settings(connection))

    def __repr__(self) -> str:
        return f"NomadVariableLock({self.path!r} at {self.connection.address})"

    def acquire_or_renew(self) -> bool:
        if self._lock_id is not None and self._renew():
            return True
        return self._acquire()

    def is_held(self, margin: float = 0.0) -> bool:
        return self._lock_id is not None and self.timer.is_held(margin)

    def holder(self) -> str | None:
        return self._holder

    def peek(self) -> str | None:
        try:
            return _holder_named(self._call("read"))
        except _Answered as answer:
            if answer.status == 404:
                return None  # no daemon has taken it yet
            raise LeaderLockError(answer.text) from None

    def release(self) -> None:
        lock_id, self._lock_id = self._lock_id, None
        self.timer.lost()
        if lock_id is None:
            return
        try:
            self._call("lock-release", {"Lock": {"ID": lock_id}})
            log.info("released the leader lock %s", self.path)
        except LeaderLockError as error:
            log.warning("releasing the leader lock failed (it expires by itself): %s", error)

    # ---- steps -----------------------------------------------------------------------

    def _renew(self) -> bool:
        """True when renewed; False when Nomad says the lock is no longer ours. A 429 or
        5xx while the lease holds (Nomad's 500 "No cluster leader" during an election, a
        proxy's 502) cannot mean it is lost: nobody can take it before its TTL. Tried once
        more after a backoff, within the lock's deadline; then a LeaderLockError, the lock
        kept (dropped, its re-acquire met this lease's own 409: nobody led until the TTL
        and the lock delay had passed)."""
        started = self.timer.monotonic()
        body = {"Lock": {"ID": self._lock_id}}
        try:
            try:
                self._call("lock-renew", body)
            except _Answered as answer:
                if not (is_transient_status(answer.status) and self.timer.is_held()):
                    raise
                self._wait_to_renew_again(answer)
                self._call("lock-renew", body)
        except _Answered as answer:
            if is_transient_status(answer.status) and self.timer.is_held():
                raise LeaderLockError(answer.text) from None
            log.warning("the leader lock %s was lost (%s)", self.path, answer.text)
            self._lock_id = None
            self.timer.lost()
            return False
        self.timer.renewed(started)
        self._holder = self.identity
        return True

    def _wait_to_renew_again(self, answer: _Answered) -> None:
        """The backoff before a renew's second try; LeaderLockError past the deadline."""
        wait = wait_before_retry(
            full_jitter_delay(1, base_delay=0.5, max_delay=8.0), None, seconds_left()
        )
        if isinstance(wait, GiveUp):
            raise LeaderLockError(answer.text) from None
        log.warning("%s; renewing again in %.2fs", answer.text, wait)
        self._sleep(wait)

    def _acquire(self) -> bool:
        started = self.timer.monotonic()
        body = {
            "Items": {HOLDER_ITEM: self.identity, "since": datetime.now(UTC).isoformat()},
            "Lock": {"TTL": go_duration(self.ttl_s), "LockDelay": go_duration(self.lock_delay_s)},
        }
        try:
            answer = self._call("lock-acquire", body)
        except _Answered as refused:
            if refused.status != 409:
                raise LeaderLockError(refused.text) from None
            self._holder = _holder_named(refused.body)
            return False
        lock = answer.get("Lock") if isinstance(answer, dict) else None
        lock_id = lock.get("ID") if isinstance(lock, dict) else None
        if not isinstance(lock_id, str) or not lock_id:
            raise LeaderLockError(
                f"Nomad at {self.connection.address} did not return a lock for variable "
                f"{self.path!r} (variable locks need Nomad 1.7 or later)"
            )
        self._lock_id = lock_id
        self._holder = self.identity
        self.timer.renewed(started)
        log.info("acquired the leader lock %s as %s", self.path, self.identity)
        return True

    def _call(self, operation: str, body: dict[str, Any] | None = None) -> Any:
        """One request, and one more only where a proxy's 429 or 503 said when (within the
        lock's own deadline: backends.retry); _Answered for any other HTTP error answer."""
        try:
            return self._request(operation, body)
        except _Answered as answer:
            error = answer.error if is_transient_status(answer.status) else None
            wait = None if error is None else wait_asked_once(error, nomad_retry_after)
            if isinstance(wait, GiveUp):
                raise LeaderLockError(f"{answer.text}; {wait.why}") from None
            if wait is None:
                raise
            log.warning("%s; retrying in %.2fs, as the server asked", answer.text, wait)
        self._sleep(wait)
        return self._request(operation, body)

    def _request(self, operation: str, body: dict[str, Any] | None) -> Any:
        """One request: a GET of the variable for "read", else a PUT of `body` with the lock
        operation. _Answered for any HTTP error answer, LeaderLockError when unreachable."""
        namespace = {"namespace": self.connection.namespace}
        try:
            if body is None:
                response = self._variables.request(self.path, method="get", params=namespace)
            else:
                response = self._variables.request(
                    f"{self.path}?{operation}",
                    method="put",
                    params=namespace,
                    json={"Namespace": self.connection.namespace, "Path": self.path, **body},
                )
            return response.json()
        except BaseNomadException as error:
            response = response_of(error)
            if response is None:
                raise LeaderLockError(self._describe(error, operation)) from None
            raise _Answered(
                response.status_code,
                _json_or_none(response),
                self._describe(error, operation),
                error,
            ) from None
        except (requests.RequestException, ValueError) as error:
            raise LeaderLockError(self._describe(error, operation)) from None

    def _describe(self, error: BaseException, operation: str) -> str:
        response = response_of(error)
        if response is not None and response.status_code == 403:
            text = (
                f"Nomad refused {operation} on variable {self.path!r}: the token from "
                f"{self.connection.credential.source} needs variables write on that path in "
                f"namespace {self.connection.namespace!r} (HTTP 403)"
            )
        elif response is not None:
            body = shorten(" ".join(response.text.split()), 200)
            text = f"Nomad answered {operation} on variable {self.path!r}: HTTP "
            text += f"{response.status_code} {body}".rstrip()
        else:
            text = f"{operation}: " + describe_nomad_error(error, self.connection, "")
        return redact(text, self.connection.token)


class _Answered(Exception):
    """Nomad answered with an error status (the lock is someone else's, or gone)."""

    def __init__(
        self, status: int, body: Any, text: str, error: BaseException | None = None
    ) -> None:
        super().__init__(text)
        self.status, self.body, self.text, self.error = status, body, text, error


def _holder_named(body: Any) -> str | None:
    """The holder a variable's Items name, if the answer has one."""
    items = body.get("Items") if isinstance(body, dict) else None
    holder = items.get(HOLDER_ITEM) if isinstance(items, dict) else None
    return holder if isinstance(holder, str) else None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
