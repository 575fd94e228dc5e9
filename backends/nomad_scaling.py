"""A Nomad job group's enabled scaling policy: another autoscaler on the fleet.

A task group's `scaling` block with a `policy` is what the Nomad Autoscaler acts on: it
sets the same group count we set, and the two then undo each other's counts. NomadJobGroup
reads the job (GET /v1/job/:job_id, ACL read-job, as it reads the group already) to say so
before it acts. A block with `enabled = false`, or one without a policy (only `min` and
`max`: the bounds Nomad holds every count to, ours included), does not act and is not
named. Its Min and Max also bound the count NomadJobGroup writes (Nomad refuses one
outside them). Kept apart from backends.nomad_job, which is full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from backends.base import BackendError, is_count
from backends.retry import call_with_retries
from common.deadline import whole_answer_s
from common.tick_circuit import server_of

if TYPE_CHECKING:
    import nomad.api

    from backends.nomad_connection import NomadConnection
    from backends.nomad_job import NomadJobBackend


# ---- pure -----------------------------------------------------------------------------


def scaling_policy_of(job: Any, job_id: str, group: str) -> list[str]:
    """The group's scaling policy, from a Job as GET /v1/job/:job_id sends it, when the
    Nomad Autoscaler would act on it: one phrase naming it and how to turn it off."""
    scaling = _scaling_block(job, job_id, group)
    phrase = None if scaling is None else _acting_policy(scaling, job_id, group)
    return [] if phrase is None else [phrase]


def scaling_bounds(job: Any, job_id: str, group: str) -> tuple[int | None, int | None]:
    """The Min and Max of the group's scaling block (None where it has none), from the
    same Job: Nomad refuses a count outside them (HTTP 400), enabled or not, so a count
    asked outside is written at the bound, as a cloud group's MaxSize is."""
    scaling = _scaling_block(job, job_id, group) or {}
    low, high = scaling.get("Min"), scaling.get("Max")
    return (low if is_count(low) else None, high if is_count(high) else None)


def _scaling_block(job: Any, job_id: str, group: str) -> dict[str, Any] | None:
    groups = job.get("TaskGroups") if isinstance(job, dict) else None
    if not isinstance(groups, list):
        raise BackendError(f"the answer for Nomad job {job_id!r} is not a job (no TaskGroups)")
    for task_group in groups:
        if isinstance(task_group, dict) and task_group.get("Name") == group:
            scaling = task_group.get("Scaling")
            return scaling if isinstance(scaling, dict) else None
    return None


def _acting_policy(scaling: Mapping[str, Any], job_id: str, group: str) -> str | None:
    """None for a disabled block, or one with no policy: nothing acts on those."""
    if scaling.get("Enabled", True) is False or not scaling.get("Policy"):
        return None
    bounds = f"{scaling.get('Min', '?')} to {scaling.get('Max', '?')}"
    return (
        f"the scaling policy of Nomad job {job_id!r} group {group!r} ({bounds}; the Nomad "
        "Autoscaler acts on it): set `enabled = false` in its scaling block, or remove its "
        "policy block"
    )


# ---- the adapter: NomadJobGroup takes this in -----------------------------------------------


class WatchesScalingPolicy:
    """`other_autoscalers` for NomadJobGroup (backends.base.SeesOtherAutoscalers)."""

    config: NomadJobBackend
    connection: NomadConnection
    _jobs: nomad.api.Job
    _job_path: str
    target: str
    _sleep: Callable[[float], None]

    def other_autoscalers(self) -> list[str]:
        """The group's acting scaling policy; one attempt, read-only (see backends.base)."""
        job = self._read_job("the scaling policy", retries=0)
        return scaling_policy_of(job, self.config.job, self.config.group)

    def clamped_to_scaling_block(self, desired: int) -> tuple[int, str | None]:
        """The count Nomad takes for `desired`, and a sentence when that is not `desired`."""
        job = self._read_job("the scaling block", retries=self.config.retries)
        low, high = scaling_bounds(job, self.config.job, self.config.group)
        target = min(desired, high) if high is not None else desired
        target = max(target, low) if low is not None else target
        if target == desired:
            return desired, None
        return target, (
            f"asked for {desired}, clamped to {target}: the group's scaling block allows "
            f"{low if low is not None else 0}..{high if high is not None else 'any'}"
        )

    def _read_job(self, part: str, *, retries: int) -> Any:
        """GET /v1/job/:job_id (ACL read-job, as the group's count is read)."""
        from backends.nomad_job import describe_nomad_error, is_retryable_nomad_error

        config, connection = self.config, self.connection
        return call_with_retries(
            lambda: self._jobs.get_job(self._job_path),
            what=f"reading {part} of {self.target}",
            retries=retries,
            is_retryable=is_retryable_nomad_error,
            describe=lambda error: describe_nomad_error(error, connection, config.job),
            sleep=self._sleep,
            deadline_s=whole_answer_s(connection.timeout_s),
            server=server_of(connection.address),
        )
