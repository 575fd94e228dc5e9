"""The Kubernetes Lease as a leader lock: what its whole-second fields make of a TTL.

Against the Kubernetes API double, with a manual monotonic clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backends.kubernetes_lease import KubernetesLease, kubernetes_lock_settings
from backends.leases import LeaderElection, LeaderLockError, make_leader_lock
from tests.doubles.kubernetes_api import KubernetesApiDouble


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_ttl_with_a_fraction_of_a_second_is_not_cut_short_for_the_standby(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """leaseDurationSeconds is whole seconds: a TTL of 1.9 s was written as 1, so the
    standby took over after 1 s while the holder counted 1.9 s (and, with a third of it
    left for a write, still wrote): two leaders for most of a second."""
    clock = ManualClock()
    kubeconfig = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig")
    election = LeaderElection(
        kind="kubernetes", namespace="ml", kubeconfig=kubeconfig, ttl="1.9s", identity="ops-a"
    )
    active = make_leader_lock(election, {}, clock)
    standby = make_leader_lock(election.model_copy(update={"identity": "ops-b"}), {}, clock)
    assert active.acquire_or_renew() and not standby.acquire_or_renew()
    took_over_at = None
    for _ in range(30):
        clock.now += 0.1
        if standby.acquire_or_renew() and took_over_at is None:
            took_over_at = clock.now
        assert not (standby.is_held() and active.is_held()), f"both hold at {clock.now:.1f}"
    assert took_over_at is not None and took_over_at - 1000 >= 1.9
    spec = kubernetes_api.leases.leases[("ml", "gpu-autoscaler-leader")].spec
    assert spec["holderIdentity"] == "ops-b" and spec["leaseDurationSeconds"] == 2
    assert timedelta(seconds=spec["leaseDurationSeconds"]) >= election.ttl


def test_a_renewal_on_a_whole_second_is_written_as_the_api_server_parses_it(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """acquireTime and renewTime are MicroTime, which the API server parses with Go's
    RFC3339Micro layout (six fractional digits, always). The client wrote datetime's
    isoformat, which leaves the fraction out on a whole second: about one write in a
    million was a 400, and the leader lost its lease for a tick."""
    kubeconfig = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig")
    election = LeaderElection(
        kind="kubernetes", namespace="ml", kubeconfig=kubeconfig, ttl="15s", identity="ops-a"
    )
    clock = ManualClock()
    whole_second = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lease = KubernetesLease(
        lambda: kubernetes_lock_settings(election, {}),
        "gpu-autoscaler-leader",
        ttl_s=15,
        identity="ops-a",
        monotonic=clock,
        wall=lambda: whole_second,
    )
    assert lease.acquire_or_renew()  # the create
    clock.now += 5
    assert lease.acquire_or_renew()  # the replace
    spec = kubernetes_api.leases.leases[("ml", "gpu-autoscaler-leader")].spec
    assert spec["renewTime"] == spec["acquireTime"] == "2026-03-02T09:00:00.000000Z"


def test_a_token_rotated_in_the_kubeconfig_keeps_the_lease(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """The kubeconfig rewritten with a new token while the daemon leads (the old one
    refused from then on): the client keeps the token it loaded, so every renewal was a
    401 and the lease was lost for the life of the daemon, by the standby too. Now a 401
    loads the credentials again and the call is made once more."""
    old, new = "Zt4pW8kd2QxRvn7old", "Jm5cY1sb9HgTlq3new"
    kubernetes_api.tokens = {old: "ops"}
    kubeconfig = kubernetes_api.write_kubeconfig(
        tmp_path / "kubeconfig", contexts={"double": {"token": old}}
    )
    election = LeaderElection(
        kind="kubernetes", namespace="ml", kubeconfig=kubeconfig, ttl="15s", identity="ops-a"
    )
    clock = ManualClock()
    lease = make_leader_lock(election, {}, clock)
    assert lease.acquire_or_renew()
    kubernetes_api.tokens = {new: "ops"}
    kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig", contexts={"double": {"token": new}})
    clock.now += 5
    assert lease.acquire_or_renew()
    assert kubernetes_api.requests[-1].headers["authorization"] == f"Bearer {new}"


def test_a_refused_token_is_said_as_such_not_as_missing_rbac(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """A 401 is the token refused (expired, revoked), not a missing permission: it was
    said as 'needs RBAC get, create and update on leases', sending people to the roles."""
    kubeconfig = kubernetes_api.write_kubeconfig(
        tmp_path / "kubeconfig", contexts={"double": {"token": "Pf6wLq2Xn9Cj-revoked"}}
    )
    election = LeaderElection(
        kind="kubernetes", namespace="ml", kubeconfig=kubeconfig, ttl="15s", identity="ops-a"
    )
    with pytest.raises(LeaderLockError) as refused:
        make_leader_lock(election, {}, ManualClock()).acquire_or_renew()
    assert "HTTP 401" in str(refused.value) and "expired or wrong token?" in str(refused.value)
    assert "RBAC" not in str(refused.value) and "Pf6wLq2Xn9Cj" not in str(refused.value)


def test_a_namespace_being_deleted_is_said_as_such_not_as_missing_rbac(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """The Lease's namespace being deleted refuses its create with a 403 (the API server's
    NamespaceLifecycle admission): it was told as 'needs RBAC get, create and update on
    leases', sending people to the roles rather than to the namespace."""
    kubernetes_api.leases.terminating.add("ml")
    kubeconfig = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig")
    election = LeaderElection(
        kind="kubernetes", namespace="ml", kubeconfig=kubeconfig, ttl="15s", identity="ops-a"
    )
    with pytest.raises(LeaderLockError) as refused:
        make_leader_lock(election, {}, ManualClock()).acquire_or_renew()
    assert "HTTP 403" in str(refused.value)
    assert "namespace ml because it is being terminated" in str(refused.value)
    assert "RBAC" not in str(refused.value)
