"""Why an Auto Scaling group's instances do not come: launches AWS tried, and failed.

A scale-out whose launches fail (no capacity for the instance type in the zone:
InsufficientInstanceCapacity, the commonest GPU failure; a vCPU quota:
VcpuLimitExceeded; a launch template error; a lifecycle hook that ABANDONs) leaves
DesiredCapacity above the instances for ever, and read as pending only it looked like
nodes booting: nobody was told why the pool waits. AWS records each try as a scaling
activity (DescribeScalingActivities: StatusCode Failed or Cancelled, the cause in its
StatusMessage). They are asked for (one call, the newest MAX_RECORDS, one attempt) only
while fewer instances serve than desired for longer than the pool's boot time, and told
as FleetState.stuck once the failures have lasted that long by AWS's clock. Told, not
acted on: scale-ups are still written. Where IAM denies the call, that is said once and
the group is read without the cause.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from backends.base import BackendError
from common.clock import Clock
from common.durations import format_span
from common.secrets import shorten

if TYPE_CHECKING:
    from backends.aws_asg import AutoScalingGroup

log = logging.getLogger("backends.aws_asg")

MAX_RECORDS = 10
"""The newest activities read: AWS retries a failed launch every few minutes, so these
hold the latest failures, and the success that ended an earlier run of them."""
LAUNCH = "Launching a new EC2 instance"
INTO_WARM_POOL = "into warm pool"  # an instance kept stopped: not part of DesiredCapacity
FAILED = frozenset({"Failed", "Cancelled"})
DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
PERMISSION = "autoscaling:DescribeScalingActivities"
_MESSAGE_LIMIT = 200
_SHORT_BEFORE_START = datetime.min.replace(tzinfo=UTC)
"""A shortfall found at the first read is of unknown age: the daemon may have restarted
in one, with its 'rollout failing' on record, which must not read as having cleared."""


# ---- pure: reading the answer ---------------------------------------------------------


def launches_failing(answer: Any, now: datetime, patience: timedelta) -> str | None:
    """What a DescribeScalingActivities answer says of instances that do not launch: the
    group's launches that failed (Failed, Cancelled) since its newest successful one,
    where the first of them is older than `patience` at `now` (AWS's clock); None where
    there are none, or the latest launch succeeded. BackendError for an answer that is
    not a list of activities."""
    activities = answer.get("Activities") if isinstance(answer, Mapping) else None
    if not isinstance(activities, list) or not all(isinstance(a, Mapping) for a in activities):
        raise BackendError("unexpected answer shape")
    launches = sorted(
        (a for a in activities if _is_launch(a) and isinstance(a.get("StartTime"), datetime)),
        key=lambda a: a["StartTime"],
        reverse=True,
    )
    failed: list[Mapping[str, Any]] = []
    for launch in launches:
        if launch.get("StatusCode") == "Successful":
            break  # an earlier run of failures ended there
        if launch.get("StatusCode") in FAILED:
            failed.append(launch)  # others are in progress: AWS trying again
    if not failed or now - failed[-1]["StartTime"] <= patience:
        return None
    latest, count = failed[0], len(failed)
    message = " ".join(str(latest.get("StatusMessage") or latest.get("Description", "")).split())
    return (
        f"{count} instance launch{'es' if count > 1 else ''} failed over "
        f"{format_span(now - failed[-1]['StartTime'])}, the latest at "
        f"{latest['StartTime'].astimezone(UTC):%Y-%m-%d %H:%M} UTC ({latest['StatusCode']}): "
        f"{shorten(message, _MESSAGE_LIMIT)}"
    )


def _is_launch(activity: Mapping[str, Any]) -> bool:
    description = str(activity.get("Description") or "")
    return description.startswith(LAUNCH) and INTO_WARM_POOL not in description


def aws_time(answer: Any, fallback: datetime) -> datetime:
    """AWS's clock (its answer's Date header), which set the activities' StartTime: a
    daemon's clock off by minutes must not make a fresh failure look old."""
    metadata = answer.get("ResponseMetadata") if isinstance(answer, Mapping) else None
    headers = metadata.get("HTTPHeaders") if isinstance(metadata, Mapping) else None
    date = headers.get("date") if isinstance(headers, Mapping) else None
    try:
        moment = parsedate_to_datetime(date) if isinstance(date, str) else None
    except (TypeError, ValueError):
        moment = None
    return moment if moment is not None and moment.tzinfo else fallback


# ---- the adapter ------------------------------------------------------------------------


class ActivitiesDenied(BackendError):
    """IAM refused DescribeScalingActivities: asked again, it would be refused again."""


class LaunchWatch:
    """What AutoScalingGroup learns of failed launches at each read (aws_asg's, and
    nomad_cluster's through its group)."""

    def __init__(self, group: AutoScalingGroup, boot_time: timedelta | None, clock: Clock) -> None:
        self.group, self.boot_time, self.clock = group, boot_time, clock
        self.short_since: datetime | None = _SHORT_BEFORE_START
        self.verdict: str | None = None
        """As the last answer said; it stands where a later call fails."""
        self.denied = False

    def stuck(self, pending: int) -> str | None:
        """FleetState.stuck for `pending` capacity that does not serve: asks AWS (one call)
        only while some has been pending longer than the boot time. Best effort, as the
        Kubernetes pod list is: a call that fails is logged and the last verdict stands
        (failing the read would leave the pool unscaled for want of an explanation)."""
        if pending <= 0 or self.boot_time is None:
            self.short_since, self.verdict = None, None
            return None
        now = self.clock.now()
        self.short_since = self.short_since or now
        if self.denied or now - self.short_since <= self.boot_time:
            return self.verdict
        what = f"listing the scaling activities of {self.group.target}"
        try:
            answer = self.group.call_once(self._ask, what=what)
            self.verdict = launches_failing(answer, aws_time(answer, now), self.boot_time)
        except ActivitiesDenied as error:
            self.denied, self.verdict = True, None
            log.warning(
                "%s: why its instances do not launch cannot be read: %s (it needs IAM %s); "
                "not asked again",
                self.group.target,
                error,
                PERMISSION,
            )
        except BackendError as error:
            said = str(error) if str(error).startswith(what) else f"{what}: {error}"
            log.warning("%s; the last verdict on failed launches stands", said)
        return self.verdict

    def _ask(self) -> Any:
        """One DescribeScalingActivities call (the client read when called: renewed
        credentials rebuild it); a refusal by IAM as ActivitiesDenied."""
        import botocore.exceptions

        from backends.aws_asg import describe_aws_error  # it imports this module

        try:
            return self.group.client.describe_scaling_activities(
                AutoScalingGroupName=self.group.config.group, MaxRecords=MAX_RECORDS
            )
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in DENIED:
                raise ActivitiesDenied(describe_aws_error(error, "")) from None
            raise
