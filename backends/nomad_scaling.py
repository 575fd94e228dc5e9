"""A Nomad job group's enabled scaling policy: another autoscaler on the fleet.

A task group's `scaling` block with a `policy` is what the Nomad Autoscaler acts on: it
sets the same group count we set, and the two then undo each other's counts. NomadJobGroup
reads the job (GET /v1/job/:job_id, ACL read-job, as it reads the group already) to say so
before it acts. A block with `enabled = false`, or one without a policy (only `min` and
`max`: the bounds Nomad holds every count to, ours included), does not act and is not
named. Kept apart from backends.nomad_job, which is full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from backends.base import BackendError
from backends.retry import call_with_retries
from common.deadline import whole_answer_s

if TYPE_CHECKING:
    import nomad.api

    from backends.nomad_job import NomadConnection, NomadJobBackend


# ---- pure -----------------------------------------------------------------------------


def scaling_policy_of(job: Any, job_id: str, group: str) -> list[str]:
    """The group's scaling policy, from a Job as GET /v1/job/:job_id sends it, when the
    Nomad Autoscaler would act on it: one phrase naming it and how to turn it off."""
    groups = job.get("TaskGroups") if isinstance(job, dict) else None
    if not isinstance(groups, list):
        raise BackendError(f"the answer for Nomad job {job_id!r} is not a job (no TaskGroups)")
    for task_group in groups:
        if isinstance(task_group, dict) and task_group.get("Name") == group:
            scaling = task_group.get("Scaling")
            phrase = _acting_policy(scaling, job_id, group) if isinstance(scaling, dict) else None
            return [] if phrase is None else [phrase]
    return []


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
        from backends.nomad_job import describe_nomad_error, is_retryable_nomad_error

        config, connection = self.config, self.connection
        job = call_with_retries(
            lambda: self._jobs.get_job(self._job_path),
            what=f"reading the scaling policy of {self.target}",
            retries=0,
            is_retryable=is_retryable_nomad_error,
            describe=lambda error: describe_nomad_error(error, connection, config.job),
            sleep=self._sleep,
            deadline_s=whole_answer_s(connection.timeout_s),
        )
        return scaling_policy_of(job, config.job, config.group)
