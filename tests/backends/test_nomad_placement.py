"""Allocations Nomad cannot place (no GPU node with a free device, a constraint no node
meets): said with Nomad's cause, and no scale-out into them. NomadJobGroup through the
real python-nomad client against the Nomad API double, whose "List Job Evaluations"
follows Nomad's documents and structs (tests.doubles.nomad_evaluations): the scale's
evaluation with FailedTGAllocs, and the blocked evaluation it left."""

from __future__ import annotations

from typing import Any

import pytest

from backends.nomad_job import NomadJobBackend, NomadJobGroup
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, allocation, nomad_api
from tests.doubles.nomad_evaluations import alloc_metric, evaluation, placement_failed

__all__ = ["nomad_api"]  # the fixture, used by name below

JOB, GROUP = "face-match", "gpu"
SCALE_PATH = f"/v1/job/{JOB}/scale"
EVALS_PATH = f"/v1/job/{JOB}/evaluations"
NO_DEVICE = "devices: no devices match request"


def job_group(double: NomadApiDouble) -> NomadJobGroup:
    config = NomadJobBackend(
        kind="nomad_job", job=JOB, group=GROUP, address=double.url, timeout="1s", retries=2
    )
    return NomadJobGroup(config, env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}, sleep=lambda _: None)


def gpu_job_short_of_devices(double: NomadApiDouble, **metric: Any):
    """Count 5, three allocations running, two Nomad could not place on 3 GPU nodes."""
    job = double.add_job(JOB, {GROUP: 5, "cpu": 1})
    job.allocations = [allocation(GROUP, job_id=JOB) for _ in range(3)]
    settings = {"failed": 2, "exhausted": {NO_DEVICE: 3}, **metric}
    job.evaluations = placement_failed(JOB, GROUP, alloc_metric(**settings))
    return job


def test_unplaced_allocations_are_said_with_nomads_cause(nomad_api: NomadApiDouble) -> None:
    """Before, the two read as pending (nodes on the way) for ever and nothing said why."""
    gpu_job_short_of_devices(nomad_api)
    fleet = job_group(nomad_api).read()
    assert (fleet.desired, fleet.ready, fleet.pending) == (5, 3, 2)
    assert fleet.stuck is not None
    assert "Nomad cannot place 2 allocation(s)" in fleet.stuck
    assert f'Dimension "{NO_DEVICE}" exhausted on 3 nodes' in fleet.stuck
    assert "Resources exhausted on 3 nodes" in fleet.stuck


def test_a_scale_out_is_still_written_while_allocations_wait(nomad_api: NomadApiDouble) -> None:
    """The count is the demand's: what adds GPU nodes (a cluster autoscaler) reacts to the
    queue, so a held count would let the fleet grow one boot at a time."""
    job = gpu_job_short_of_devices(nomad_api)
    group = job_group(nomad_api)
    assert group.read().stuck is not None
    assert group.scale(9, "forecast") is None and job.groups[GROUP] == 9
    assert group.scale(4, "forecast") is None and job.groups[GROUP] == 4


def test_once_placed_the_scale_out_is_written(nomad_api: NomadApiDouble) -> None:
    job = gpu_job_short_of_devices(nomad_api)
    group = job_group(nomad_api)
    group.read()
    job.allocations += [allocation(GROUP, job_id=JOB) for _ in range(2)]  # room was found
    job.evaluations[0]["Status"] = "cancelled"  # as Nomad cancels it after the placement
    assert group.read().stuck is None
    assert group.scale(9, "forecast") is None and job.groups[GROUP] == 9


def test_an_older_nomads_blocked_evaluation_is_explained_by_its_parent(
    nomad_api: NomadApiDouble,
) -> None:
    """Before 1.2 the blocked evaluation carried no FailedTGAllocs: the evaluation that
    left it (its PreviousEval) says why."""
    job = nomad_api.add_job(JOB, {GROUP: 2})
    metric = alloc_metric(failed=2, constraint_filtered={"${meta.gpu} = a100": 4})
    job.evaluations = placement_failed(JOB, GROUP, metric, carried=False)
    note = job_group(nomad_api).read().stuck
    assert note is not None and 'Constraint "${meta.gpu} = a100": 4 nodes excluded' in note


def test_another_groups_blocked_placements_do_not_hold_this_one(
    nomad_api: NomadApiDouble,
) -> None:
    job = nomad_api.add_job(JOB, {GROUP: 2, "cpu": 4})
    job.evaluations = placement_failed(JOB, "cpu", alloc_metric(failed=4, exhausted={"cpu": 3}))
    group = job_group(nomad_api)
    assert group.read().stuck is None
    assert group.scale(3, "forecast") is None and job.groups[GROUP] == 3


def test_evaluations_are_asked_only_while_some_allocations_are_not_placed(
    nomad_api: NomadApiDouble,
) -> None:
    """Allocations placed and still starting (a model loading) are on the way: no call."""
    job = nomad_api.add_job(JOB, {GROUP: 3})
    job.allocations = [allocation(GROUP, job_id=JOB, healthy=None) for _ in range(3)]
    job.allocations[0]["ClientStatus"] = "pending"
    job.evaluations = [evaluation(JOB)]
    fleet = job_group(nomad_api).read()
    assert (fleet.ready, fleet.pending, fleet.stuck) == (0, 3, None)
    assert nomad_api.requests_to("GET", EVALS_PATH) == []


@pytest.mark.parametrize("answer", [{"ID": "x"}, ["x"]])
def test_an_evaluation_listing_of_odd_shape_is_logged_and_the_read_stands(
    nomad_api: NomadApiDouble, answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    job = nomad_api.add_job(JOB, {GROUP: 2})
    job.evaluations = answer
    fleet = job_group(nomad_api).read()
    assert (fleet.desired, fleet.ready, fleet.pending, fleet.stuck) == (2, 0, 2, None)
    assert "listing evaluations of" in caplog.text and "unexpected answer shape" in caplog.text


def test_an_evaluation_listing_that_fails_leaves_the_read_and_the_last_verdict(
    nomad_api: NomadApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """The listing only says why allocations wait: failing the read with it (a 5xx, a
    timeout of Nomad's busy servers) left the pool unscaled, a backend failure told, just
    while the demand outgrew the cluster. Best effort, as the Kubernetes pod list is."""
    gpu_job_short_of_devices(nomad_api)
    group = job_group(nomad_api)
    said = group.read().stuck
    assert said is not None and "Nomad cannot place 2" in said
    nomad_api.fail_next(3, status=500, path=EVALS_PATH)  # every attempt (retries: 2)
    fleet = group.read()
    assert (fleet.desired, fleet.ready, fleet.pending, fleet.stuck) == (5, 3, 2, said)
    assert "listing evaluations of" in caplog.text and "500" in caplog.text
    assert len(nomad_api.requests_to("GET", EVALS_PATH)) == 1 + 3
