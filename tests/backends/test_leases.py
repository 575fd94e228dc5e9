"""Two daemons for one fleet: only the lock holder acts, the standby takes over in time,
never both, a clean shutdown hands over at once, and an unreachable lock stops everyone.

Run against the Nomad API double (variable locks) and the Kubernetes API double
(Leases), with a manual monotonic clock shared by the locks and the Nomad double.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from autoscaler.config.loader import load_config
from autoscaler.config.schema import Config
from autoscaler.daemon import Daemon
from autoscaler.leader import LeaderGuardedBackend
from backends.base import BackendError, FleetState
from backends.leases import LeaderElection, LeaderLock, LeaderLockError, make_leader_lock
from common.clock import SimulatedClock
from tests.backends.test_nomad_cluster import Cluster, cluster
from tests.doubles.kubernetes_api import DOUBLE_TOKEN, KubernetesApiDouble
from tests.doubles.moto_server import aws, moto_server
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.support import RecordingNotifier

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "config" / "traces" / "nasa_jul95_demo.csv"
NOON = datetime(1995, 7, 5, 16, 0, tzinfo=UTC)
TTL = 10.0  # Nomad's shortest lock TTL
NOMAD_LOCK_DELAY = 5.0
ENV = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
__all__ = ["aws", "cluster", "moto_server"]  # fixtures, used by name below


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


LockMaker = Callable[[str], LeaderLock]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def nomad_election(url: str, identity: str = "ops-a") -> LeaderElection:
    return LeaderElection(
        kind="nomad", name="gpu-autoscaler/leader", address=url, ttl=TTL, identity=identity
    )


def kubernetes_election(kubeconfig: Path, identity: str = "ops-a") -> LeaderElection:
    return LeaderElection(
        kind="kubernetes", namespace="ml", kubeconfig=kubeconfig, ttl=TTL, identity=identity
    )


@pytest.fixture(params=["nomad", "kubernetes"])
def store(
    request: pytest.FixtureRequest,
    clock: ManualClock,
    nomad_api: NomadApiDouble,
    kubernetes_api: KubernetesApiDouble,
    tmp_path: Path,
) -> tuple[str, LockMaker, float]:
    """(kind, a maker of locks by identity, the longest wait a standby may have)."""
    if request.param == "nomad":
        nomad_api.variables.clock = clock

        def nomad_lock(identity: str) -> LeaderLock:
            return make_leader_lock(nomad_election(nomad_api.url, identity), ENV, clock)

        return "nomad", nomad_lock, TTL + NOMAD_LOCK_DELAY
    kubeconfig = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig")

    def lease(identity: str) -> LeaderLock:
        return make_leader_lock(kubernetes_election(kubeconfig, identity), {}, clock)

    return "kubernetes", lease, TTL


# ---- the locks --------------------------------------------------------------------------


def test_only_one_holds_and_the_standby_names_the_holder(
    store: tuple[str, LockMaker, float], clock: ManualClock
) -> None:
    _, make, _ = store
    active, standby = make("ops-a"), make("ops-b")
    assert active.acquire_or_renew() is True
    for _ in range(6):  # renewed well inside the TTL, for longer than one TTL
        assert standby.acquire_or_renew() is False
        assert standby.holder() == "ops-a" and not standby.is_held()
        clock.advance(3)
        assert active.acquire_or_renew() is True and active.is_held()


def test_peek_reads_the_holder_without_taking_the_lock(
    store: tuple[str, LockMaker, float],
) -> None:
    _, make, _ = store
    reader, active = make("ops-validate"), make("ops-a")
    assert reader.peek() is None  # nobody has taken it yet, and reading did not
    assert active.acquire_or_renew() is True
    assert reader.peek() == "ops-a" and not reader.is_held()
    assert active.acquire_or_renew() is True and active.is_held()


def test_standby_takes_over_in_bounded_time_and_never_overlaps(
    store: tuple[str, LockMaker, float], clock: ManualClock
) -> None:
    _, make, longest_wait = store
    active, standby = make("ops-a"), make("ops-b")
    start = clock.now
    last_renewal = start
    took_over_at = None
    for step in range(40):  # one check a second; the active one dies after 6 s
        if clock.now - start <= 6 and step % 2 == 0:
            assert active.acquire_or_renew() is True
            last_renewal = clock.now
        if standby.acquire_or_renew() and took_over_at is None:
            took_over_at = clock.now
        assert not (active.is_held() and standby.is_held()), f"both hold at t={clock.now - start}"
        clock.advance(1)
    assert took_over_at is not None
    assert last_renewal + TTL <= took_over_at <= last_renewal + longest_wait + 1
    assert standby.holder() == "ops-b"


def test_a_release_lets_the_standby_take_over_at_once(
    store: tuple[str, LockMaker, float], clock: ManualClock
) -> None:
    _, make, _ = store
    active, standby = make("ops-a"), make("ops-b")
    assert active.acquire_or_renew() and not standby.acquire_or_renew()
    active.release()
    assert not active.is_held()
    assert standby.acquire_or_renew() is True
    assert active.acquire_or_renew() is False and active.holder() == "ops-b"


def test_an_unreachable_store_is_an_error_not_a_standby(tmp_path: Path, clock: ManualClock) -> None:
    url = closed_port_url()
    nomad = make_leader_lock(nomad_election(url), ENV, clock)
    with pytest.raises(LeaderLockError) as nomad_error:
        nomad.acquire_or_renew()
    assert "connection" in str(nomad_error.value) and DOUBLE_ACL_TOKEN not in str(nomad_error.value)
    kubeconfig = tmp_path / "kubeconfig"
    with KubernetesApiDouble() as double:
        double.write_kubeconfig(kubeconfig)
    lease = make_leader_lock(kubernetes_election(kubeconfig), {}, clock)
    with pytest.raises(LeaderLockError) as kube_error:
        lease.acquire_or_renew()
    assert DOUBLE_TOKEN not in str(kube_error.value) and not lease.is_held()


def test_a_refused_nomad_token_is_named_but_never_shown(
    nomad_api: NomadApiDouble, clock: ManualClock
) -> None:
    wrong = "wrong-token-0123-secret"
    lock = make_leader_lock(nomad_election(nomad_api.url), {"NOMAD_TOKEN": wrong}, clock)
    with pytest.raises(LeaderLockError) as error:
        lock.acquire_or_renew()
    text = str(error.value)
    assert "$NOMAD_TOKEN" in text and "403" in text
    assert wrong not in text and DOUBLE_ACL_TOKEN not in text


def test_nomad_lock_requests_follow_the_documented_shapes(
    nomad_api: NomadApiDouble, clock: ManualClock
) -> None:
    nomad_api.variables.clock = clock
    lock = make_leader_lock(nomad_election(nomad_api.url), ENV, clock)
    assert lock.acquire_or_renew() and lock.acquire_or_renew()
    lock.release()
    puts = nomad_api.requests_to("PUT", "/v1/var/gpu-autoscaler/leader")
    assert [next(iter(r.query)) for r in puts] == ["lock-acquire", "lock-renew", "lock-release"]
    acquire, renew, release = (r.body for r in puts)
    assert acquire["Lock"] == {"TTL": "10s", "LockDelay": "5s"}
    assert acquire["Items"]["holder"] == "ops-a" and acquire["Namespace"] == "default"
    assert renew["Lock"]["ID"] and renew["Lock"] == release["Lock"] and "Items" not in release


def test_a_nomad_lock_that_lapsed_is_lost_not_renewed(
    nomad_api: NomadApiDouble, clock: ManualClock
) -> None:
    nomad_api.variables.clock = clock
    lock = make_leader_lock(nomad_election(nomad_api.url), ENV, clock)
    assert lock.acquire_or_renew()
    clock.advance(TTL + 1)  # a tick that took longer than the TTL
    assert not lock.is_held()
    assert lock.acquire_or_renew() is False  # Nomad still holds it for the lock delay
    clock.advance(NOMAD_LOCK_DELAY)
    assert lock.acquire_or_renew() is True


def test_a_nomad_ttl_under_ten_seconds_is_refused_by_config_and_by_nomad(
    nomad_api: NomadApiDouble,
) -> None:
    with pytest.raises(ValidationError, match="between 10s and 24h"):
        LeaderElection(kind="nomad", ttl="5s")
    from backends.nomad_lock import NomadVariableLock, nomad_lock_connection

    connection = nomad_lock_connection(nomad_election(nomad_api.url), ENV)
    lock = NomadVariableLock(connection, "short", ttl_s=5, identity="x")
    with pytest.raises(LeaderLockError, match="TTL must be between 10 seconds and 24 hours"):
        lock.acquire_or_renew()


def test_kubernetes_take_over_race_loses_to_a_concurrent_writer(
    kubernetes_api: KubernetesApiDouble, clock: ManualClock, tmp_path: Path
) -> None:
    kubeconfig = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig")
    first = make_leader_lock(kubernetes_election(kubeconfig, "ops-a"), {}, clock)
    second = make_leader_lock(kubernetes_election(kubeconfig, "ops-b"), {}, clock)
    assert first.acquire_or_renew()
    first.release()  # free: both standbys may try

    def someone_else_writes() -> None:
        lease = kubernetes_api.leases.leases[("ml", "gpu-autoscaler-leader")]
        lease.spec = {"holderIdentity": "ops-c", "leaseDurationSeconds": 10}
        lease.resource_version += 1

    kubernetes_api.before_next("PUT", someone_else_writes)
    assert second.acquire_or_renew() is False and not second.is_held()
    assert second.acquire_or_renew() is False and second.holder() == "ops-c"
    creates = [w for w in kubernetes_api.leases.writes if w[0] == "create"]
    assert len(creates) == 1 and creates[0][2]["holderIdentity"] == "ops-a"


def test_kubernetes_rbac_refusal_says_what_is_needed(
    kubernetes_api: KubernetesApiDouble, clock: ManualClock, tmp_path: Path
) -> None:
    kubernetes_api.deny("get", "leases")
    kubeconfig = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig")
    lease = make_leader_lock(kubernetes_election(kubeconfig), {}, clock)
    with pytest.raises(LeaderLockError, match="get, create and update on leases"):
        lease.acquire_or_renew()


# ---- writes guarded by the lease --------------------------------------------------------


class CountingBackend:
    name = "counting"

    def __init__(self) -> None:
        self.scaled: list[int] = []

    def read(self) -> FleetState:
        return FleetState(desired=1, ready=1, pending=0)

    def check(self) -> None:
        pass

    def scale(self, desired: int, reason: str) -> str | None:
        self.scaled.append(desired)
        return None


def test_a_write_needs_the_lease_to_have_time_left(
    nomad_api: NomadApiDouble, clock: ManualClock
) -> None:
    nomad_api.variables.clock = clock
    lock = make_leader_lock(nomad_election(nomad_api.url), ENV, clock)
    inner = CountingBackend()
    guarded = LeaderGuardedBackend(inner, lock, margin_s=TTL / 3)
    with pytest.raises(BackendError, match="lease ran out"):
        guarded.scale(2, "before the lock is taken")
    assert lock.acquire_or_renew()
    guarded.scale(3, "fresh lease")
    clock.advance(TTL * 0.8)  # the tick ran long: too little lease left to start a write
    with pytest.raises(BackendError, match="lease ran out"):
        guarded.scale(4, "stale lease")
    assert inner.scaled == [3] and guarded.read().desired == 1


# ---- two daemons ------------------------------------------------------------------------


def write_daemon_config(tmp_path: Path, name: str, nomad_url: str, lock_url: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    config: dict[str, Any] = {
        "interval": "5s",
        "state_dir": str(folder / "state"),
        "metrics": {"kind": "replay", "trace": str(TRACE)},
        "leader_election": {"kind": "nomad", "address": lock_url, "ttl": "10s"},
        "pools": [
            {
                "name": "image-gen",
                "backend": {
                    "kind": "nomad_job",
                    "job": "image-gen",
                    "group": "gpu",
                    "address": nomad_url,
                    "retries": 0,
                },
                "demand": {"query": "ignored", "window": "1h"},
                "capacity": {"per_node_rps": 0.25},
                "max_nodes": 40,
                "cooldown": "0s",
            }
        ],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def make_daemon(
    tmp_path: Path, name: str, nomad_api: NomadApiDouble, clock: ManualClock, lock_url: str = ""
) -> tuple[Daemon, RecordingNotifier]:
    path = write_daemon_config(tmp_path, name, nomad_api.url, lock_url or nomad_api.url)
    election = load_config(path).leader_election
    assert election is not None
    lock = make_leader_lock(election.model_copy(update={"identity": name}), ENV, clock)
    notifier = RecordingNotifier()
    daemon = Daemon(path, clock=SimulatedClock(NOON), env=ENV, notifier=notifier, leader_lock=lock)
    return daemon, notifier


def job_requests(double: NomadApiDouble) -> int:
    return sum(1 for r in double.requests if r.path.startswith("/v1/job/"))


def test_two_daemons_only_the_holder_acts_and_the_standby_takes_over(
    nomad_api: NomadApiDouble, clock: ManualClock, tmp_path: Path
) -> None:
    nomad_api.variables.clock = clock
    nomad_api.add_job("image-gen", {"gpu": 1})
    a, a_notes = make_daemon(tmp_path, "ops-a", nomad_api, clock)
    b, b_notes = make_daemon(tmp_path, "ops-b", nomad_api, clock)
    for _ in range(4):  # interleaved ticks, 5 s apart
        (result,) = a.tick()
        before = job_requests(nomad_api)
        assert b.tick() == [] and job_requests(nomad_api) == before  # not even a read
        assert a.telemetry.leader._value.get() == 1 and b.telemetry.leader._value.get() == 0
        clock.advance(5)
    scaled_by_a = len(nomad_api.requests_to("POST", "/v1/job/image-gen/scale"))
    assert scaled_by_a >= 1 and result.decision is not None
    assert b_notes.messages == [] and a_notes.messages
    assert b.telemetry.health()[0]  # a standby that reached the lock is healthy
    died_at = clock.now - 5  # a's last renewal; a now stops ticking
    took_over_at = None
    while took_over_at is None and clock.now < died_at + 30:
        if b.tick():
            took_over_at = clock.now
        clock.advance(1)
    assert took_over_at is not None
    assert died_at + TTL <= took_over_at <= died_at + TTL + NOMAD_LOCK_DELAY + 5
    assert b.telemetry.leader._value.get() == 1 and a.tick() == []


def test_shutdown_releases_and_the_standby_acts_on_its_next_tick(
    nomad_api: NomadApiDouble, clock: ManualClock, tmp_path: Path
) -> None:
    nomad_api.variables.clock = clock
    nomad_api.add_job("image-gen", {"gpu": 1})
    a, _ = make_daemon(tmp_path, "ops-a", nomad_api, clock)
    b, _ = make_daemon(tmp_path, "ops-b", nomad_api, clock)
    assert a.tick() and b.tick() == []
    a.release_leadership()
    assert a.telemetry.leader._value.get() == 0
    assert b.tick()  # same instant: no TTL to wait out


def test_no_daemon_acts_while_the_lock_is_unreachable(
    nomad_api: NomadApiDouble, clock: ManualClock, tmp_path: Path
) -> None:
    nomad_api.add_job("image-gen", {"gpu": 1})
    daemon, notifier = make_daemon(tmp_path, "ops-a", nomad_api, clock, closed_port_url())
    for _ in range(3):
        assert daemon.tick() == []
    assert job_requests(nomad_api) == 0
    assert daemon.telemetry.leader._value.get() == 0
    alerts = [t for t in notifier.texts if "leader lock unreachable" in t]
    assert len(alerts) == 1 and DOUBLE_ACL_TOKEN not in alerts[0]


def test_config_wants_a_ttl_of_at_least_two_intervals() -> None:
    pool = {
        "name": "p",
        "backend": {"kind": "simulated"},
        "demand": {"query": "q"},
        "capacity": {"per_node_rps": 1},
        "max_nodes": 2,
    }
    election = {"kind": "kubernetes", "ttl": "90s"}
    with pytest.raises(ValidationError, match="at least twice the interval"):
        Config.model_validate({"interval": "1m", "leader_election": election, "pools": [pool]})
    ok = Config.model_validate({"interval": "45s", "leader_election": election, "pools": [pool]})
    assert ok.leader_election is not None and ok.leader_election.ttl == timedelta(seconds=90)


def test_an_insecure_kubeconfig_for_the_lease_is_refused_unless_the_election_allows_it(
    kubernetes_api: KubernetesApiDouble, clock: ManualClock, tmp_path: Path
) -> None:
    """The lease's `allow_insecure` reaches its connection, as a pool backend's does."""
    kubeconfig = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig", skip_tls_verify=True)
    refused = make_leader_lock(kubernetes_election(kubeconfig), {}, clock)
    with pytest.raises(LeaderLockError, match="insecure-skip-tls-verify"):
        refused.acquire_or_renew()
    allowed_election = kubernetes_election(kubeconfig).model_copy(update={"allow_insecure": True})
    assert make_leader_lock(allowed_election, {}, clock).acquire_or_renew()


def test_a_daemon_leading_again_takes_the_other_replicas_counts_for_its_own_not_a_persons(
    nomad_api: NomadApiDouble, clock: ManualClock, tmp_path: Path
) -> None:
    """While the standby led, it scaled the fleet: when the first daemon leads again the
    count it remembers is not the fleet's, and that is the other replica's doing, not a
    change by hand. No "outside the autoscaler" alert, no hold for it."""
    nomad_api.variables.clock = clock
    nomad_api.add_job("image-gen", {"gpu": 1})
    a, a_notes = make_daemon(tmp_path, "ops-a", nomad_api, clock)
    b, _ = make_daemon(tmp_path, "ops-b", nomad_api, clock)
    assert a.tick() and b.tick() == []
    assert a.states["image-gen"].last_known_desired is not None
    a.release_leadership()
    assert b.tick()  # b leads, and scales as it decides
    nomad_api.jobs[("default", "image-gen")].groups["gpu"] = 37  # and scaled once more
    b.release_leadership()
    (again,) = a.tick()
    assert again.decision is not None and again.fleet is not None and again.fleet.desired == 37
    assert not [t for t in a_notes.texts if "outside the autoscaler" in t]
    assert a.states["image-gen"].memory.manual_change_at is None


def test_a_nomad_leader_election_does_not_cost_the_lock(
    nomad_api: NomadApiDouble, clock: ManualClock
) -> None:
    """Nomad answers 500 "No cluster leader" while its servers elect one (a second or
    two). Before, a renew so answered dropped the lock: the acquire that followed met the
    lock still held by this daemon's own lease (409), so it stood by, naming itself as
    the holder, and no replica led until the TTL and the lock delay had passed. Now the
    renew is tried again after a backoff, and where the election outlasts the call the
    lock is kept (unreachable for that tick) while its lease holds."""
    nomad_api.variables.clock = clock
    lock = make_leader_lock(nomad_election(nomad_api.url), ENV, clock)
    assert lock.acquire_or_renew()
    clock.advance(TTL / 3)
    nomad_api.fail_next(1, status=500, path="/v1/var", body="No cluster leader")
    assert lock.acquire_or_renew() is True  # the renew, tried again
    clock.advance(TTL / 3)
    nomad_api.fail_next(2, status=500, path="/v1/var", body="No cluster leader")
    with pytest.raises(LeaderLockError, match="No cluster leader"):
        lock.acquire_or_renew()
    clock.advance(TTL / 3)
    assert lock.acquire_or_renew() is True and lock.holder() == "ops-a"
    puts = nomad_api.requests_to("PUT", "/v1/var/gpu-autoscaler/leader")
    assert [next(iter(r.query)) for r in puts] == ["lock-acquire"] + ["lock-renew"] * 5


def test_a_read_that_would_end_a_drain_waits_for_a_lease_with_time_left(
    cluster: Cluster, clock: ManualClock
) -> None:
    """A nomad_cluster read advances its scale-in: a node whose drain ended has its
    instance terminated (DesiredCapacity down by one). The guard checked the lease for
    scale() only, so a leader stalled past its lease (the standby may lead by now) still
    terminated instances from its read. Nomad API double's lock and nodes, moto's ASG."""
    cluster.nomad.variables.clock = clock
    lock = make_leader_lock(nomad_election(cluster.nomad.url), ENV, clock)
    nodes = cluster.arrange([0, 1, 2], drain_seconds=None)  # drains end on demand
    guarded = LeaderGuardedBackend(cluster.backend(), lock, margin_s=TTL / 3)
    assert lock.acquire_or_renew()
    guarded.scale(2, "evening")  # gpu-0 drains
    cluster.nomad.finish_drain(nodes[0].id)
    clock.advance(TTL * 0.8)  # stalled: too little lease left to act on the fleet
    with pytest.raises(BackendError, match="lease ran out"):
        guarded.read()
    assert cluster.desired() == 3 and nodes[0].instance_id in cluster.instances()
    assert lock.acquire_or_renew()  # renewed: the read finishes the scale-in
    assert guarded.read().desired == 2
    assert cluster.desired() == 2 and nodes[0].instance_id not in cluster.instances()
