"""A Nomad job's active deployment, which blocks scaling its groups: a hold, not a failure.

Nomad refuses POST /v1/job/:job_id/scale while the job's latest deployment is active:
HTTP 400, body "job scaling blocked due to active deployment" (nomad/job_endpoint.go,
Job.Scale); another 400 is taken for it where the job's latest deployment (GET
/v1/job/:job_id/deployment) is active, as the words may change between Nomad versions.
A job with an `update` block gets a deployment at each count change, so every scale-up
is followed by minutes of this while the new allocations turn healthy (a GPU model
loading): the count is held and said, as a bound is, and asked again at the next tick.
A block that lasts past DEPLOYMENT_PATIENCE (a deployment stuck, or waiting on a canary
promotion) becomes a failure, so that somebody looks at it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from nomad.api.exceptions import BaseNomadException

from backends.base import BackendError
from backends.nomad_errors import response_of
from common.clock import Clock

T = TypeVar("T")
log = logging.getLogger(__name__)

BLOCKED_BY_DEPLOYMENT = "job scaling blocked due to active deployment"
ACTIVE_STATUSES = frozenset(
    {"running", "paused", "blocked", "unblocking", "initializing", "pending"}
)
"""Nomad's Deployment.Active() (nomad/structs/deployment.go): a deployment in these
blocks Job.Scale."""
DEPLOYMENT_PATIENCE = timedelta(minutes=30)
"""How long a blocked scale is a hold; past it, each blocked write is a BackendError."""


class ScalingBlocked(BackendError):
    """Nomad refused a scale because a deployment of the job is active."""


def is_blocked_by_deployment(error: BaseException) -> bool:
    """Nomad's 400 for a scale while the job's deployment is active."""
    response = response_of(error)
    if response is None or response.status_code != 400:
        return False
    try:
        return response.text.strip().lower() == BLOCKED_BY_DEPLOYMENT
    except Exception:
        return False


def deployment_is_active(deployment: Any) -> bool:
    """GET /v1/job/:job_id/deployment's answer (the job's latest, or null) is active."""
    return isinstance(deployment, dict) and deployment.get("Status") in ACTIVE_STATUSES


def refused_for_deployment(
    operation: Callable[[], T], latest_deployment: Callable[[], Any]
) -> Callable[[], T]:
    """`operation` (a scale write), with Nomad's refusal for a deployment as ScalingBlocked:
    its 400 in Nomad's words, or any 400 while `latest_deployment()` (one read of the job's
    latest deployment) is active, so that a reworded refusal is not a failure every tick."""

    def write() -> T:
        try:
            return operation()
        except BaseNomadException as error:
            if is_blocked_by_deployment(error) or (
                _status(error) == 400 and _active(latest_deployment)
            ):
                raise ScalingBlocked(BLOCKED_BY_DEPLOYMENT) from None
            raise

    return write


def _status(error: BaseException) -> int | None:
    response = response_of(error)
    return None if response is None else response.status_code


def _active(latest_deployment: Callable[[], Any]) -> bool:
    """A read that fails, or answers what is no deployment, leaves the refusal a failure."""
    try:
        return deployment_is_active(latest_deployment())
    except Exception as error:
        log.debug("cannot read the job's latest deployment: %s", type(error).__name__)
        return False


@dataclass(frozen=True)
class Blocked:
    """The first and the latest scale refused for an active deployment, in one run of them."""

    first: datetime
    latest: datetime


def blocked_again(
    before: Blocked | None, now: datetime, patience: timedelta = DEPLOYMENT_PATIENCE
) -> Blocked:
    """The run of refusals `now` belongs to: a new one where none was refused for longer
    than `patience` (the deployment that blocked then is not known to be this one)."""
    if before is None or not timedelta(0) <= now - before.latest <= patience:
        return Blocked(now, now)
    return Blocked(before.first, now)


def held_for_deployment(
    blocked: Blocked, target: str, count: int, patience: timedelta = DEPLOYMENT_PATIENCE
) -> str:
    """The note for a count held by a deployment; BackendError once that outlasts `patience`."""
    waited = blocked.latest - blocked.first
    since = blocked.first.isoformat(timespec="minutes")
    if waited > patience:
        raise BackendError(
            f"{target}: Nomad has refused every scale since {since} ({BLOCKED_BY_DEPLOYMENT}), "
            f"longer than {int(patience.total_seconds() // 60)} min: check the job's deployment "
            "(`nomad job deployments`): it may be stuck or waiting to be promoted"
        )
    return (
        f"held at {count}: a deployment of the job is active and Nomad blocks scaling until "
        f"it ends (since {since}); asked again at the next tick"
    )


class DeploymentHold:
    """The run of scales a deployment blocked, for NomadJobGroup (the adapter's memory)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.blocked: Blocked | None = None

    def refused(self, target: str, count: int) -> str:
        """The note for this refusal; BackendError once the run outlasts the patience."""
        self.blocked = blocked_again(self.blocked, self.clock.now())
        return held_for_deployment(self.blocked, target, count)

    def cleared(self) -> None:
        self.blocked = None
