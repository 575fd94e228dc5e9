"""The leader lock as a Kubernetes Lease (coordination.k8s.io/v1), by client-go's rules.

Each call reads the Lease; a missing one is created holding it. Another holder's
lease is respected until it has gone unrenewed for its leaseDurationSeconds as
measured by *this* process's clock from when it last saw the record change
(client-go's observedTime), so clocks that disagree between machines cannot
cause an early takeover. Taking or renewing is a replace carrying the
resourceVersion that was read: a concurrent writer gets 409 and stays standby.
Release writes an empty holderIdentity, which a standby takes at once.
Credentials come from the Kubernetes backend's loader (kubeconfig or service
account); RBAC needs get, create and update on leases in the namespace.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3.exceptions
from kubernetes.client import CoordinationV1Api, V1Lease, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from backends.base import BackendError
from backends.kubernetes_credentials import KubernetesAccess, KubernetesConnection, connect
from backends.kubernetes_errors import (
    is_authorization_refusal,
    kubernetes_retry_after,
    status_message,
)
from backends.leases import LeaderElection, LeaderLockError, LeaseTimer
from backends.retry import GiveUp, is_transient_status, wait_asked_once

log = logging.getLogger(__name__)

Record = tuple[Any, ...]  # what a standby compares: holder, duration, renew time, transitions


def kubernetes_lock_settings(
    config: LeaderElection, env: Mapping[str, str]
) -> KubernetesConnection:
    """Credentials and namespace by the Kubernetes backend's rules."""
    settings = KubernetesAccess(
        namespace=config.namespace,
        context=config.context,
        kubeconfig=config.kubeconfig,
        in_cluster=config.in_cluster,
        timeout=config.timeout,
        retries=0,
        verify_tls=config.verify_tls,
        allow_insecure=config.allow_insecure,
    )
    return connect(settings, env)


class KubernetesLease:
    """One Lease object; one read and at most one write per call."""

    def __init__(
        self,
        connect_to: Callable[[], KubernetesConnection],
        name: str,
        *,
        ttl_s: float,
        identity: str,
        timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect_to = connect_to
        self._sleep = sleep
        self._connection: KubernetesConnection | None = None
        self.name = name
        self.identity = identity
        self.ttl_s = ttl_s
        # leaseDurationSeconds is whole seconds and must not be under the TTL this holder
        # counts: cut short (1.9 s written as 1), the standby took over while it still wrote
        self._duration_s = math.ceil(ttl_s)
        self.timer = LeaseTimer(ttl_s, monotonic)
        self._wall = wall
        self._timeout = (timeout_s, timeout_s)
        self._observed: Record | None = None
        self._observed_at = 0.0
        self._holder: str | None = None

    def __repr__(self) -> str:
        return f"KubernetesLease({self.name!r})"

    @property
    def connection(self) -> KubernetesConnection:
        if self._connection is None:
            try:
                self._connection = self._connect_to()
            except BackendError as error:
                raise LeaderLockError(f"leader lease: {error}") from None
        return self._connection

    def is_held(self, margin: float = 0.0) -> bool:
        return self.timer.is_held(margin)

    def holder(self) -> str | None:
        return self._holder

    def peek(self) -> str | None:
        lease = self._call("get", self._read)
        spec = lease.spec if lease is not None else None
        return spec.holder_identity if spec is not None else None

    def acquire_or_renew(self) -> bool:
        lease = self._call("get", self._read)
        if lease is None:
            return self._create()
        spec = lease.spec or V1LeaseSpec()
        now = self.timer.monotonic()
        record: Record = (
            spec.holder_identity,
            spec.lease_duration_seconds,
            spec.renew_time,
            spec.lease_transitions,
        )
        if record != self._observed:
            self._observed, self._observed_at = record, now
        self._holder = spec.holder_identity or None
        duration = spec.lease_duration_seconds or self.ttl_s
        ours = spec.holder_identity == self.identity
        if spec.holder_identity and not ours and now < self._observed_at + duration:
            self.timer.lost()
            return False
        stamp = self._wall()
        taken = V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self._duration_s,
            acquire_time=spec.acquire_time if ours and spec.acquire_time else stamp,
            renew_time=stamp,
            lease_transitions=(spec.lease_transitions or 0) + (0 if ours else 1),
        )
        if not self._replace(lease, taken):
            return False
        if not ours:
            log.info("took the leader lease %s as %s", self.name, self.identity)
        return True

    def release(self) -> None:
        if not self.timer.is_held():
            return
        self.timer.lost()
        try:
            lease = self._call("get", self._read)
            spec = lease.spec if lease is not None else None
            if spec is None or spec.holder_identity != self.identity:
                return
            stamp = self._wall()
            freed = V1LeaseSpec(
                holder_identity=None,
                lease_duration_seconds=1,
                acquire_time=stamp,
                renew_time=stamp,
                lease_transitions=spec.lease_transitions,
            )
            self._replace(lease, freed)
            log.info("released the leader lease %s", self.name)
        except LeaderLockError as error:
            log.warning("releasing the leader lease failed (it expires by itself): %s", error)

    # ---- API calls -------------------------------------------------------------------

    def _api(self) -> CoordinationV1Api:
        return CoordinationV1Api(self.connection.api_client)

    def _read(self) -> V1Lease | None:
        try:
            return self._api().read_namespaced_lease(
                self.name, self.connection.namespace, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _create(self) -> bool:
        stamp = self._wall()
        spec = V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self._duration_s,
            acquire_time=stamp,
            renew_time=stamp,
            lease_transitions=0,
        )
        body = V1Lease(metadata=V1ObjectMeta(name=self.name), spec=_on_the_wire(spec))
        started = self.timer.monotonic()
        namespace = self.connection.namespace
        try:
            self._call(
                "create",
                lambda: self._api().create_namespaced_lease(
                    namespace, body, _request_timeout=self._timeout
                ),
            )
        except _Conflict:
            return False  # another daemon created it first; read it next tick
        self.timer.renewed(started)
        self._holder = self.identity
        log.info("created the leader lease %s holding it as %s", self.name, self.identity)
        return True

    def _replace(self, lease: V1Lease, spec: V1LeaseSpec) -> bool:
        """Write `spec` only over the version read; False when someone wrote in between."""
        metadata = V1ObjectMeta(
            name=self.name,
            namespace=self.connection.namespace,
            resource_version=lease.metadata.resource_version if lease.metadata else None,
        )
        body = V1Lease(metadata=metadata, spec=_on_the_wire(spec))
        started = self.timer.monotonic()
        try:
            self._call(
                "update",
                lambda: self._api().replace_namespaced_lease(
                    self.name, self.connection.namespace, body, _request_timeout=self._timeout
                ),
            )
        except _Conflict:
            self.timer.lost()
            return False
        if spec.holder_identity == self.identity:
            self.timer.renewed(started)
            self._holder = self.identity
        self._observed = (
            spec.holder_identity,
            spec.lease_duration_seconds,
            spec.renew_time,
            spec.lease_transitions,
        )
        self._observed_at = started
        return True

    def _call(self, verb: str, operation: Callable[[], Any]) -> Any:
        """One request; one more only where a 429 or 503 said when (backends.retry), and
        that wait ends within the lock's own deadline, or after a 401 with the credentials
        loaded again (a rotated token, as KubernetesWorkload does)."""
        for attempt in (1, 2):
            try:
                return operation()
            except ApiException as error:
                if error.status == 409:
                    raise _Conflict() from None
                if error.status == 401 and attempt == 1:
                    self._connection = None
                    continue
                text = self._describe(verb, error)
                transient = attempt == 1 and is_transient_status(error.status or 0)
                wait = wait_asked_once(error, kubernetes_retry_after) if transient else None
                if wait is None or isinstance(wait, GiveUp):
                    raise LeaderLockError(text + (f"; {wait.why}" if wait else "")) from None
                log.warning("%s; retrying in %.2fs, as the server asked", text, wait)
                self._sleep(wait)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                raise LeaderLockError(self._describe(verb, error)) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _describe(self, verb: str, error: BaseException) -> str:
        connection = self.connection
        where = f"lease {self.name!r} in namespace {connection.namespace!r}"
        if isinstance(error, ApiException):
            status = error.status or 0
            text = f"Kubernetes answered {verb} on {where}: HTTP {status} {status_message(error)}"
            if status == 401:
                text += f" (the credentials of {connection.identity}: expired or wrong token?)"
            if status == 403 and is_authorization_refusal(status_message(error)):
                text += (
                    f" ({connection.identity} needs RBAC get, create and update on leases "
                    "in API group coordination.k8s.io)"
                )
        else:
            text = f"cannot reach {connection.host} to {verb} {where} ({type(error).__name__})"
        return connection.redact(text)


def _on_the_wire(spec: V1LeaseSpec) -> V1LeaseSpec:
    """The spec with its MicroTime fields written as the API server parses them: Go's
    RFC3339Micro layout, six fractional digits always (k8s.io/apimachinery micro_time.go).
    The client would write datetime.isoformat(), which drops the fraction on a whole
    second: a 400 for that write."""
    return V1LeaseSpec(
        holder_identity=spec.holder_identity,
        lease_duration_seconds=spec.lease_duration_seconds,
        acquire_time=_micro_time(spec.acquire_time),
        renew_time=_micro_time(spec.renew_time),
        lease_transitions=spec.lease_transitions,
    )


def _micro_time(moment: datetime | None) -> Any:
    if moment is None:
        return None
    if moment.tzinfo is None:  # the client reads the server's times with their zone
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Conflict(Exception):
    """409: the Lease changed (or appeared) since it was read."""
