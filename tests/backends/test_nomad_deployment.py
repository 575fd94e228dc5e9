"""A scale Nomad refuses while a deployment of the job is active: held and said, then a
failure once it lasts. NomadJobGroup through the real python-nomad client against the
Nomad API double, which answers such a scale as Nomad's Job.Scale does (HTTP 400, body
"job scaling blocked due to active deployment", the count unchanged)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backends.base import BackendError
from backends.nomad_deployment import DEPLOYMENT_PATIENCE
from backends.nomad_job import NomadJobBackend, NomadJobGroup
from common.clock import SimulatedClock
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, nomad_api

__all__ = ["nomad_api"]  # the fixture, used by name below

JOB, GROUP = "face-match", "gpu"
SCALE_PATH = f"/v1/job/{JOB}/scale"
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def job_group(double: NomadApiDouble, clock: SimulatedClock) -> NomadJobGroup:
    config = NomadJobBackend(
        kind="nomad_job", job=JOB, group=GROUP, address=double.url, timeout="1s", retries=2
    )
    env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    return NomadJobGroup(config, env=env, sleep=lambda _: None, clock=clock)


def test_a_scale_blocked_by_a_deployment_is_held_and_said_not_failed(
    nomad_api: NomadApiDouble,
) -> None:
    """Before, the refusal was a BackendError: the tick failed and alerted as a backend
    failure for as long as the deployment ran (minutes after every scale-up of a job with
    an update block). Now the count is held, the note says why, and the write is asked
    once per tick (a 400 is not retried)."""
    job = nomad_api.add_job(JOB, {GROUP: 3}, active_deployment=True)
    backend = job_group(nomad_api, SimulatedClock(START))
    note = backend.scale(5, "forecast")
    assert note is not None and "held at 3" in note and "deployment" in note
    assert job.groups[GROUP] == 3
    assert len(nomad_api.requests_to("POST", SCALE_PATH)) == 1


def test_a_deployment_that_blocks_past_the_patience_becomes_a_failure(
    nomad_api: NomadApiDouble,
) -> None:
    job = nomad_api.add_job(JOB, {GROUP: 3}, active_deployment=True)
    clock = SimulatedClock(START)
    backend = job_group(nomad_api, clock)
    for _ in range(7):  # a tick every 5 min for 30 min: held
        assert backend.scale(5, "forecast") is not None
        clock.advance(timedelta(minutes=5))
    assert clock.now() - START > DEPLOYMENT_PATIENCE
    with pytest.raises(BackendError) as stuck:
        backend.scale(5, "forecast")
    assert "since 2026-11-23T12:00+00:00" in str(stuck.value)
    assert "nomad job deployments" in str(stuck.value)
    job.active_deployment = False  # promoted, or failed by someone
    assert backend.scale(5, "forecast") is None and job.groups[GROUP] == 5
    job.active_deployment = True  # the deployment of that scale: a new run, held again
    clock.advance(timedelta(minutes=1))
    note = backend.scale(6, "forecast")
    assert note is not None and "since 2026-11-23T12:36" in note


def test_a_block_long_after_the_last_one_starts_a_new_run(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(JOB, {GROUP: 3}, active_deployment=True)
    clock = SimulatedClock(START)
    backend = job_group(nomad_api, clock)
    backend.scale(5, "forecast")
    clock.advance(DEPLOYMENT_PATIENCE + timedelta(minutes=10))  # the pool stopped asking
    note = backend.scale(5, "forecast")
    assert note is not None and "since 2026-11-23T12:40" in note


def test_another_400_is_still_a_failure(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(JOB, {GROUP: 3}, scaling={GROUP: (1, 10)})
    backend = job_group(nomad_api, SimulatedClock(START))
    nomad_api.fail_next(1, status=400, method="POST", path=SCALE_PATH)
    with pytest.raises(BackendError, match="400"):
        backend.scale(5, "forecast")


def test_a_refusal_in_other_words_is_held_while_the_jobs_deployment_is_active(
    nomad_api: NomadApiDouble,
) -> None:
    """The hold matched Nomad's 400 body word for word: a Nomad that words it otherwise
    made every scale-up's deployment a backend failure each tick. A 400 in other words is
    a hold while the job's latest deployment (GET /v1/job/:job_id/deployment) is active."""
    job = nomad_api.add_job(
        JOB, {GROUP: 3}, active_deployment=True, blocked_words="scaling blocked: deployment active"
    )
    backend = job_group(nomad_api, SimulatedClock(START))
    note = backend.scale(5, "forecast")
    assert note is not None and "held at 3" in note and "deployment" in note
    assert len(nomad_api.requests_to("GET", f"/v1/job/{JOB}/deployment")) == 1
    job.active_deployment = False
    assert backend.scale(5, "forecast") is None and job.groups[GROUP] == 5


def test_another_400_after_a_finished_deployment_is_still_a_failure(
    nomad_api: NomadApiDouble,
) -> None:
    job = nomad_api.add_job(JOB, {GROUP: 3}, version=4)  # its last deployment: successful
    assert nomad_api.deployment_json(job) is not None
    backend = job_group(nomad_api, SimulatedClock(START))
    nomad_api.fail_next(1, status=400, method="POST", path=SCALE_PATH)
    with pytest.raises(BackendError, match="400"):
        backend.scale(5, "forecast")
