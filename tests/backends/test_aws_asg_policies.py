"""Another autoscaler on an Auto Scaling group: AutoScalingGroup.other_autoscalers (and
NomadCluster's, on its group) through boto3 against moto in server mode, which implements
PutScalingPolicy, DescribePolicies, PutScheduledUpdateGroupAction,
DescribeScheduledActions and SuspendProcesses; what moto leaves out of its answers (a
policy's Enabled) is covered on the pure function."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backends.aws_asg_policies import acting_on_group
from backends.base import BackendError, other_autoscalers
from tests.backends.test_aws_asg import GROUP, make_backend
from tests.backends.test_nomad_cluster import GROUP as CLUSTER_GROUP
from tests.backends.test_nomad_cluster import Cluster, cluster
from tests.doubles.moto_server import DUMMY_SECRET, AwsFaults, AwsWorld, aws, moto_server
from tests.doubles.nomad_api import nomad_api

__all__ = ["aws", "cluster", "moto_server", "nomad_api"]  # fixtures, used by name below

CPU = {"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}}
WHERE = f"of Auto Scaling group {GROUP!r}"


def put_policies(aws: AwsWorld, group: str = GROUP) -> None:
    """What a team had set up on the group before the daemon came."""
    put = aws.autoscaling.put_scaling_policy
    put(
        AutoScalingGroupName=group,
        PolicyName="cpu-50",
        PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration={**CPU, "TargetValue": 50.0},
    )
    put(
        AutoScalingGroupName=group,
        PolicyName="queue-steps",
        PolicyType="StepScaling",
        AdjustmentType="ChangeInCapacity",
        StepAdjustments=[{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 2}],
    )
    predictive = {
        "MetricSpecifications": [
            {
                "TargetValue": 40.0,
                "PredefinedMetricPairSpecification": {"PredefinedMetricType": "ASGCPUUtilization"},
            }
        ]
    }
    put(
        AutoScalingGroupName=group,
        PolicyName="forecast-only",
        PolicyType="PredictiveScaling",
        PredictiveScalingConfiguration={**predictive, "Mode": "ForecastOnly"},
    )
    put(
        AutoScalingGroupName=group,
        PolicyName="forecast-and-scale",
        PolicyType="PredictiveScaling",
        PredictiveScalingConfiguration={**predictive, "Mode": "ForecastAndScale"},
    )
    aws.autoscaling.put_scheduled_update_group_action(
        AutoScalingGroupName=group,
        ScheduledActionName="nightly-down",
        Recurrence="0 20 * * *",
        DesiredCapacity=0,
    )


def test_each_policy_and_scheduled_action_that_acts_is_named(aws: AwsWorld, moto_server) -> None:
    aws.create_group(GROUP, desired=2)
    put_policies(aws)
    found = other_autoscalers(make_backend(moto_server.url))
    assert found == [
        f"target tracking policy 'cpu-50' {WHERE}: delete it, or suspend the group's "
        "AlarmNotification process",
        f"step scaling policy 'queue-steps' {WHERE}: delete it, or suspend the group's "
        "AlarmNotification process",
        f"predictive scaling policy 'forecast-and-scale' {WHERE} (ForecastAndScale): delete "
        "it, or set its mode to ForecastOnly",
        f"scheduled action 'nightly-down' {WHERE} (0 20 * * *: desired 0): delete it, or "
        "suspend the group's ScheduledActions process",
    ]


def test_a_group_without_its_own_scaling_has_none(aws: AwsWorld, moto_server) -> None:
    aws.create_group(GROUP, desired=2)
    put_policies(aws, group="another-group")
    assert make_backend(moto_server.url).other_autoscalers() == []


def test_suspended_processes_silence_what_they_stop(aws: AwsWorld, moto_server) -> None:
    aws.create_group(GROUP, desired=2)
    put_policies(aws)
    aws.autoscaling.suspend_processes(
        AutoScalingGroupName=GROUP, ScalingProcesses=["AlarmNotification", "ScheduledActions"]
    )
    (found,) = make_backend(moto_server.url).other_autoscalers()
    assert found.startswith("predictive scaling policy 'forecast-and-scale'")


def test_access_denied_is_one_attempt_and_names_the_call(aws: AwsWorld, moto_server) -> None:
    aws.create_group(GROUP, desired=2)
    sleeps: list[float] = []
    backend = make_backend(moto_server.url, sleeps=sleeps)
    faults = AwsFaults(backend.client)
    denied = "User: arn:aws:iam::123456789012:user/gpu is not authorized to perform: "
    faults.fail_next(
        "DescribePolicies", 1, code="AccessDenied", message=denied + "autoscaling:DescribePolicies"
    )
    with pytest.raises(BackendError) as caught:
        backend.other_autoscalers()
    said = str(caught.value)
    assert said.startswith(f"listing its scaling policies of Auto Scaling group {GROUP!r} failed")
    assert "AccessDenied" in said and "autoscaling:DescribePolicies" in said
    assert DUMMY_SECRET not in said


def test_throttling_is_not_retried(aws: AwsWorld, moto_server) -> None:
    aws.create_group(GROUP, desired=2)
    sleeps: list[float] = []
    backend = make_backend(moto_server.url, sleeps=sleeps)
    AwsFaults(backend.client).fail_next("DescribeScheduledActions", 1)
    with pytest.raises(BackendError, match="failed after 1 attempt: AWS answered Throttling"):
        backend.other_autoscalers()
    assert sleeps == []


def test_every_page_of_policies_is_read(aws: AwsWorld, moto_server) -> None:
    aws.create_group(GROUP, desired=2)
    put_policies(aws)
    backend = make_backend(moto_server.url)
    faults = AwsFaults(backend.client)
    faults.edit_next(  # a first page with a NextToken, as AWS sends past MaxRecords
        "DescribePolicies",
        lambda xml: xml.replace(
            "</DescribePoliciesResult>", "<NextToken>p2</NextToken></DescribePoliciesResult>"
        ),
    )
    found = backend.other_autoscalers()
    assert faults.sent.count("DescribePolicies") == 2
    assert sum("'cpu-50'" in phrase for phrase in found) == 2  # moto sends page 1 again


def test_a_nomad_clusters_group_is_asked_too(cluster: Cluster) -> None:
    cluster.arrange([1, 0])
    put_policies(cluster.aws, group=CLUSTER_GROUP)
    found = cluster.backend().other_autoscalers()
    assert len(found) == 4
    assert found[0].startswith(
        f"target tracking policy 'cpu-50' of Auto Scaling group '{CLUSTER_GROUP}'"
    )


# ---- pure: what AWS sends that moto does not --------------------------------------------------


def test_disabled_policies_do_not_act_and_scale_in_off_is_said() -> None:
    policies = [
        {"PolicyName": "off", "PolicyType": "StepScaling", "Enabled": False},
        {
            "PolicyName": "out-only",
            "PolicyType": "TargetTrackingScaling",
            "Enabled": True,
            "TargetTrackingConfiguration": {"TargetValue": 60.0, "DisableScaleIn": True},
        },
        {"PolicyName": "predict", "PolicyType": "PredictiveScaling", "Enabled": True},
    ]  # a predictive policy without a mode forecasts only
    once = {
        "ScheduledActionName": "launch-day",
        "StartTime": datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        "MinSize": 4,
        "MaxSize": 20,
    }
    assert acting_on_group("g", policies, [once], []) == [
        "target tracking policy 'out-only' of Auto Scaling group 'g' (scales out only: "
        "DisableScaleIn): delete it, or suspend the group's AlarmNotification process",
        "scheduled action 'launch-day' of Auto Scaling group 'g' (at 2026-12-01 08:00 UTC: "
        "min 4, max 20): delete it, or suspend the group's ScheduledActions process",
    ]
