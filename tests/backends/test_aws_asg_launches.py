"""Failed launches of an Auto Scaling group told as nodes not coming up.

The pure reading of a DescribeScalingActivities answer as AWS documents it (Activities[]:
Description, StartTime, StatusCode Failed or Cancelled with the cause in StatusMessage);
the call's wiring through boto3 against moto in server mode, which answers the
documented query API with an empty activity list (its answer edited in botocore's
before-parse event where the test needs AWS's failures, or fewer instances than desired),
and the 403 AWS sends where IAM denies the call.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backends.aws_asg import AutoScalingGroup, AwsAsgBackend
from backends.aws_asg_launches import MAX_RECORDS, aws_time, launches_failing
from backends.base import BackendError, FleetState
from common.clock import SimulatedClock
from common.secrets import remember
from tests.doubles.moto_server import AWS_ENV, AwsFaults, AwsWorld, aws, moto_server

__all__ = ["aws", "moto_server"]  # fixtures, used by name below

GROUP = "gpu-launches"
BOOT = timedelta(minutes=10)
NOW = datetime(2026, 5, 4, 12, 45, tzinfo=UTC)
NO_CAPACITY = (
    "We currently do not have sufficient p4d.24xlarge capacity in the Availability Zone you "
    "requested (us-east-1a). Our system will be working on provisioning additional capacity. "
    "Launching EC2 instance failed."
)
ABANDONED = (
    "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
    "5e2f7c1a-93b4-4d0e-b1c8-7f6a2d9e0c31 was abandoned: Lifecycle Action Completed with "
    "ABANDON Result"
)


def activity(minutes_ago: float, status: str, message: str = "", what: str = "") -> dict:
    """One Activity as DescribeScalingActivities documents it (a failed launch's
    Description carries its Status Reason, as AWS writes it)."""
    description = what or (
        f"Launching a new EC2 instance.  Status Reason: {message}"
        if status == "Failed"
        else "Launching a new EC2 instance: i-0c4e8a1f2b3d5e6f7"
    )
    return {
        "ActivityId": f"a-{minutes_ago}-{status}",
        "AutoScalingGroupName": GROUP,
        "Description": description,
        "Cause": "At 2026-05-04T12:00:00Z an instance was started in response to a "
        "difference between desired and actual capacity, increasing the capacity from 4 to 6.",
        "StartTime": NOW - timedelta(minutes=minutes_ago),
        "StatusCode": status,
        **({"StatusMessage": message} if message else {}),
        "Progress": 100,
    }


# ---- pure: reading an answer -----------------------------------------------------------


def test_launches_failing_since_the_last_success_are_told_with_awss_cause() -> None:
    answer = {
        "Activities": [
            activity(5, "Failed", NO_CAPACITY),
            activity(2, "InProgress"),  # AWS trying again: no success yet
            activity(25, "Failed", NO_CAPACITY),
            activity(42, "Failed", NO_CAPACITY),
            activity(50, "Successful"),  # ended an earlier run: not counted
            activity(55, "Failed", "an older run"),
            activity(3, "Failed", "x", what="Terminating EC2 instance: i-0aa: not a launch"),
        ]
    }
    said = launches_failing(answer, NOW, BOOT)
    assert said is not None
    assert said.startswith("3 instance launches failed over 42m, the latest at 2026-05-04 12:40")
    assert "(Failed): We currently do not have sufficient p4d.24xlarge capacity" in said
    assert "older run" not in said


def test_a_launch_abandoned_by_a_lifecycle_hook_is_a_failure() -> None:
    said = launches_failing({"Activities": [activity(30, "Cancelled", ABANDONED)]}, NOW, BOOT)
    assert said is not None and "1 instance launch failed over 30m" in said
    assert "(Cancelled): Instance failed to complete user's Lifecycle Action" in said


def test_a_secret_aws_echoes_in_a_cause_is_not_told() -> None:
    secret = "Vq3hT8zKw1RfYp6LmBx0"
    remember(secret)
    message = f"The launch template's user data is invalid near {secret}"
    said = launches_failing({"Activities": [activity(30, "Failed", message)]}, NOW, BOOT)
    assert said is not None and "user data is invalid" in said and secret not in said


@pytest.mark.parametrize(
    "activities",
    [
        [],
        [activity(1, "Successful"), activity(30, "Failed", NO_CAPACITY)],  # it came after all
        [activity(4, "Failed", NO_CAPACITY), activity(9, "Failed", NO_CAPACITY)],  # < boot time
        [activity(40, "PreInService"), activity(45, "WaitingForInstanceWarmup")],
        [activity(40, "Failed", NO_CAPACITY, what="Launching a new EC2 instance into warm pool")],
    ],
    ids=["none", "a launch since", "failing for less than the boot time", "on their way", "warm"],
)
def test_launches_that_may_still_come_are_not_told(activities: list[dict]) -> None:
    assert launches_failing({"Activities": activities}, NOW, BOOT) is None


@pytest.mark.parametrize("answer", [{}, {"Activities": "none"}, {"Activities": [None]}, None])
def test_an_answer_that_is_no_list_of_activities_is_an_error(answer: Any) -> None:
    with pytest.raises(BackendError, match="unexpected answer shape"):
        launches_failing(answer, NOW, BOOT)


def test_failures_are_timed_by_awss_clock() -> None:
    headers = {"ResponseMetadata": {"HTTPHeaders": {"date": "Mon, 04 May 2026 12:45:00 GMT"}}}
    assert aws_time(headers, NOW + timedelta(hours=1)) == NOW
    assert aws_time({"ResponseMetadata": {}}, NOW) == NOW


# ---- against moto ----------------------------------------------------------------------


class Watched:
    """A group in moto and its backend as the daemon builds it (the pool's boot time, a
    clock the test moves), with the DescribeScalingActivities calls it sends."""

    def __init__(self, aws: AwsWorld, desired: int = 4) -> None:
        self.ids = aws.create_group(GROUP, desired=desired)
        self.clock = SimulatedClock(NOW)
        config = AwsAsgBackend(kind="aws_asg", group=GROUP, endpoint_url=aws.url, timeout="2s")
        self.backend = config.connect(self.clock, dict(AWS_ENV), None, BOOT)
        assert isinstance(self.backend, AutoScalingGroup)
        self.faults = AwsFaults(self.backend.client)
        self.asked: list[dict[str, Any]] = []
        self.backend.client.meta.events.register(
            "provide-client-params.auto-scaling.DescribeScalingActivities",
            lambda params, **_: self.asked.append(dict(params)),
        )

    def read(self, *, short_by: int = 0, activities: list[dict] | None = None) -> FleetState:
        """A read where AWS lists `short_by` instances fewer than desired (launches that
        failed leave none), and answers the activities with `activities`."""
        if short_by:
            self.faults.edit_next("DescribeAutoScalingGroups", without_instances(short_by))
        if activities is not None:
            self.faults.edit_next("DescribeScalingActivities", with_activities(activities))
        return self.backend.read()


def without_instances(count: int) -> Any:
    return lambda xml: re.sub(r"<member><InstanceId>.*?</member>", "", xml, count=count)


def with_activities(activities: list[dict]) -> Any:
    """moto's empty Activities replaced by these, in the query API's XML, timed from now
    (the answer's Date header is the moto server's real clock)."""
    now = datetime.now(UTC)
    members = "".join(
        "<member>"
        + "".join(
            f"<{key}>{(now - (NOW - value)).strftime('%Y-%m-%dT%H:%M:%SZ')}</{key}>"
            if isinstance(value, datetime)
            else f"<{key}>{value}</{key}>"
            for key, value in a.items()
        )
        + "</member>"
        for a in activities
    )
    return lambda xml: xml.replace("<Activities/>", f"<Activities>{members}</Activities>")


def test_a_groups_failed_launches_are_its_nodes_not_coming_up(aws: AwsWorld) -> None:
    """Against moto serving the documented Auto Scaling query API, its answers edited to
    what AWS sends while p4d capacity is short: two of six instances never launched, and
    the group's activities say why. Before, the read said 2 pending, for ever, and
    nothing why. Now the read carries AWS's cause (the tick tells it once as 'rollout
    failing'), from one call of MAX_RECORDS activities; scale-ups are still written."""
    group = Watched(aws, desired=6)
    failures = [activity(12, "Failed", NO_CAPACITY), activity(31, "Failed", NO_CAPACITY)]
    fleet = group.read(short_by=2, activities=failures)
    assert (fleet.desired, fleet.ready, fleet.pending) == (6, 4, 2)
    assert fleet.stuck is not None
    assert fleet.stuck.startswith("2 instance launches failed over 31m")
    assert "We currently do not have sufficient p4d.24xlarge capacity" in fleet.stuck
    assert group.asked == [{"AutoScalingGroupName": GROUP, "MaxRecords": MAX_RECORDS}]
    assert group.backend.scale(8, "forecast") is None
    assert aws.group(GROUP)["DesiredCapacity"] == 8


def test_activities_are_asked_only_while_capacity_is_pending_past_the_boot_time(
    aws: AwsWorld,
) -> None:
    """Against moto (its empty activity list as AWS answers a group with none). The first
    read after a start asks at once where capacity is pending (the daemon may have
    restarted in a shortfall it had told of); then a new shortfall is asked about only
    once it has lasted the boot time, and never while all capacity serves."""
    group = Watched(aws)
    assert group.read(short_by=1) == FleetState(desired=4, ready=3, pending=1)
    assert len(group.asked) == 1
    assert group.read() == FleetState(desired=4, ready=4, pending=0)
    assert len(group.asked) == 1
    group.read(short_by=1)  # a new shortfall: capacity on its way, for now
    group.clock.advance(BOOT)
    group.read(short_by=1)
    assert len(group.asked) == 1  # pending for the boot time, not longer
    group.clock.advance(timedelta(minutes=1))
    assert group.read(short_by=1) == FleetState(desired=4, ready=3, pending=1)
    assert len(group.asked) == 2


def test_a_failed_call_keeps_the_last_verdict_and_the_read(
    aws: AwsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """Against moto, with the Throttling error document AWS sends: the read stands (a
    pool is never left unscaled for want of a cause) and so does the cause told before;
    the call is not retried."""
    group = Watched(aws)
    failures = [activity(20, "Failed", NO_CAPACITY)]
    told = group.read(short_by=1, activities=failures).stuck
    assert told is not None
    group.faults.fail_next("DescribeScalingActivities", 1, code="Throttling")
    with caplog.at_level(logging.WARNING, logger="backends.aws_asg"):
        assert group.read(short_by=1) == FleetState(4, 3, 1, stuck=told)
    assert "the last verdict on failed launches stands" in caplog.text
    assert group.read() == FleetState(4, 4, 0)  # the nodes came: nothing stuck


def test_access_denied_is_said_once_and_the_group_read_without_the_cause(
    aws: AwsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """Against moto, with the AccessDenied error document (HTTP 403) AWS sends where the
    role lacks autoscaling:DescribeScalingActivities: the read goes on without the cause,
    the missing permission is logged once, and the call is not made again."""
    group = Watched(aws)
    denied = (
        "User: arn:aws:sts::123456789012:assumed-role/gpu-autoscaler/i-0e7d is not "
        "authorized to perform: autoscaling:DescribeScalingActivities"
    )
    group.faults.fail_next(
        "DescribeScalingActivities", 1, status=403, code="AccessDenied", message=denied
    )
    with caplog.at_level(logging.WARNING, logger="backends.aws_asg"):
        assert group.read(short_by=1) == FleetState(desired=4, ready=3, pending=1)
        group.clock.advance(BOOT * 3)
        assert group.read(short_by=1) == FleetState(desired=4, ready=3, pending=1)
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 1
    assert "AccessDenied (HTTP 403)" in said[0]
    assert "it needs IAM autoscaling:DescribeScalingActivities" in said[0]
    assert group.faults.sent.count("DescribeScalingActivities") == 0
    assert len(group.asked) == 1
