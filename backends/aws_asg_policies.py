"""An Auto Scaling group's own scaling: another autoscaler on the fleet.

Scaling policies (target tracking, step, simple, predictive) and scheduled actions set
the same desired capacity we set; the two then undo each other's counts. The group is
asked (DescribePolicies, DescribeScheduledActions, DescribeAutoScalingGroups for its
suspended processes: IAM autoscaling:Describe*) to say so before we act. What does not
act is not named: a policy disabled (Enabled false), a predictive policy in ForecastOnly
mode (its default), alarm-driven policies while the group's AlarmNotification process is
suspended, scheduled actions while ScheduledActions is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backends.base import BackendError

if TYPE_CHECKING:
    from backends.aws_asg import AutoScalingGroup

KINDS = {
    "TargetTrackingScaling": "target tracking",
    "StepScaling": "step scaling",
    "SimpleScaling": "simple scaling",
    "PredictiveScaling": "predictive scaling",
}
MAX_PAGES = 20
"""A group has at most 50 policies and 125 scheduled actions (AWS quotas): a few pages."""


# ---- pure -----------------------------------------------------------------------------


def acting_on_group(
    group: str,
    policies: Iterable[Mapping[str, Any]],
    actions: Iterable[Mapping[str, Any]],
    suspended: Iterable[str],
) -> list[str]:
    """A phrase for each policy and scheduled action (as AWS describes them) that would
    change the group's desired capacity now, with how to turn it off."""
    where, stopped = f"of Auto Scaling group {group!r}", set(suspended)
    found = [phrase for policy in policies if (phrase := _policy(policy, where, stopped))]
    if "ScheduledActions" not in stopped:
        found += [_scheduled(action, where) for action in actions]
    return found


def _policy(policy: Mapping[str, Any], where: str, suspended: set[str]) -> str | None:
    kind = str(policy.get("PolicyType") or "SimpleScaling")  # AWS's default type
    name = str(policy.get("PolicyName", ""))
    if policy.get("Enabled") is False:
        return None
    if kind == "PredictiveScaling":
        config = policy.get("PredictiveScalingConfiguration") or {}
        if config.get("Mode", "ForecastOnly") != "ForecastAndScale":
            return None
        return (
            f"predictive scaling policy {name!r} {where} (ForecastAndScale): delete it, or "
            "set its mode to ForecastOnly"
        )
    if "AlarmNotification" in suspended:  # alarms no longer invoke target tracking, step, simple
        return None
    tracking = policy.get("TargetTrackingConfiguration") or {}
    only = " (scales out only: DisableScaleIn)" if tracking.get("DisableScaleIn") else ""
    return (
        f"{KINDS.get(kind, kind)} policy {name!r} {where}{only}: delete it, or suspend the "
        "group's AlarmNotification process"
    )


def _scheduled(action: Mapping[str, Any], where: str) -> str:
    name = str(action.get("ScheduledActionName", ""))
    start = action.get("StartTime")
    when = action.get("Recurrence") or (
        f"at {start:%Y-%m-%d %H:%M} UTC" if isinstance(start, datetime) else "once"
    )
    sets = ", ".join(
        f"{word} {action[key]}"
        for key, word in (("DesiredCapacity", "desired"), ("MinSize", "min"), ("MaxSize", "max"))
        if action.get(key) is not None
    )
    return (
        f"scheduled action {name!r} {where} ({when}: {sets or 'no size'}): delete it, or "
        "suspend the group's ScheduledActions process"
    )


# ---- the adapter ------------------------------------------------------------------------


def ask_group(group: AutoScalingGroup) -> list[str]:
    """What AWS says acts on `group`; each call one attempt, read-only (backends.base)."""
    name = group.config.group
    answer = group.call_once(
        lambda: group.client.describe_auto_scaling_groups(AutoScalingGroupNames=[name]),
        what=f"describing {group.target}",
    )
    groups = answer.get("AutoScalingGroups") or []
    if not groups:
        raise BackendError(f"{group.target} not found in region {group.region}")
    suspended = [str(p.get("ProcessName")) for p in groups[0].get("SuspendedProcesses") or []]
    policies = _pages(group, "describe_policies", "ScalingPolicies", "its scaling policies")
    actions = _pages(
        group, "describe_scheduled_actions", "ScheduledUpdateGroupActions", "its scheduled actions"
    )
    return acting_on_group(name, policies, actions, suspended)


def _pages(group: AutoScalingGroup, operation: str, key: str, what: str) -> list[Any]:
    """Every page of a Describe call on the group (NextToken), up to MAX_PAGES."""
    items: list[Any] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        asked: dict[str, Any] = {"AutoScalingGroupName": group.config.group}
        if token:
            asked["NextToken"] = token
        answer = group.call_once(  # the client read when called: renewed credentials rebuild it
            lambda asked=asked: getattr(group.client, operation)(**asked),
            what=f"listing {what} of {group.target}",
        )
        items += answer.get(key) or []
        token = answer.get("NextToken")
        if not token:
            break
    return items
