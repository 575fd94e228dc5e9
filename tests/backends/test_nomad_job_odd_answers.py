"""NomadJobGroup against odd answers, through the real python-nomad client and the double
of the documented Nomad HTTP API (tests/doubles/nomad_api.py), which sends them in place
of its own."""

from __future__ import annotations

import logging

import pytest

from backends.base import BackendError
from backends.leases import LeaderElection, LeaderLockError
from backends.nomad_lock import NomadVariableLock, nomad_lock_connection
from tests.backends.test_nomad_job import GROUP, JOB, make_backend
from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, nomad_api

__all__ = ["nomad_api"]  # the fixture, used by name below


def pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


@pytest.mark.parametrize("padding", [180, 187, 195])
def test_a_token_echoed_across_the_cut_of_an_error_body_leaves_no_piece(
    nomad_api: NomadApiDouble, caplog: pytest.LogCaptureFixture, padding: int
) -> None:
    """Against the double of the documented Nomad HTTP API, refusing with a body (as a proxy
    in front of it might) that quotes the token after `padding` characters, so that the
    200-character cut of the body falls inside the token. Before, the body was cut first
    and redacted after: the token's first characters (19 and 12 here) no longer
    matched it and reached the error and the log. Now the body is redacted before it is cut."""
    nomad_api.add_job(JOB, {GROUP: 3})
    nomad_api.authorize = lambda headers: f"{'x' * padding} {headers.get('x-nomad-token')}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as caught:
        make_backend(nomad_api).read()
    texts = str(caught.value) + caplog.text
    assert "HTTP 403" in str(caught.value)
    assert [piece for piece in pieces(DOUBLE_ACL_TOKEN) if piece in texts] == []


@pytest.mark.parametrize(
    "task_groups",
    [{GROUP: None}, {GROUP: "3"}, {GROUP: 3}, [GROUP], "gpu"],
    ids=["group null", "group a string", "group a number", "groups a list", "groups a string"],
)
def test_a_scale_status_of_odd_shape_is_a_backend_error(
    nomad_api: NomadApiDouble, task_groups: object
) -> None:
    """Against the double of the documented Nomad HTTP API, whose JobScaleStatus carries
    TaskGroups of a shape the documents do not allow. Before, check() and read() raised
    AttributeError or TypeError (`validate --check-backends` ended in a traceback, a tick
    in a 'tick failed' surprise); now it is a BackendError naming the job."""
    job = nomad_api.add_job(JOB, {GROUP: 3})
    normal = nomad_api.scale_status_json
    nomad_api.scale_status_json = lambda fake: {**normal(fake), "TaskGroups": task_groups}  # type: ignore[method-assign]
    backend = make_backend(nomad_api)
    with pytest.raises(BackendError, match=f"Nomad job '{JOB}'"):
        backend.check()
    with pytest.raises(BackendError, match=f"Nomad job '{JOB}'"):
        backend.scale(5, "forecast")
    assert job.groups[GROUP] == 3


@pytest.mark.parametrize(
    "stub",
    [
        None,
        "alloc",
        {
            "TaskGroup": GROUP,
            "DesiredStatus": "run",
            "ClientStatus": "running",
            "DeploymentStatus": "healthy",
        },
    ],
    ids=["null", "a string", "DeploymentStatus a string"],
)
def test_an_allocation_listing_of_odd_shape_is_a_backend_error(
    nomad_api: NomadApiDouble, stub: object
) -> None:
    """Against the double of the documented Nomad HTTP API, listing an allocation stub
    that is not an AllocationListStub. Before, read() raised AttributeError; now it is a
    BackendError (a malformed stub is not guessed as ready or not)."""
    nomad_api.add_job(JOB, {GROUP: 3})
    normal = nomad_api.route

    def route(method: str, parts: list[str], query: dict[str, str], body: object):
        if parts[-1] == "allocations":
            return 200, [stub]
        return normal(method, parts, query, body)

    nomad_api.route = route  # type: ignore[method-assign]
    with pytest.raises(BackendError, match="allocations"):
        make_backend(nomad_api).read()


class _Redirecting(JsonApiHandler):
    """Answers every request with `code`, Location the same path on `target`."""

    def serve(self, request: IncomingRequest) -> None:
        double: RedirectingDouble = self.server.double
        double.record(request)
        location = double.target + self.path
        self.send_bytes(double.code, b"{}", "application/json", {"Location": location})


class RedirectingDouble(LoopbackDouble[IncomingRequest]):
    def __init__(self, target: str, code: int) -> None:
        super().__init__(_Redirecting, quiet_errors=True)
        self.target, self.code = target, code


@pytest.mark.parametrize("code", [302, 307, 308])
def test_a_redirect_to_another_host_is_not_followed_and_the_token_stays(
    nomad_api: NomadApiDouble, code: int
) -> None:
    """A server at the Nomad address redirecting to another host (the double of the
    documented Nomad API at `localhost`, not 127.0.0.1). requests drops only Authorization
    on such a redirect, and python-nomad's PUT (the leader lock's) follows redirects: the
    lock was taken at the other host, sent X-Nomad-Token with it. Now no redirect is
    followed, nor taken for Nomad's answer: an error, nothing sent elsewhere."""
    nomad_api.add_job(JOB, {GROUP: 3})
    elsewhere = nomad_api.url.replace("127.0.0.1", "localhost")
    with RedirectingDouble(elsewhere, code) as redirecting:
        backend = make_backend(redirecting, retries=0)
        with pytest.raises(BackendError, match="RedirectRefused") as read:
            backend.read()
        with pytest.raises(BackendError, match="RedirectRefused") as scale:
            backend.scale(5, "forecast")
        election = LeaderElection(kind="nomad", address=redirecting.url)
        env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
        lock = NomadVariableLock(
            nomad_lock_connection(election, env), "autoscaler/leader", ttl_s=15, identity="me"
        )
        with pytest.raises(LeaderLockError, match="RedirectRefused") as acquire:
            lock.acquire_or_renew()
    assert len(redirecting.requests) == 3  # the scale status, twice; the lock
    assert nomad_api.requests == []
    texts = " ".join(str(caught.value) for caught in (read, scale, acquire))
    assert DOUBLE_ACL_TOKEN not in texts
