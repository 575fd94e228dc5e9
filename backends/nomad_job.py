"""A Nomad job's task group as a fleet, through the python-nomad client.

Reads the group's count with the job scale status endpoint and its readiness
from the job's allocations; sets the count with the job scale endpoint, so the
change lands in Nomad's scaling events with a message naming the autoscaler and
the reason (as `nomad job scale` and the Nomad Autoscaler do). Connection
settings follow the Nomad CLI's environment: NOMAD_ADDR, the ACL token (from the
pool's `token_file`, else `token_env`, NOMAD_TOKEN by default), NOMAD_CACERT / NOMAD_CAPATH,
NOMAD_CLIENT_CERT / NOMAD_CLIENT_KEY and NOMAD_SKIP_VERIFY (backends.nomad_connection).

The token must never reach a log line or an error message: python-nomad's
exceptions carry whole responses and requests errors, so every failure is
re-worded here from status codes and short, redacted bodies.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import nomad.api
import requests

from backends.base import Backend, BackendError, FleetState, is_count, require_count
from backends.nomad_connection import (
    AUTOSCALER_NAME,
    NomadAccess,
    NomadConnection,
    nomad_connection,
    requester_settings,
)
from backends.nomad_deployment import DeploymentHold, ScalingBlocked, refused_for_deployment
from backends.nomad_errors import (
    is_retryable_nomad_error,
    nomad_retry_after,
    response_of,
    transport_error_of,
)
from backends.nomad_names import NomadJobId
from backends.nomad_placement import WatchesPlacement
from backends.nomad_scaling import WatchesScalingPolicy
from backends.retry import call_with_retries
from backends.settings import Fleet
from common.clock import Clock, SystemClock
from common.deadline import whole_answer_s
from common.secrets import redact as redact_known
from common.secrets import remember, shorten
from common.settings import Name
from common.tick_circuit import server_of


class NomadJobBackend(NomadAccess):
    kind: Literal["nomad_job"]
    job: NomadJobId
    group: Name

    def fleet(self) -> Fleet:
        address = self.address.rstrip("/") if self.address else None  # one API either way
        where = ("nomad", address, self.region, self.namespace)
        return Fleet(f"Nomad job {self.job!r} group {self.group!r}", where)

    def connect(
        self,
        clock: Clock,
        env: Mapping[str, str],
        state_path: Path | None,
        boot_time: timedelta | None = None,
    ) -> Backend:
        return NomadJobGroup(self, env=env, clock=clock)


log = logging.getLogger(__name__)

SCALE_META = {"source": AUTOSCALER_NAME}
_BODY_LIMIT = 200


# ---- pure: reading Nomad's answers ---------------------------------------------------


def group_desired_count(scale_status: Mapping[str, Any], job: str, group: str) -> int:
    """The group's Count from a JobScaleStatus; a clear error when it cannot be used."""
    if scale_status.get("JobStopped"):
        raise BackendError(
            f"Nomad job {job!r} is stopped; the autoscaler does not start stopped jobs"
        )
    groups = scale_status.get("TaskGroups") or {}
    if not isinstance(groups, dict):
        raise BackendError(f"Nomad job {job!r}: its scale status has unusable TaskGroups")
    if group not in groups:
        known = ", ".join(sorted(map(str, groups))) or "none"
        raise BackendError(f"Nomad job {job!r} has no task group {group!r} (groups: {known})")
    entry = groups[group]
    if not isinstance(entry, dict):  # a bare number is no TaskGroupScaleStatus either
        raise BackendError(f"Nomad job {job!r} group {group!r}: unusable scale status {entry!r}")
    desired = entry.get("Desired")
    if not is_count(desired):
        raise BackendError(f"Nomad job {job!r} group {group!r}: unusable Desired {desired!r}")
    return desired


def allocation_is_ready(allocation: Mapping[str, Any]) -> bool:
    """Running, meant to run, and not waiting on (or failed) its deployment health check."""
    if allocation.get("DesiredStatus") != "run" or allocation.get("ClientStatus") != "running":
        return False
    deployment_status = allocation.get("DeploymentStatus")
    if not deployment_status:
        return True  # not part of a deployment: running is all Nomad can tell
    return deployment_status.get("Healthy") is True


def is_allocation_stub(stub: object) -> bool:
    """An AllocationListStub's shape, as far as readiness reads it."""
    if not isinstance(stub, dict):
        return False
    return stub.get("DeploymentStatus") is None or isinstance(stub["DeploymentStatus"], dict)


def fleet_state(desired: int, allocations: list[Mapping[str, Any]], group: str) -> FleetState:
    ready = sum(1 for a in allocations if a.get("TaskGroup") == group and allocation_is_ready(a))
    return FleetState(desired=desired, ready=ready, pending=max(desired - ready, 0))


def scale_request_body(count: int, group: str, reason: str) -> dict[str, Any]:
    """The documented body of POST /v1/job/:job_id/scale."""
    return {
        "Count": count,
        "Target": {"Group": group},
        "Message": f"{reason} ({AUTOSCALER_NAME})",
        "Meta": dict(SCALE_META),
    }


# ---- pure: classifying and wording failures ------------------------------------------


def redact(text: str, secret: str | None) -> str:
    """Every secret the process knows (common.secrets), this one included."""
    remember(secret)
    return redact_known(text)


def _short_body(response: requests.Response) -> str:
    """The body on one line, redacted before it is cut (a cut token no longer matches)."""
    try:
        text = response.text
    except Exception:
        return ""
    return shorten(" ".join(text.split()), _BODY_LIMIT)


def describe_nomad_error(
    error: BaseException, connection: NomadConnection, job: str, *, writing: bool = False
) -> str:
    """A sentence for people about what went wrong, with the token removed."""
    response = response_of(error)
    transport = transport_error_of(error)
    if response is not None:
        status, body = response.status_code, _short_body(response)
        answer = f"HTTP {status}: {body}" if body else f"HTTP {status}"
        if status == 403:
            if connection.token is None:
                text = (
                    f"Nomad refused the request and no ACL token was given "
                    f"({connection.credential.source} is not set): {answer}"
                )
            else:
                needs = "scale-job or submit-job" if writing else "read-job"
                text = (
                    f"Nomad refused the ACL token from {connection.credential.source} "
                    f"(it needs {needs} on namespace {connection.namespace!r}): {answer}"
                )
        elif status == 404:
            text = (
                f"Nomad job {job!r} not found in namespace {connection.namespace!r} "
                f"at {connection.address}: {answer}"
            )
        elif status == 400:
            text = f"Nomad rejected the request: {answer}"
        else:
            text = f"Nomad answered {answer}"
    elif isinstance(error, ValueError):  # includes requests' JSONDecodeError
        text = f"Nomad at {connection.address} answered with something that is not JSON"
    elif isinstance(transport, requests.exceptions.SSLError):
        text = f"TLS failed talking to {connection.address} (check NOMAD_CACERT / verify_tls)"
    elif isinstance(transport, requests.Timeout):
        text = f"no answer from {connection.address} within {connection.timeout_s:g}s"
    elif isinstance(transport, requests.ConnectionError):
        text = f"connection to {connection.address} failed ({_root_cause_name(transport)})"
    elif transport is not None:
        text = f"request to {connection.address} failed ({type(transport).__name__})"
    elif isinstance(error, BackendError):
        text = str(error)
    else:
        text = type(error).__name__
    return redact(text, connection.token)


def _root_cause_name(error: BaseException) -> str:
    """The innermost exception type (e.g. ConnectionRefusedError), never its text."""
    seen: set[int] = set()
    current: BaseException = error
    while id(current) not in seen:
        seen.add(id(current))
        inner = current.__cause__ or current.__context__
        if inner is None and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        if inner is None:
            break
        current = inner
    reason = getattr(current, "reason", None)
    if isinstance(reason, BaseException):
        current = reason
    return type(current).__name__


# ---- the adapter ---------------------------------------------------------------------


class NomadJobGroup(WatchesScalingPolicy, WatchesPlacement):
    """One task group of one Nomad job, scaled through its count."""

    name = "nomad_job"

    def __init__(
        self,
        config: NomadJobBackend,
        env: Mapping[str, str] = os.environ,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
    ) -> None:
        self.config, self._sleep, self.clock = config, sleep, clock or SystemClock()
        self.deployment = DeploymentHold(self.clock)  # scales refused while one is active
        self.connection = nomad_connection(config, env)
        self._jobs = nomad.api.Job(**requester_settings(self.connection))
        self._job_path = quote(config.job, safe="")
        self.target = f"Nomad job {config.job!r} group {config.group!r} ({config.namespace})"

    def __repr__(self) -> str:
        return f"NomadJobGroup({self.target} at {self.connection.address})"

    def check(self) -> None:
        """Reachable, token accepted, job and group exist (for `validate --check-backends`)."""
        self.read()

    def read(self) -> FleetState:
        desired = self._read_desired()
        allocations = self._call(
            lambda: self._jobs.get_allocations(self._job_path),
            what=f"listing allocations of {self.target}",
        )
        if not isinstance(allocations, list) or not all(map(is_allocation_stub, allocations)):
            raise BackendError(f"listing allocations of {self.target}: unexpected answer shape")
        stuck = self.placement(desired, allocations)  # one more call, while some are unplaced
        return replace(fleet_state(desired, allocations, self.config.group), stuck=stuck)

    def scale(self, desired: int, reason: str) -> str | None:
        require_count(desired)
        current = self._read_desired()
        if current == desired:
            log.debug("%s already at count %d; nothing to write", self.target, desired)
            return None
        target, note = self.clamped_to_scaling_block(desired)
        if note:
            log.warning("%s: %s", self.target, note)
        if target == current:
            return note
        body = scale_request_body(target, self.config.group, reason)
        log.info("%s: scaling count %d -> %d (%s)", self.target, current, target, reason)
        post = refused_for_deployment(
            lambda: self._jobs.request(self._job_path, "scale", method="post", json=body).json(),
            lambda: self._jobs.get_deployment(self._job_path),
        )
        try:
            self._call(post, what=f"scaling {self.target} to {target}", writing=True)
        except ScalingBlocked:  # a hold, said as a clamp is, until it lasts too long
            held = self.deployment.refused(self.target, current)
            log.warning("%s: %s", self.target, held)
            return f"{note}; {held}" if note else held
        self.deployment.cleared()
        return note

    def _read_desired(self) -> int:
        status = self._call(
            lambda: self._jobs.request(self._job_path, "scale", method="get").json(),
            what=f"reading the scale status of {self.target}",
        )
        if not isinstance(status, dict):
            raise BackendError(f"reading {self.target}: unexpected answer shape")
        return group_desired_count(status, self.config.job, self.config.group)

    def _call(self, operation: Callable[[], Any], *, what: str, writing: bool = False) -> Any:
        def describe(error: BaseException) -> str:
            return describe_nomad_error(error, self.connection, self.config.job, writing=writing)

        return call_with_retries(
            operation,
            what=what,
            retries=self.config.retries,
            is_retryable=is_retryable_nomad_error,
            describe=describe,
            sleep=self._sleep,
            deadline_s=whole_answer_s(self.connection.timeout_s),
            retry_after=nomad_retry_after,
            server=server_of(self.connection.address),
        )
