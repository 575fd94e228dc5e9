"""Another autoscaler on a Nomad job group: NomadJobGroup.other_autoscalers through the real
python-nomad client against the Nomad API double (the job's TaskGroups[].Scaling, a
ScalingPolicy as Nomad's server keeps it: tests/doubles/nomad_api.py)."""

from __future__ import annotations

import pytest

from backends.base import BackendError, other_autoscalers
from tests.backends.test_nomad_job import GROUP, JOB, make_backend
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, nomad_api

__all__ = ["nomad_api"]  # the fixture, used by name below

# `policy { cooldown = "2m"  check "queue" { source = "prometheus" ... } }`, as the job's
# JSON carries an HCL block: each labelled block a list of one-key maps.
POLICY = {
    "cooldown": "2m",
    "evaluation_interval": "30s",
    "check": [
        {
            "queue": [
                {
                    "source": "prometheus",
                    "query": "sum(ocr_queue_depth)",
                    "strategy": [{"target-value": [{"target": 20}]}],
                }
            ]
        }
    ],
}


def test_an_enabled_scaling_policy_on_the_group_is_named_with_how_to_disable_it(
    nomad_api: NomadApiDouble,
) -> None:
    nomad_api.add_job(JOB, {GROUP: 3}, scaling={GROUP: (1, 12)}, scaling_policy={GROUP: POLICY})
    assert other_autoscalers(make_backend(nomad_api)) == [
        f"the scaling policy of Nomad job {JOB!r} group {GROUP!r} (1 to 12; the Nomad "
        "Autoscaler acts on it): set `enabled = false` in its scaling block, or remove its "
        "policy block"
    ]
    (request,) = nomad_api.requests
    assert (request.method, request.path) == ("GET", f"/v1/job/{JOB}")
    assert request.headers["x-nomad-token"] == DOUBLE_ACL_TOKEN


@pytest.mark.parametrize(
    "scaling",
    [
        {},  # no scaling block
        {"scaling": {GROUP: (1, 12)}},  # min and max only: bounds, nothing acts
        {
            "scaling": {GROUP: (1, 12)},
            "scaling_policy": {GROUP: POLICY},
            "scaling_disabled": {GROUP},
        },
        {"scaling": {"cpu": (1, 4)}, "scaling_policy": {"cpu": POLICY}},  # another group
    ],
    ids=["none", "bounds only", "enabled = false", "another group"],
)
def test_nothing_that_would_act_is_nothing_found(nomad_api: NomadApiDouble, scaling) -> None:
    nomad_api.add_job(JOB, {GROUP: 3, "cpu": 1}, **scaling)
    assert make_backend(nomad_api).other_autoscalers() == []


def test_the_job_is_read_in_the_pools_namespace(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(
        JOB,
        {GROUP: 3},
        namespace="inference",
        scaling={GROUP: (0, 5)},
        scaling_policy={GROUP: POLICY},
    )
    (found,) = make_backend(nomad_api, namespace="inference").other_autoscalers()
    assert "(0 to 5; the Nomad Autoscaler acts on it)" in found
    assert nomad_api.requests[0].query.get("namespace") == "inference"


def test_a_refused_token_is_said_with_the_acl_it_needs_after_one_attempt(
    nomad_api: NomadApiDouble,
) -> None:
    nomad_api.add_job(JOB, {GROUP: 3})
    sleeps: list[float] = []
    backend = make_backend(nomad_api, env={"NOMAD_TOKEN": "wrong-token-value"}, sleeps=sleeps)
    with pytest.raises(BackendError) as caught:
        backend.other_autoscalers()
    said = str(caught.value)
    assert said.startswith(f"reading the scaling policy of Nomad job {JOB!r} group {GROUP!r}")
    assert "needs read-job" in said and "wrong-token-value" not in said
    assert len(nomad_api.requests) == 1 and sleeps == []


def test_an_outage_costs_one_attempt_not_the_retries(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(JOB, {GROUP: 3}, scaling={GROUP: (1, 12)}, scaling_policy={GROUP: POLICY})
    nomad_api.fail_next(1, status=503)
    sleeps: list[float] = []
    with pytest.raises(BackendError, match="HTTP 503"):
        make_backend(nomad_api, sleeps=sleeps).other_autoscalers()
    assert len(nomad_api.requests) == 1 and sleeps == []


def test_an_answer_that_is_no_job_is_an_error_not_none_found(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(JOB, {GROUP: 3})
    backend = make_backend(nomad_api)
    backend._jobs.get_job = lambda _: ["not", "a", "job"]  # type: ignore[method-assign]
    with pytest.raises(BackendError, match="is not a job"):
        backend.other_autoscalers()
