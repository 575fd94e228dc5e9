"""NomadJobGroup through the real python-nomad client against the Nomad API double."""

from __future__ import annotations

import logging
import socket
import time
import traceback
from typing import Any

import pytest

from backends.base import BackendError, FleetState
from backends.nomad_job import NomadJobBackend, NomadJobGroup
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, allocation, nomad_api

__all__ = ["nomad_api"]  # the fixture, used by name below

JOB, GROUP = "face-match", "gpu"
SCALE_PATH = f"/v1/job/{JOB}/scale"


def make_backend(
    double: NomadApiDouble,
    env: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
    **overrides: Any,
) -> NomadJobGroup:
    settings: dict[str, Any] = {
        "kind": "nomad_job",
        "job": JOB,
        "group": GROUP,
        "address": double.url,
        "timeout": "0.4s",
        "retries": 2,
    }
    settings.update(overrides)
    env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN} if env is None else env
    sleeps = [] if sleeps is None else sleeps
    return NomadJobGroup(NomadJobBackend(**settings), env=env, sleep=sleeps.append)


@pytest.fixture
def job(nomad_api: NomadApiDouble):
    return nomad_api.add_job(JOB, {GROUP: 3, "cpu": 1})


# ---- reading ------------------------------------------------------------------------


def test_read_counts_desired_ready_and_pending(nomad_api: NomadApiDouble, job) -> None:
    job.allocations = [
        allocation(GROUP, job_id=JOB),
        allocation(GROUP, job_id=JOB),
        allocation(GROUP, job_id=JOB, healthy=None),  # placed, health not yet known
        allocation(GROUP, job_id=JOB, client_status="complete", desired_status="stop"),
        allocation(GROUP, job_id=JOB, healthy=False),
        allocation("cpu", job_id=JOB),  # another group
    ]
    assert make_backend(nomad_api).read() == FleetState(desired=3, ready=2, pending=1)


def test_read_counts_running_allocations_outside_a_deployment(
    nomad_api: NomadApiDouble, job
) -> None:
    job.allocations = [
        allocation(GROUP, job_id=JOB, in_deployment=False),
        allocation(GROUP, job_id=JOB, client_status="pending", in_deployment=False),
    ]
    assert make_backend(nomad_api).read() == FleetState(desired=3, ready=1, pending=2)


def test_pending_is_never_negative(nomad_api: NomadApiDouble, job) -> None:
    job.groups[GROUP] = 1
    job.allocations = [allocation(GROUP, job_id=JOB) for _ in range(3)]  # scaling in
    assert make_backend(nomad_api).read() == FleetState(desired=1, ready=3, pending=0)


def test_requests_carry_token_namespace_and_region(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(JOB, {GROUP: 2}, namespace="ml")
    backend = make_backend(nomad_api, namespace="ml", region="eu")
    assert backend.read().desired == 2
    # none of its 2 allocations placed: the evaluations are asked why (nomad_placement)
    assert [r.path for r in nomad_api.requests] == [
        SCALE_PATH,
        f"/v1/job/{JOB}/allocations",
        f"/v1/job/{JOB}/evaluations",
    ]
    for request in nomad_api.requests:
        assert request.query["namespace"] == "ml"
        assert request.query["region"] == "eu"
        assert request.headers["x-nomad-token"] == DOUBLE_ACL_TOKEN
        assert request.headers["user-agent"] == "gpu-autoscaler"


def test_job_in_another_namespace_is_not_found(nomad_api: NomadApiDouble, job) -> None:
    with pytest.raises(BackendError, match=r"'face-match' not found in namespace 'ml'"):
        make_backend(nomad_api, namespace="ml").read()
    assert len(nomad_api.requests) == 1  # a 404 is not retried


def test_unknown_job(nomad_api: NomadApiDouble) -> None:
    with pytest.raises(BackendError) as caught:
        make_backend(nomad_api).scale(4, "forecast")
    assert "Nomad job 'face-match' not found in namespace 'default'" in str(caught.value)
    assert nomad_api.requests_to("POST", SCALE_PATH) == []


def test_unknown_group(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(JOB, {"web": 2, "cpu": 1})
    with pytest.raises(BackendError, match=r"no task group 'gpu' \(groups: cpu, web\)"):
        make_backend(nomad_api).read()
    assert len(nomad_api.requests) == 1


def test_stopped_job_is_an_error_not_an_empty_fleet(nomad_api: NomadApiDouble) -> None:
    nomad_api.add_job(JOB, {GROUP: 3}, stopped=True)
    with pytest.raises(BackendError, match="is stopped"):
        make_backend(nomad_api).read()


# ---- scaling ------------------------------------------------------------------------


def test_scale_writes_count_message_and_meta(nomad_api: NomadApiDouble, job) -> None:
    make_backend(nomad_api).scale(5, "forecast 420 req/s needs 5 nodes")
    (post,) = nomad_api.requests_to("POST", SCALE_PATH)
    assert post.body == {
        "Count": 5,
        "Target": {"Group": GROUP},
        "Message": "forecast 420 req/s needs 5 nodes (gpu-autoscaler)",
        "Meta": {"source": "gpu-autoscaler"},
    }
    assert post.query["namespace"] == "default"
    assert job.groups == {GROUP: 5, "cpu": 1}
    (event,) = job.events[GROUP]
    assert (event["PreviousCount"], event["Count"]) == (3, 5)
    assert make_backend(nomad_api).read().desired == 5


def test_scale_down_too(nomad_api: NomadApiDouble, job) -> None:
    make_backend(nomad_api).scale(0, "night: no traffic")
    assert job.groups[GROUP] == 0


def test_no_write_when_count_is_already_right(nomad_api: NomadApiDouble, job) -> None:
    make_backend(nomad_api).scale(3, "steady")
    assert nomad_api.requests_to("POST", SCALE_PATH) == []
    assert [r.method for r in nomad_api.requests] == ["GET"]


def test_negative_count_is_refused_before_any_request(nomad_api: NomadApiDouble, job) -> None:
    with pytest.raises(ValueError):
        make_backend(nomad_api).scale(-1, "bug")
    assert nomad_api.requests == []


def test_nomad_refusal_is_reported_in_its_words_without_retry(
    nomad_api: NomadApiDouble,
) -> None:
    nomad_api.add_job(JOB, {GROUP: 3}, active_deployment=True)
    sleeps: list[float] = []
    note = make_backend(nomad_api, sleeps=sleeps).scale(4, "forecast")  # a hold: see
    assert note is not None and "deployment of the job is active" in note  # ..._deployment.py
    assert len(nomad_api.requests_to("POST", SCALE_PATH)) == 1
    assert sleeps == []


def test_a_count_outside_the_scaling_block_is_written_at_its_bound_and_said(
    nomad_api: NomadApiDouble,
) -> None:
    """Against the Nomad API double, which refuses a count outside the group's scaling
    block with Nomad's HTTP 400 (nomad/job_endpoint.go, Job.Scale), enabled or not, and
    serves the block in GET /v1/job/:job_id. Before, the refused write failed the tick, and
    every tick after: a group at 3 with max 4 stayed at 3 while 9 were needed, and one at 3
    with min 1 was never scaled in to 1 while 0 were. Now the count is written at the bound
    and the clamp is returned for the tick to report, as an Auto Scaling group's MaxSize."""
    job = nomad_api.add_job(JOB, {GROUP: 3}, scaling={GROUP: (1, 4)})
    backend = make_backend(nomad_api)
    assert backend.scale(9, "campaign") == (
        "asked for 9, clamped to 4: the group's scaling block allows 1..4"
    )
    assert job.groups[GROUP] == 4
    assert backend.scale(0, "night") == (
        "asked for 0, clamped to 1: the group's scaling block allows 1..4"
    )
    assert job.groups[GROUP] == 1
    assert backend.scale(0, "night") is not None  # at the bound: said, nothing written
    assert len(nomad_api.requests_to("POST", SCALE_PATH)) == 2


# ---- retries and timeouts -----------------------------------------------------------


def test_retries_a_503_on_the_write_then_succeeds(nomad_api: NomadApiDouble, job) -> None:
    nomad_api.fail_next(2, status=503, method="POST")
    sleeps: list[float] = []
    make_backend(nomad_api, sleeps=sleeps).scale(6, "forecast")
    assert len(nomad_api.requests_to("POST", SCALE_PATH)) == 3
    assert len(sleeps) == 2
    assert job.groups[GROUP] == 6


def test_retries_a_5xx_on_the_read(nomad_api: NomadApiDouble, job) -> None:
    nomad_api.fail_next(1, status=500)
    sleeps: list[float] = []
    assert make_backend(nomad_api, sleeps=sleeps).read().desired == 3
    assert len(sleeps) == 1


def test_gives_up_after_the_configured_retries(nomad_api: NomadApiDouble, job) -> None:
    nomad_api.fail_next(10, status=503, method="POST")
    sleeps: list[float] = []
    with pytest.raises(BackendError) as caught:
        make_backend(nomad_api, sleeps=sleeps, retries=2).scale(6, "forecast")
    message = str(caught.value)
    assert "scaling Nomad job 'face-match' group 'gpu'" in message
    assert "after 3 attempts" in message
    assert "HTTP 503" in message
    assert len(nomad_api.requests_to("POST", SCALE_PATH)) == 3
    assert len(sleeps) == 2
    assert job.groups[GROUP] == 3


def test_a_timeout_is_retried(nomad_api: NomadApiDouble, job) -> None:
    nomad_api.delay_next(1, seconds=2.0)
    sleeps: list[float] = []
    started = time.monotonic()
    assert make_backend(nomad_api, sleeps=sleeps, timeout="0.3s").read().desired == 3
    assert time.monotonic() - started < 1.5  # the client gave up after its own timeout
    assert len(sleeps) == 1


def test_timeouts_on_every_attempt_are_reported(nomad_api: NomadApiDouble, job) -> None:
    nomad_api.delay_next(3, seconds=2.0)
    with pytest.raises(BackendError, match=r"after 3 attempts: no answer from .* within 0.2s"):
        make_backend(nomad_api, timeout="0.2s").read()


def test_a_dropped_connection_is_retried(nomad_api: NomadApiDouble, job) -> None:
    nomad_api.drop_next(1, method="POST")
    make_backend(nomad_api).scale(4, "forecast")
    assert len(nomad_api.requests_to("POST", SCALE_PATH)) == 2
    assert job.groups[GROUP] == 4


def test_nothing_listening_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = NomadJobBackend(
        kind="nomad_job", job=JOB, group=GROUP, address=f"http://127.0.0.1:{port}", retries=1
    )
    sleeps: list[float] = []
    backend = NomadJobGroup(config, env={}, sleep=sleeps.append)
    with pytest.raises(
        BackendError,
        match=r"after 2 attempts: connection to http\S+ failed \(ConnectionRefusedError\)",
    ):
        backend.read()
    assert len(sleeps) == 1


# ---- the ACL token ------------------------------------------------------------------


def test_a_refused_token_is_not_retried_and_not_repeated(
    nomad_api: NomadApiDouble, job, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "0000-wrong-token-0000"
    sleeps: list[float] = []
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as caught:
        make_backend(nomad_api, env={"NOMAD_TOKEN": wrong}, sleeps=sleeps).scale(5, "x")
    message = str(caught.value)
    assert "Nomad refused the ACL token from $NOMAD_TOKEN" in message
    assert "HTTP 403: ACL token not found" in message
    assert len(nomad_api.requests) == 1
    assert sleeps == []
    assert wrong not in message
    assert wrong not in caplog.text
    assert wrong not in "".join(traceback.format_exception(caught.value))


def test_a_missing_token_says_which_variable_to_set(nomad_api: NomadApiDouble, job) -> None:
    with pytest.raises(BackendError, match=r"no ACL token was given \(\$PROD_NOMAD_TOKEN is not"):
        make_backend(nomad_api, env={"NOMAD_TOKEN": "x"}, token_env="PROD_NOMAD_TOKEN").read()
    assert "x-nomad-token" not in nomad_api.requests[0].headers


def test_token_from_the_configured_variable(nomad_api: NomadApiDouble, job) -> None:
    env = {"PROD_NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    assert make_backend(nomad_api, env=env, token_env="PROD_NOMAD_TOKEN").read().desired == 3


def test_token_never_appears_in_logs_or_errors(
    nomad_api: NomadApiDouble, job, caplog: pytest.LogCaptureFixture
) -> None:
    """Retries, a refusal, a give-up and a success, all logged at DEBUG (urllib3 too)."""
    caplog.set_level(logging.DEBUG)
    backend = make_backend(nomad_api)
    texts = [repr(backend), repr(backend.connection)]
    nomad_api.fail_next(1, status=503)
    nomad_api.drop_next(1, method="POST")
    backend.scale(7, "forecast")
    nomad_api.fail_next(1, status=400, method="POST")
    with pytest.raises(BackendError) as refused:
        backend.scale(8, "again")
    nomad_api.fail_next(3, status=502)
    with pytest.raises(BackendError) as gave_up:
        backend.read()
    for error in (refused.value, gave_up.value):
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    assert len(texts) == 8
    assert len(nomad_api.requests) > 6
    assert all(r.headers["x-nomad-token"] == DOUBLE_ACL_TOKEN for r in nomad_api.requests)
    assert DOUBLE_ACL_TOKEN not in caplog.text
    for text in texts:
        assert DOUBLE_ACL_TOKEN not in text


def test_a_server_echoing_the_token_is_redacted(nomad_api: NomadApiDouble, job) -> None:
    """Even a proxy that quotes the request back must not put the token in our errors."""
    original_authorize = nomad_api.authorize
    nomad_api.authorize = lambda headers: f"bad token {headers.get('x-nomad-token')}"
    try:
        with pytest.raises(BackendError) as caught:
            make_backend(nomad_api).read()
    finally:
        nomad_api.authorize = original_authorize
    assert "bad token [redacted]" in str(caught.value)
    assert DOUBLE_ACL_TOKEN not in str(caught.value)
