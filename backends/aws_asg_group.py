"""An Auto Scaling group as DescribeAutoScalingGroups documents it, reduced to what sizing
needs: its counts, its instances and what each counts for, and the fleet they make.

Its own room because reading one answer is pure and apart from the calls that fetch it
and write the group (backends.aws_asg), and shared: backends.nomad_cluster scales a
group's instances as Nomad nodes and reads them through the same snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backends.base import BackendError, FleetState, is_count

_LEAVING_STATES = ("Terminating", "Terminated", "Detaching", "Detached")
_STANDBY_STATES = ("EnteringStandby", "Standby")


@dataclass(frozen=True)
class GroupInstance:
    instance_id: str
    lifecycle_state: str
    protected: bool
    healthy: bool = True
    weight: int = 1  # WeightedCapacity: DesiredCapacity is then in these units, as our counts

    @property
    def in_service(self) -> bool:
        return self.lifecycle_state == "InService"

    @property
    def serves(self) -> bool:
        """In service and healthy: an instance AWS marked Unhealthy stays InService until it
        is replaced, and for good while ReplaceUnhealthy is suspended, serving nothing."""
        return self.in_service and self.healthy

    @property
    def leaving(self) -> bool:
        return self.lifecycle_state.startswith(_LEAVING_STATES)

    @property
    def counted(self) -> bool:
        """Part of the desired capacity: not leaving, nor on standby (AWS takes a standby
        instance out of the count, and never removes it when the count is lowered)."""
        return not self.leaving and self.lifecycle_state not in _STANDBY_STATES


@dataclass(frozen=True)
class GroupSnapshot:
    """One DescribeAutoScalingGroups answer, reduced to what sizing needs."""

    name: str
    desired: int
    min_size: int
    max_size: int
    instances: tuple[GroupInstance, ...]
    units: str | None = None
    """Why DesiredCapacity counts capacity units rather than instances, where it does."""
    suspended: frozenset[str] = frozenset()
    """The group's suspended processes (SuspendedProcesses): Launch and Terminate stop
    what a raised or lowered DesiredCapacity would do."""

    @property
    def serving(self) -> int:
        return sum(i.weight for i in self.instances if i.serves)

    @property
    def protected(self) -> int:
        """Capacity units that a lowered desired capacity cannot remove."""
        return sum(i.weight for i in self.instances if i.protected and i.counted)


def group_snapshot(group: Mapping[str, Any]) -> GroupSnapshot:
    """The group as DescribeAutoScalingGroups documents it; BackendError for an answer
    without its counts, with MinSize <= DesiredCapacity <= MaxSize broken (AWS keeps
    that), or with an instance that has no ID or a WeightedCapacity that is no whole
    number of units: never sized, nor clamped, on a guess. A group being deleted too:
    its counts are AWS emptying it, not a change by hand."""
    name = str(group.get("AutoScalingGroupName", ""))
    if group.get("Status"):  # set only while DeleteAutoScalingGroup runs: counts going to 0
        raise BackendError(
            f"Auto Scaling group {name!r} is being deleted (Status {group['Status']!r}); "
            "not read as a fleet, nor scaled"
        )
    counts = {key: group.get(key) for key in ("MinSize", "DesiredCapacity", "MaxSize")}
    low, desired, high = counts.values()
    if not all(map(is_count, counts.values())):
        found = ", ".join(f"{key} {value!r}" for key, value in counts.items())
        raise BackendError(f"Auto Scaling group {name!r}: unusable answer ({found})")
    if not low <= desired <= high:
        raise BackendError(
            f"Auto Scaling group {name!r}: DesiredCapacity {desired} outside "
            f"MinSize {low} .. MaxSize {high}; not scaled on that answer"
        )
    listed = group.get("Instances") or []
    if not all(isinstance(i, Mapping) and i.get("InstanceId") for i in listed):
        raise BackendError(f"Auto Scaling group {name!r}: an instance without an InstanceId")
    weights = [str(i.get("WeightedCapacity", "1")) for i in listed]
    if not all(w.isascii() and w.isdigit() and int(w) >= 1 for w in weights):
        raise BackendError(f"Auto Scaling group {name!r}: an instance's WeightedCapacity is odd")
    instances = tuple(
        GroupInstance(
            instance_id=str(i["InstanceId"]),
            lifecycle_state=str(i.get("LifecycleState", "")),
            protected=bool(i.get("ProtectedFromScaleIn", False)),
            healthy=i.get("HealthStatus", "Healthy") != "Unhealthy",
            weight=int(weight),
        )
        for i, weight in zip(listed, weights, strict=True)
    )
    suspended = frozenset(
        str(p.get("ProcessName"))
        for p in group.get("SuspendedProcesses") or ()
        if isinstance(p, Mapping)
    )
    return GroupSnapshot(
        name, desired, low, high, instances, _units_of(group, instances), suspended
    )


def suspended_note(process: str) -> str:
    """Why a count is not written: with Launch suspended (by hand, or by AWS itself after a
    day of failed launches) a raised DesiredCapacity launches nothing, with Terminate
    suspended a lowered one removes nothing; written, it would wait unseen for ever."""
    would = "no instance would launch" if process == "Launch" else "no instance would go"
    return (
        f"the group's {process} process is suspended, {would} (resume it: aws autoscaling "
        f"resume-processes --scaling-processes {process})"
    )


def _units_of(group: Mapping[str, Any], instances: tuple[GroupInstance, ...]) -> str | None:
    """Why the group's DesiredCapacity is not a count of instances, where it is not: its
    DesiredCapacityType (vcpu, memory-mib), or weights in its mixed instances policy."""
    measure = group.get("DesiredCapacityType") or "units"
    if measure != "units":
        return f"its DesiredCapacityType is {measure}"
    policy = group.get("MixedInstancesPolicy")
    template = policy.get("LaunchTemplate") if isinstance(policy, Mapping) else None
    overrides = template.get("Overrides") if isinstance(template, Mapping) else None
    weights = [o.get("WeightedCapacity") for o in overrides or () if isinstance(o, Mapping)]
    if any(w not in (None, "1") for w in weights) or any(i.weight != 1 for i in instances):
        return "its mixed instances policy weighs instance types"
    return None


def group_fleet_state(snapshot: GroupSnapshot) -> FleetState:
    """Pending is whatever is asked for but not yet serving (Pending*, booting, Unhealthy);
    in the group's capacity units (instances, unless a mixed instances policy weighs them)."""
    ready = snapshot.serving
    return FleetState(
        desired=snapshot.desired, ready=ready, pending=max(snapshot.desired - ready, 0)
    )
