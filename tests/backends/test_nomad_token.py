"""The Nomad ACL token from `token_file`, read again when Nomad no longer knows the one in
use (vault-agent rewriting a token from Vault's Nomad secrets engine).

Through the real python-nomad client (jobs, nodes, variable locks) against the Nomad API
double, which answers an unknown token as Nomad's HTTP agent does: HTTP 403, body "ACL
token not found" (command/agent/http.go). Rotation is Vault revoking the old token
(the double now knows only the new one) and the agent writing the new one to the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from backends.base import BackendError
from backends.leases import LeaderElection, make_leader_lock
from backends.nomad_connection import nomad_connection
from backends.nomad_job import NomadJobBackend, NomadJobGroup
from backends.nomad_node_api import NomadNodeApi
from tests.doubles.nomad_api import NomadApiDouble, nomad_api

__all__ = ["nomad_api"]  # the fixture, used by name below

JOB, GROUP = "face-match", "gpu"
SCALE_PATH = f"/v1/job/{JOB}/scale"
ISSUED = "7f3e91c0-4b2d-4a86-9e15-c2d8b0f6a374"  # what Vault issued first
ROTATED = "b84d0e2f-91a7-4c3b-8f60-5d1e7a29c4b8"  # what vault-agent wrote next


@pytest.fixture
def token_file(tmp_path: Path, nomad_api: NomadApiDouble) -> Path:
    path = tmp_path / "nomad-token"
    path.write_text(ISSUED + "\n")
    nomad_api.acl_token = ISSUED
    nomad_api.add_job(JOB, {GROUP: 3})
    return path


def job_group(double: NomadApiDouble, token_file: Path, env: dict[str, str]) -> NomadJobGroup:
    config = NomadJobBackend(
        kind="nomad_job",
        job=JOB,
        group=GROUP,
        address=double.url,
        token_file=token_file,
        timeout="1s",
        retries=1,
    )
    return NomadJobGroup(config, env=env, sleep=lambda _: None)


def rotate(double: NomadApiDouble, token_file: Path) -> None:
    """Vault revokes the first token in Nomad; the agent writes the new one."""
    double.acl_token = ROTATED
    token_file.write_text(ROTATED + "\n")


def sent_tokens(double: NomadApiDouble) -> list[str | None]:
    return [r.headers.get("x-nomad-token") for r in double.requests]


def test_the_file_s_token_is_sent_in_place_of_the_variable(
    nomad_api: NomadApiDouble, token_file: Path
) -> None:
    backend = job_group(nomad_api, token_file, {"NOMAD_TOKEN": "not-this-one"})
    assert backend.read().desired == 3
    assert set(sent_tokens(nomad_api)) == {ISSUED}


def test_a_token_rotated_in_the_file_is_used_once_nomad_forgets_the_old_one(
    nomad_api: NomadApiDouble, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = job_group(nomad_api, token_file, {})
    assert backend.read().desired == 3
    rotate(nomad_api, token_file)
    nomad_api.requests.clear()
    backend.scale(5, "forecast")  # the scale status read meets the 403 first
    assert nomad_api.jobs[("default", JOB)].groups[GROUP] == 5
    assert sent_tokens(nomad_api)[:2] == [ISSUED, ROTATED]  # one 403, then the new token
    assert set(sent_tokens(nomad_api)[2:]) == {ROTATED}  # and it is kept
    assert str(token_file) in caplog.text
    assert ISSUED not in caplog.text and ROTATED not in caplog.text


def test_a_write_refused_for_the_old_token_is_sent_again_whole(
    nomad_api: NomadApiDouble, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = job_group(nomad_api, token_file, {})
    read_job = nomad_api.job_json

    def read_then_rotate(job):  # revoked between the job's read and the scale write
        answer = read_job(job)
        rotate(nomad_api, token_file)
        return answer

    monkeypatch.setattr(nomad_api, "job_json", read_then_rotate)
    backend.scale(6, "forecast")
    posts = nomad_api.requests_to("POST", SCALE_PATH)
    assert [p.headers["x-nomad-token"] for p in posts] == [ISSUED, ROTATED]
    assert posts[0].body == posts[1].body and posts[1].body["Count"] == 6
    assert nomad_api.jobs[("default", JOB)].groups[GROUP] == 6


def test_a_file_still_holding_the_forgotten_token_fails_once_naming_the_file(
    nomad_api: NomadApiDouble, token_file: Path
) -> None:
    backend = job_group(nomad_api, token_file, {})
    nomad_api.acl_token = ROTATED  # revoked, and the agent has not written the new one yet
    with pytest.raises(BackendError) as caught:
        backend.scale(5, "forecast")
    text = str(caught.value)
    assert f"token_file {token_file}" in text and "ACL token not found" in text
    assert ISSUED not in text and ROTATED not in text
    assert sent_tokens(nomad_api) == [ISSUED]  # a 403 is not retried with the same token
    assert nomad_api.jobs[("default", JOB)].groups[GROUP] == 3


def test_a_token_from_the_environment_is_not_read_again(nomad_api: NomadApiDouble) -> None:
    nomad_api.acl_token = ROTATED
    nomad_api.add_job(JOB, {GROUP: 3})
    config = NomadJobBackend(kind="nomad_job", job=JOB, group=GROUP, address=nomad_api.url)
    backend = NomadJobGroup(config, env={"NOMAD_TOKEN": ISSUED}, sleep=lambda _: None)
    with pytest.raises(BackendError, match=r"\$NOMAD_TOKEN"):
        backend.read()
    assert len(nomad_api.requests) == 1


def test_the_node_endpoints_use_the_rotated_token_too(
    nomad_api: NomadApiDouble, token_file: Path
) -> None:
    nomad_api.add_node("i-0a1b2c3d4e5f60718")
    config = NomadJobBackend(
        kind="nomad_job", job=JOB, group=GROUP, address=nomad_api.url, token_file=token_file
    )
    nodes = NomadNodeApi(nomad_connection(config, {}), retries=0, sleep=lambda _: None)
    rotate(nomad_api, token_file)
    assert len(nodes.list_nodes()) == 1
    assert sent_tokens(nomad_api) == [ISSUED, ROTATED]


def test_the_leader_lock_reads_its_own_token_file_again(
    nomad_api: NomadApiDouble, token_file: Path
) -> None:
    election = LeaderElection(
        kind="nomad", address=nomad_api.url, token_file=token_file, identity="ops-a"
    )
    lock = make_leader_lock(election, {})
    assert lock.acquire_or_renew()
    rotate(nomad_api, token_file)
    assert lock.acquire_or_renew()  # the renewal met the 403, then went through
    assert sent_tokens(nomad_api)[-2:] == [ISSUED, ROTATED]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("\n  \n", "is empty"),
        (f"{ISSUED}\n{ROTATED}\n", "holds more than one token"),
    ],
)
def test_an_unusable_token_file_stops_the_start_naming_the_setting_and_the_file(
    tmp_path: Path, content: str | None, says: str
) -> None:
    path = tmp_path / "nomad-token"
    if content is not None:
        path.write_text(content)
    config = NomadJobBackend(kind="nomad_job", job=JOB, group=GROUP, token_file=path)
    with pytest.raises(ValueError) as caught:
        nomad_connection(config, {"NOMAD_TOKEN": ROTATED})
    text = str(caught.value)
    assert text.startswith(f"token_file: {path} ") and says in text
    assert ISSUED not in text and ROTATED not in text
