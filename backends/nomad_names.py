"""Names Nomad's server can never hold (nomad/structs): a setting with one was looked up
in vain at every tick ("job not found"), so the config refuses it instead."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from common.settings import Name

_NAMESPACE = re.compile(r"[a-zA-Z0-9-]{1,128}")
"""Nomad's validNamespaceName."""


def nomad_namespace_problem(namespace: str) -> str | None:
    """Why no Nomad namespace can have this name; None where one can."""
    if _NAMESPACE.fullmatch(namespace):
        return None
    return (
        f"{namespace!r} is no Nomad namespace: letters, digits and '-', at most 128 "
        "(no '_', '.' or space)"
    )


def _namespace(namespace: str) -> str:
    problem = nomad_namespace_problem(namespace)
    if problem is not None:
        raise ValueError(problem)
    return namespace


def _job_id(job: str) -> str:
    if " " in job:  # Job.Validate: "Job ID contains a space"
        raise ValueError(f"{job!r} contains a space, which no Nomad job ID holds")
    return job


NomadNamespace = Annotated[str, AfterValidator(_namespace)]
NomadJobId = Annotated[Name, AfterValidator(_job_id)]
"""A job's ID: not blank, and one Nomad can hold."""
