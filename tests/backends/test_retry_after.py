"""A server that says how long to wait is waited (backends.retry, common.retry_after),
through the real clients against the doubles: the Kubernetes API server's 429 (plain
text, "Too many requests, please try again later.") and 503 with Retry-After, and a
proxy in front of Nomad answering 429/503 with one. Sleeps are recorded, never slept;
the deadline's clock is a fake one that moves only when the loop sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from autoscaler.daemon import Daemon
from backends.base import BackendError
from backends.kubernetes_lease import KubernetesLease, kubernetes_lock_settings
from backends.leases import LeaderElection, LeaderLockError
from backends.nomad_connection import nomad_connection
from backends.nomad_job import NomadJobBackend
from backends.nomad_lock import NomadVariableLock, nomad_lock_connection
from backends.nomad_node_api import NomadNodeApi
from common.clock import SimulatedClock
from common.deadline import call_within, due_within
from tests.backends.test_kubernetes import SCALE, make_backend
from tests.backends.test_leases import NOON, write_daemon_config
from tests.backends.test_nomad_job import JOB as NOMAD_JOB
from tests.backends.test_nomad_job import make_backend as make_nomad_backend
from tests.doubles.kubernetes_api import KubernetesApiDouble, kubernetes_api
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, nomad_api
from tests.support import FakeClock

__all__ = ["kubernetes_api", "nomad_api"]  # the fixtures, used by name below


@pytest.fixture
def deployment(kubernetes_api: KubernetesApiDouble):
    return kubernetes_api.add_deployment("face-match", replicas=4, ready=3)


# ---- Kubernetes --------------------------------------------------------------------


def test_kubernetes_429_is_retried_after_the_wait_the_api_server_asked(
    kubernetes_api, deployment, tmp_path: Path
) -> None:
    kubernetes_api.fail_next(1, status=429, method="PATCH", retry_after="3")
    sleeps: list[float] = []
    make_backend(kubernetes_api, tmp_path, sleeps=sleeps).scale(6, "forecast")
    assert deployment.replicas == 6
    assert sleeps == [3.0]  # the backoff alone would have been under 0.5 s


def test_kubernetes_503_with_retry_after_is_waited_too(
    kubernetes_api, deployment, tmp_path: Path
) -> None:
    kubernetes_api.fail_next(1, status=503, method="GET", retry_after="2")
    sleeps: list[float] = []
    assert make_backend(kubernetes_api, tmp_path, sleeps=sleeps).read().desired == 4
    assert sleeps == [2.0]


def test_kubernetes_wait_past_the_ticks_deadline_is_not_begun(
    kubernetes_api, deployment, tmp_path: Path
) -> None:
    kubernetes_api.fail_next(1, status=429, method="PATCH", retry_after="30")
    clock = FakeClock(5000.0)
    backend = make_backend(kubernetes_api, tmp_path, sleeps=clock.sleeps)
    with due_within(10.0, clock), pytest.raises(BackendError) as caught:
        backend.scale(6, "forecast")
    assert "HTTP 429: Too many requests, please try again later" in str(caught.value)
    assert "the server asked to wait 30 s, past the deadline" in str(caught.value)
    assert clock.sleeps == [] and len(kubernetes_api.requests_to("PATCH", SCALE)) == 1
    assert deployment.replicas == 4


def test_kubernetes_absurd_retry_after_ends_the_retries_at_once(
    kubernetes_api, deployment, tmp_path: Path
) -> None:
    kubernetes_api.fail_next(1, status=429, method="GET", retry_after="3600")
    sleeps: list[float] = []
    with pytest.raises(BackendError, match="asked to wait 3600 s, longer than a retry waits"):
        make_backend(kubernetes_api, tmp_path, sleeps=sleeps).read()
    assert sleeps == [] and len(kubernetes_api.requests_to("GET", SCALE)) == 1


@pytest.mark.parametrize("garbled", ["-5", "soon", "Tomorrow, maybe"])
def test_kubernetes_garbled_retry_after_leaves_the_backoff(
    kubernetes_api, deployment, tmp_path: Path, garbled: str
) -> None:
    kubernetes_api.fail_next(1, status=429, method="GET", retry_after=garbled)
    sleeps: list[float] = []
    assert make_backend(kubernetes_api, tmp_path, sleeps=sleeps).read().desired == 4
    assert len(sleeps) == 1 and sleeps[0] <= 0.5


# ---- Nomad, behind a proxy that rate limits -------------------------------------------


@pytest.fixture
def nomad_job(nomad_api: NomadApiDouble):
    return nomad_api.add_job(NOMAD_JOB, {"gpu": 3})


def test_nomad_proxy_429_is_retried_after_the_wait_it_asked(nomad_api, nomad_job) -> None:
    nomad_api.fail_next(1, status=429, method="POST", path="/scale", retry_after="4")
    sleeps: list[float] = []
    make_nomad_backend(nomad_api, sleeps=sleeps).scale(5, "forecast")
    assert nomad_job.groups["gpu"] == 5
    assert sleeps == [4.0]


def test_nomad_proxy_503_with_an_http_date_is_waited(nomad_api, nomad_job) -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    nomad_api.fail_next(1, status=503, method="GET", retry_after=format_datetime(later, True))
    sleeps: list[float] = []
    assert make_nomad_backend(nomad_api, sleeps=sleeps).read().desired == 3
    assert len(sleeps) == 1 and 25.0 < sleeps[0] <= 30.0  # whole seconds, read a moment later


def test_nomad_wait_past_the_ticks_deadline_gives_up_saying_so(nomad_api, nomad_job) -> None:
    nomad_api.fail_next(1, status=503, method="POST", path="/scale", retry_after="20")
    clock = FakeClock(5000.0)
    backend = make_nomad_backend(nomad_api, sleeps=clock.sleeps)
    with due_within(15.0, clock), pytest.raises(BackendError) as caught:
        backend.scale(5, "forecast")
    assert "Nomad answered HTTP 503" in str(caught.value)
    assert "the server asked to wait 20 s, past the deadline (15.0 s left)" in str(caught.value)
    assert clock.sleeps == [] and nomad_job.groups["gpu"] == 3


def test_nomad_node_calls_wait_what_the_proxy_asked(nomad_api) -> None:
    nomad_api.add_node("i-0abc")
    nomad_api.fail_next(1, status=429, method="GET", path="/v1/nodes", retry_after="2")
    connection = nomad_connection(
        NomadJobBackend(
            kind="nomad_job", job=NOMAD_JOB, group="gpu", address=nomad_api.url, timeout="0.4s"
        ),
        {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN},
    )
    sleeps: list[float] = []
    assert len(NomadNodeApi(connection, retries=2, sleep=sleeps.append).list_nodes()) == 1
    assert sleeps == [2.0]


# ---- the leader lock, within its own deadline -----------------------------------------


def kubernetes_lease(double: KubernetesApiDouble, tmp_path: Path, sleep) -> KubernetesLease:
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    election = LeaderElection(
        kind="kubernetes", namespace="ml", kubeconfig=kubeconfig, ttl="15s", identity="ops-a"
    )
    return KubernetesLease(
        lambda: kubernetes_lock_settings(election, {}),
        "gpu-autoscaler-leader",
        ttl_s=15,
        identity="ops-a",
        sleep=sleep,
    )


def nomad_lock(double: NomadApiDouble, sleep) -> NomadVariableLock:
    election = LeaderElection(kind="nomad", address=double.url, ttl="15s", identity="ops-a")
    connection = nomad_lock_connection(election, {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN})
    return NomadVariableLock(connection, "gpu-lock", ttl_s=15, identity="ops-a", sleep=sleep)


def test_the_lease_waits_what_the_api_server_asked_then_takes_it(
    kubernetes_api, tmp_path: Path
) -> None:
    kubernetes_api.fail_next(1, status=429, method="GET", retry_after="2")
    clock = FakeClock(5000.0)
    with due_within(10.0, clock):
        assert kubernetes_lease(kubernetes_api, tmp_path, clock.sleep).acquire_or_renew()
    assert clock.sleeps == [2.0]


def test_the_lease_does_not_wait_past_the_locks_own_deadline(
    kubernetes_api, tmp_path: Path
) -> None:
    """The daemon calls the lock under a deadline of its own (call_within): a wait that
    would outlast it is not begun, and the error says what the server asked."""
    kubernetes_api.fail_next(1, status=429, method="GET", retry_after="30")
    sleeps: list[float] = []
    lease = kubernetes_lease(kubernetes_api, tmp_path, sleeps.append)
    with pytest.raises(LeaderLockError, match="asked to wait 30 s, past the deadline"):
        call_within(10.0, lease.acquire_or_renew, "lock")
    assert sleeps == [] and len(kubernetes_api.requests) == 1


def test_the_nomad_lock_waits_what_the_proxy_asked_then_takes_it(nomad_api) -> None:
    nomad_api.fail_next(1, status=429, method="PUT", path="/v1/var", retry_after="3")
    clock = FakeClock(5000.0)
    lock = nomad_lock(nomad_api, clock.sleep)
    with due_within(10.0, clock):
        assert lock.acquire_or_renew()
    assert clock.sleeps == [3.0] and lock.holder() == "ops-a"


def test_the_nomad_lock_gives_up_at_once_on_an_absurd_wait(nomad_api) -> None:
    nomad_api.fail_next(1, status=503, method="PUT", path="/v1/var", retry_after="3600")
    sleeps: list[float] = []
    with pytest.raises(LeaderLockError, match=r"HTTP 503.*asked to wait 3600 s, longer than"):
        nomad_lock(nomad_api, sleeps.append).acquire_or_renew()
    assert sleeps == []


def test_a_lock_answer_without_retry_after_is_one_attempt_as_before(nomad_api) -> None:
    nomad_api.fail_next(1, status=503, method="PUT", path="/v1/var")
    sleeps: list[float] = []
    with pytest.raises(LeaderLockError, match="HTTP 503"):
        nomad_lock(nomad_api, sleeps.append).acquire_or_renew()
    assert sleeps == [] and len(nomad_api.requests) == 1


def test_a_release_at_a_stop_does_not_wait_past_the_locks_own_deadline(
    nomad_api, tmp_path: Path
) -> None:
    """At a stop (and after each `run --once`) the daemon releases the lock outside any
    deadline: a proxy's 429 asking 30 s held the stop, or a cron `--once`, 30 s for a
    lock it could leave to expire. The release's wait is the lock's too: not begun."""
    nomad_api.add_job("image-gen", {"gpu": 1})
    path = write_daemon_config(tmp_path, "ops-a", nomad_api.url, nomad_api.url)
    election = LeaderElection(kind="nomad", address=nomad_api.url, ttl="10s", identity="ops-a")
    connection = nomad_lock_connection(election, {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN})
    sleeps: list[float] = []
    lock = NomadVariableLock(
        connection, "gpu-autoscaler-leader", ttl_s=10, identity="ops-a", sleep=sleeps.append
    )
    env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    daemon = Daemon(path, clock=SimulatedClock(NOON), env=env, leader_lock=lock)
    assert daemon.tick()
    nomad_api.fail_next(1, status=429, method="PUT", path="/v1/var", retry_after="30")
    daemon.release_leadership()
    assert sleeps == [] and not lock.is_held()
