"""The Kubernetes Lease as a leader lock: what its whole-second fields make of a TTL.

Against the Kubernetes API double, with a manual monotonic clock.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from backends.leases import LeaderElection, make_leader_lock
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
