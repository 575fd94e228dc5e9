"""A Kubernetes Deployment or StatefulSet as a fleet, through the official `kubernetes` client.

The count is read from and written to the workload's scale subresource
(autoscaling/v1 Scale), as `kubectl scale` and the HorizontalPodAutoscaler do,
so the autoscaler needs only `get`/`patch` on `deployments/scale` (or
`statefulsets/scale`) and `get` on the workload, whose status gives readiness.

Credentials come from the service account or a kubeconfig, through a dedicated
ApiClient (backends.kubernetes_credentials).

Writes carry the resourceVersion that was read, so a change made by someone
else in between is refused by the API server (409) instead of silently
overwritten: the count is then read again and the write repeated only if
nobody changed the replica count meanwhile. The bearer token and client key
never reach a log line or an error: the client's ApiException prints headers
and bodies, so failures are re-worded from status codes and Status messages
(backends.kubernetes_wording).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from backends.base import (
    Backend,
    BackendError,
    ChangedByOthersError,
    FleetState,
    require_count,
)
from backends.kubernetes_credentials import (
    SERVICE_ACCOUNT_DIR,
    KubernetesAccess,
    KubernetesConnection,
    KubernetesName,
    connect,
)
from backends.kubernetes_errors import (
    is_retryable_kubernetes_error,
    kubernetes_retry_after,
    status_message,
)
from backends.kubernetes_hpa import WatchesHpas
from backends.kubernetes_readings import ScaleReading, ready_replicas, scale_reading
from backends.kubernetes_rollout import list_pods, pods_stuck, progress_deadline_s, workload_stuck
from backends.kubernetes_wording import Target, describe_kubernetes_error
from backends.retry import call_with_retries
from backends.settings import Fleet
from common.clock import Clock
from common.deadline import call_within, whole_answer_s
from common.tick_circuit import server_of


class KubernetesBackend(KubernetesAccess):
    """A Deployment or StatefulSet scaled through its scale subresource."""

    kind: Literal["kubernetes"]
    workload: Literal["deployment", "statefulset"] = "deployment"
    name: KubernetesName

    def fleet(self) -> Fleet:
        where = (self.in_cluster, self.kubeconfig, self.context, self.namespace)
        return Fleet(f"{self.workload} {self.name!r}", ("kubernetes", *where))

    def connect(
        self,
        clock: Clock,
        env: Mapping[str, str],
        state_path: Path | None,
        boot_time: timedelta | None = None,
    ) -> Backend:
        return KubernetesWorkload(self, env=env)


log = logging.getLogger(__name__)

REASON_ANNOTATION = "gpu-autoscaler/last-scale-reason"
_REASON_LIMIT = 1024


# ---- the adapter ----------------------------------------------------------------------


class KubernetesWorkload(WatchesHpas):
    """A Deployment or StatefulSet, scaled through its scale subresource."""

    name = "kubernetes"

    def __init__(
        self,
        config: KubernetesBackend,
        env: Mapping[str, str] = os.environ,
        sleep: Callable[[float], None] = time.sleep,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> None:
        self.config = config
        self._env = dict(env)
        self._sleep = sleep
        self._service_account_dir = service_account_dir
        self._connection: KubernetesConnection | None = None
        self._annotate = True
        self._list_pods = True
        self._pods_stuck: str | None = None  # what the last pod list said
        seconds = config.timeout.total_seconds()
        self._timeout = (seconds, seconds)  # the client ignores a bare float

    def __repr__(self) -> str:
        return f"KubernetesWorkload({self.config.workload} {self.config.name!r})"

    @property
    def connection(self) -> KubernetesConnection:
        """Credentials load on first use, so building a backend does no I/O."""
        if self._connection is None:
            self._connection = connect(self.config, self._env, self._service_account_dir)
        return self._connection

    @property
    def target(self) -> Target:
        return Target(self.config.workload, self.config.name, self.connection.namespace)

    def check(self) -> None:
        """Credentials load, the API answers, the workload exists and can be read."""
        self.read()

    def read(self) -> FleetState:
        desired = self._call(self._read_scale, what=f"reading the scale of {self.target}")
        workload = self._call(self._read_workload, what=f"reading {self.target}")
        ready = ready_replicas(workload, self.target)
        pending = max(desired.replicas - ready, 0)
        self._pods_stuck = self._pods_stuck if pending else None
        stuck = self._stuck(workload, desired.selector) if pending else None
        return FleetState(desired=desired.replicas, ready=ready, pending=pending, stuck=stuck)

    def scale(self, desired: int, reason: str) -> str | None:
        require_count(desired)
        first = self._call(self._read_scale, what=f"reading the scale of {self.target}")
        if first.replicas == desired:
            log.debug("%s already at %d replicas; nothing to write", self.target, desired)
            return None
        log.info("%s: scaling %d -> %d replicas (%s)", self.target, first.replicas, desired, reason)
        attempts = 0

        def write() -> int | None:
            nonlocal attempts
            attempts += 1
            current = first if attempts == 1 else self._read_scale()
            if current.replicas == desired:
                return desired  # an earlier attempt landed after all
            if current.replicas != first.replicas:
                raise ChangedByOthersError(
                    f"{self.target} was scaled to {current.replicas} by someone else while "
                    f"the autoscaler was scaling {first.replicas} -> {desired}; not overriding it"
                )
            return self._patch_scale(desired, current.resource_version)

        kept = self._call(write, what=f"scaling {self.target} to {desired}", writing=True)
        self._record_reason(reason)
        if kept == desired:
            return None
        note = (
            f"asked for {desired} replicas, the API server set {kept} (an admission webhook?)"
            if kept is not None
            else f"asked for {desired} replicas; the answer to the write gave no count"
        )
        log.warning("%s: %s", self.target, note)
        return note

    # ---- API calls (each one request; retries live in _call) ----------------------------

    def _api(self, verb: str, *, scale: bool = False) -> Callable[..., Any]:
        """E.g. AppsV1Api.patch_namespaced_stateful_set_scale for ("patch", scale=True)."""
        from kubernetes.client import AppsV1Api

        kind = "deployment" if self.config.workload == "deployment" else "stateful_set"
        method = f"{verb}_namespaced_{kind}{'_scale' if scale else ''}"
        return getattr(AppsV1Api(self.connection.api_client), method)

    def _read_scale(self) -> ScaleReading:
        return scale_reading(self._read_json(scale=True), self.target)

    def _read_workload(self) -> Any:
        workload = self._read_json(scale=False)
        ready_replicas(workload, self.target)  # not one: an error, within the retries
        return workload

    def _stuck(self, workload: Any, selector: str | None) -> str | None:
        """Why pending replicas do not come (backends.kubernetes_rollout): the workload's
        conditions, else its pods (one list). Best effort: a list that fails is logged
        (a 403 once: it is not asked again), the read stands and the last list's verdict
        with it (a throttled list is no sign the pods came)."""
        from kubernetes.client.exceptions import ApiException

        stuck = workload_stuck(workload)
        if stuck is not None or selector is None or not self._list_pods:
            return stuck
        t, timeout = self.target, self._timeout
        try:
            pods, now = call_within(
                whole_answer_s(self.config.timeout.total_seconds()),
                lambda: list_pods(self.connection.api_client, t.namespace, selector, timeout),
                f"listing the pods of {t}",
            )
        except Exception as error:
            denied = isinstance(error, ApiException) and error.status == 403
            self._list_pods = self._list_pods and not denied
            why = describe_kubernetes_error(
                error, self.connection, t, writing=False, timeout_s=timeout[1]
            )
            if denied:
                why = (
                    f"{self.connection.redact(status_message(error))} (it needs RBAC list on pods)"
                )
            log.warning(
                "%s: its pods could not be listed to see why replicas are pending: %s", t, why
            )
            return self._pods_stuck if self._list_pods else None
        self._pods_stuck = pods_stuck(pods, now, progress_deadline_s(workload))
        return self._pods_stuck

    def _read_json(self, *, scale: bool) -> Any:
        """The GET's answer as the server wrote it (None where it is not JSON): counts are
        checked on it, not on the model the client would have coerced them into."""
        t = self.target
        answer = self._api("read", scale=scale)(
            t.name, t.namespace, _request_timeout=self._timeout, _preload_content=False
        )
        try:
            return json.loads(answer.data)
        except ValueError:  # an HTML page, a body cut short
            return None
        finally:
            answer.release_conn()  # unread by the client's model: back to the pool by hand

    def _patch_scale(self, replicas: int, resource_version: str | None) -> int | None:
        """The replicas the API server kept, as its answer says (admission may change a
        write); None where the answer is no Scale."""
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}  # optimistic lock
        t = self.target
        answer = self._api("patch", scale=True)(
            t.name, t.namespace, body, _request_timeout=self._timeout, _preload_content=False
        )
        try:
            return scale_reading(json.loads(answer.data), t).replicas
        except (ValueError, BackendError):  # BackendError: not a Scale
            return None
        finally:
            answer.release_conn()

    def _record_reason(self, reason: str) -> None:
        """Best effort: an annotation on the workload saying why; a refusal never fails a scale."""
        from kubernetes.client.exceptions import ApiException

        if not self._annotate:
            return
        t = self.target
        body = {"metadata": {"annotations": {REASON_ANNOTATION: reason[:_REASON_LIMIT]}}}
        patch = self._api("patch")
        try:  # within the total deadline every call gets: a slow answer must not hold a tick
            call_within(
                whole_answer_s(self.config.timeout.total_seconds()),
                lambda: patch(t.name, t.namespace, body, _request_timeout=self._timeout),
                f"recording the reason on {t}",
            )
        except Exception as error:
            if isinstance(error, ApiException) and error.status in (403, 404):
                self._annotate = False  # not allowed here: stop asking every scale
            log.warning(
                "%s scaled, but recording the reason annotation failed: %s",
                t,
                describe_kubernetes_error(
                    error, self.connection, t, writing=True, timeout_s=self._timeout[1]
                ),
            )

    def _call(self, operation: Callable[[], Any], *, what: str, writing: bool = False) -> Any:
        """With retries; a 401 loads the credentials again and tries once more: the client
        reads a kubeconfig's token, its tokenFile and an exec plugin without expiry only
        when it loads them, so a rotated one was refused until the daemon restarted."""
        from kubernetes.client.exceptions import ApiException

        refused = False

        def watched() -> Any:
            nonlocal refused
            try:
                return operation()
            except ApiException as error:
                refused = error.status == 401
                raise

        try:
            return self._call_with_retries(watched, what=what, writing=writing)
        except BackendError:
            if not refused:
                raise
        log.info("%s: credentials refused (401); loading them again", what)
        self._connection = None
        return self._call_with_retries(operation, what=what, writing=writing)

    def _call_with_retries(self, operation: Callable[[], Any], *, what: str, writing: bool) -> Any:
        connection, target = self.connection, self.target

        def describe(error: BaseException) -> str:
            return describe_kubernetes_error(
                error, connection, target, writing=writing, timeout_s=self._timeout[1]
            )

        return call_with_retries(
            operation,
            what=what,
            retries=self.config.retries,
            is_retryable=is_retryable_kubernetes_error,
            describe=describe,
            sleep=self._sleep,
            deadline_s=whole_answer_s(self.config.timeout.total_seconds()),
            retry_after=kubernetes_retry_after,
            server=server_of(connection.host),
        )
