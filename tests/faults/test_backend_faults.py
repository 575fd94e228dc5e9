"""Fleet API faults through the whole tick: retry with backoff, never scale twice, a
clear alert once per episode, no cooldown started by a write that did not happen.

Nomad through python-nomad against the Nomad API double and Kubernetes through its
client against the Kubernetes API double (tests/doubles/; both follow the official
API documents); the write counts are read off the doubles. Partial failure in a
Nomad-cluster scale-in (drain, then terminate) is covered where that backend is
tested: tests/backends/test_nomad_cluster.py (see README.md here).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from autoscaler.decision_log import DecisionLog
from autoscaler.overrides import OverridesFile
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from autoscaler.tick_result import TickResult
from backends.base import Backend, BackendError
from backends.kubernetes import KubernetesBackend, KubernetesWorkload
from backends.nomad_job import NomadJobBackend, NomadJobGroup
from backends.retry import backoff_cap
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from tests.autoscaler.test_tick import START, FlatDemand, Harness, make_pool
from tests.backends.test_nomad_cluster import Cluster, cluster
from tests.doubles.kubernetes_api import KubernetesApiDouble
from tests.doubles.moto_server import aws, moto_server
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.support import RecordingNotifier, read_decisions

__all__ = ["aws", "cluster", "moto_server"]  # fixtures, used by name below

SCALE_PATH = "/v1/job/ocr-workers/scale"


class TickRig:
    """One pool ticking against a real backend client; sleeps (backoff) are recorded."""

    def __init__(self, backend: Backend, tmp_path: Path, rps: float = 10.0) -> None:
        self.clock = SimulatedClock(START)
        self.notifier = RecordingNotifier()
        self.log_path = tmp_path / "decisions.jsonl"
        self.ticker = PoolTicker(
            make_pool(),
            backend,
            1.0,
            FlatDemand(self.clock, rps),
            timedelta(minutes=5),
            self.notifier,
            DecisionLog(self.log_path),
            False,
        )
        self.state = PoolState()

    def tick(self) -> TickResult:
        result = self.ticker.tick(self.clock.now(), self.state, OverridesFile())
        self.clock.advance(timedelta(minutes=1))
        return result

    def alerts(self, text: str) -> int:
        return sum(text in t for t in self.notifier.texts)


def nomad_backend(
    nomad: NomadApiDouble, sleeps: list[float], token: str = DOUBLE_ACL_TOKEN, timeout: float = 2.0
) -> NomadJobGroup:
    config = NomadJobBackend(
        kind="nomad_job",
        job="ocr-workers",
        group="gpu",
        address=nomad.url,
        timeout=timedelta(seconds=timeout),
        retries=2,
    )
    return NomadJobGroup(config, env={"NOMAD_TOKEN": token}, sleep=sleeps.append)


def writes(nomad: NomadApiDouble) -> list[int]:
    """The Count of every scale request the double received (applied or not)."""
    return [r.body["Count"] for r in nomad.requests if r.method == "POST" and r.path == SCALE_PATH]


def applied(nomad: NomadApiDouble) -> list[int]:
    return [e["Count"] for e in nomad.jobs[("default", "ocr-workers")].events.get("gpu", [])]


def assert_backoff(sleeps: list[float]) -> None:
    """Full jitter under a doubling cap: retry n waits in [0, 0.5 s × 2^(n-1))."""
    for n, delay in enumerate(sleeps, start=1):
        assert 0 <= delay < backoff_cap(n, base_delay=0.5, max_delay=8.0)


def test_nomad_5xx_on_the_write_is_retried_and_scales_once(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    sleeps: list[float] = []
    rig = TickRig(nomad_backend(nomad_api, sleeps), tmp_path)
    nomad_api.fail_next(2, status=503, method="POST", path="/scale")
    result = rig.tick()
    assert result.acted and not result.errors
    assert writes(nomad_api) == [13, 13, 13] and applied(nomad_api) == [13]
    assert len(sleeps) == 2
    assert_backoff(sleeps)
    for _ in range(3):  # steady: no more writes
        assert not rig.tick().acted
    assert writes(nomad_api) == [13, 13, 13]
    assert rig.alerts("failing") == 0 and rig.alerts("2 → 13") == 1


@pytest.mark.parametrize("method", ["GET", "POST"], ids=["read", "write"])
def test_nomad_rate_limit_is_retried_like_a_5xx(
    nomad_api: NomadApiDouble, tmp_path: Path, method: str
) -> None:
    """The Nomad double (its documented job scale API) answers 429 Too Many Requests twice,
    as Nomad's request rate limits do. Before, a 429 was a 4xx that cannot succeed: the
    tick failed and alerted (Kubernetes and AWS rode over theirs); now it is retried with
    backoff and the pool scales once."""
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    sleeps: list[float] = []
    rig = TickRig(nomad_backend(nomad_api, sleeps), tmp_path)
    nomad_api.fail_next(2, status=429, method=method, path="/scale")
    result = rig.tick()
    assert result.acted and not result.errors, result.errors
    assert applied(nomad_api) == [13] and len(sleeps) == 2
    assert_backoff(sleeps)
    assert rig.alerts("failing") == 0


def test_nomad_5xx_every_attempt_alerts_once_and_counts_as_an_action_for_cooldown(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    sleeps: list[float] = []
    rig = TickRig(nomad_backend(nomad_api, sleeps), tmp_path)
    nomad_api.fail_next(9, status=500, method="POST", path="/scale")  # 3 ticks × 3 attempts
    for _ in range(3):
        result = rig.tick()
        assert not result.acted and "failed after 3 attempts" in result.errors["backend"]
        assert "HTTP 500" in result.errors["backend"]
        # It may have landed (a lost answer): the cooldown starts, which delays only
        # scale-downs; the scale-up is retried every tick.
        assert rig.state.memory.last_action_at is not None
    assert applied(nomad_api) == [] and len(sleeps) == 6
    assert_backoff(sleeps[:2])
    assert rig.alerts("backend failing") == 1 and rig.alerts("2 → 13") == 0
    result = rig.tick()
    assert result.acted and applied(nomad_api) == [13]
    assert rig.alerts("backend recovered") == 1 and rig.alerts("2 → 13") == 1
    records = read_decisions(rig.log_path)
    assert [r["acted"] for r in records] == [False, False, False, True]
    assert all(r["reasons"] for r in records)


def test_nomad_write_that_times_out_but_lands_is_not_doubled(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """The server applies a write after the client gave up on it: the count is absolute, so
    the retry asks for the same 13 (never 2 + 11 + 11), and later ticks write nothing."""
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    sleeps: list[float] = []
    rig = TickRig(nomad_backend(nomad_api, sleeps, timeout=0.3), tmp_path)
    nomad_api.delay_next(1, seconds=0.6, method="POST")
    rig.tick()
    time.sleep(0.5)  # let the stalled write land
    assert set(writes(nomad_api)) == {13} and set(applied(nomad_api)) == {13}
    assert nomad_api.jobs[("default", "ocr-workers")].groups["gpu"] == 13
    before = len(writes(nomad_api))
    for _ in range(3):
        assert rig.tick().decision.desired == 13  # type: ignore[union-attr]
    assert len(writes(nomad_api)) == before
    assert rig.alerts("outside the autoscaler") == 0


def test_nomad_expired_token_is_not_retried_and_alert_names_the_variable(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    sleeps: list[float] = []
    rig = TickRig(nomad_backend(nomad_api, sleeps), tmp_path)
    rig.tick()
    nomad_api.acl_token = "rotated-" + DOUBLE_ACL_TOKEN  # ours expired / was revoked
    requests_before = len(nomad_api.requests)
    for _ in range(3):
        result = rig.tick()
        assert result.decision is None and "refused the ACL token" in result.errors["backend"]
        assert "$NOMAD_TOKEN" in result.errors["backend"]
    assert len(nomad_api.requests) - requests_before == 3  # one read per tick, no retries
    assert sleeps == []
    (alert,) = [t for t in rig.notifier.texts if "backend failing" in t]
    assert "403" in alert and DOUBLE_ACL_TOKEN not in alert
    assert writes(nomad_api) == [13]


def test_nomad_conflict_is_reported_and_retried_next_tick(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """A 409 is a 4xx: not retried within the tick (Nomad does not send one for a scale, but
    a proxy might); the next tick reads again and writes once."""
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    sleeps: list[float] = []
    rig = TickRig(nomad_backend(nomad_api, sleeps), tmp_path)
    nomad_api.fail_next(1, status=409, method="POST")
    result = rig.tick()
    assert not result.acted and "HTTP 409" in result.errors["backend"] and sleeps == []
    assert rig.tick().acted
    assert writes(nomad_api) == [13, 13] and applied(nomad_api) == [13]
    assert rig.alerts("backend failing") == 1 and rig.alerts("backend recovered") == 1


@pytest.fixture
def kubernetes(kubernetes_api: KubernetesApiDouble, tmp_path: Path):
    deployment = kubernetes_api.add_deployment("ocr", replicas=2, ready=2)
    sleeps: list[float] = []
    config = KubernetesBackend(
        kind="kubernetes",
        name="ocr",
        kubeconfig=kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig"),
        timeout=timedelta(seconds=0.4),
        retries=2,
    )
    backend = KubernetesWorkload(config, env={}, sleep=sleeps.append)
    return kubernetes_api, deployment, backend, sleeps


SCALE_K8S = "/apis/apps/v1/namespaces/default/deployments/ocr/scale"


@pytest.mark.parametrize("fault", ["conflict", "5xx", "timeout"])
def test_kubernetes_write_faults_retry_and_scale_once(kubernetes, tmp_path: Path, fault: str):
    double, deployment, backend, sleeps = kubernetes
    if fault == "conflict":
        double.conflict_next(1)
    elif fault == "5xx":
        double.fail_next(2, status=503, method="PATCH")
    else:
        double.delay_next(1, seconds=1.0, method="PATCH")
    rig = TickRig(backend, tmp_path)
    result = rig.tick()
    assert result.acted and not result.errors and deployment.replicas == 13
    assert len(sleeps) >= 1
    assert_backoff(sleeps)
    patches = len(double.requests_to("PATCH", SCALE_K8S))
    for _ in range(3):
        assert not rig.tick().acted
    assert len(double.requests_to("PATCH", SCALE_K8S)) == patches
    assert rig.alerts("2 → 13") == 1 and rig.alerts("failing") == 0


def test_a_count_an_admission_webhook_changed_is_reported_not_taken_for_a_change_by_hand(
    kubernetes, tmp_path: Path
) -> None:
    """The Kubernetes double (the documented scale subresource) behind a mutating admission
    webhook that caps a scale write at 6 replicas: the PATCH is answered 200 with the
    Scale as kept, 6. Before, the tick took 13 as set: "2 → 13" told without a word of
    the cap, then "changed from 13 to 6 outside the autoscaler" and a hold for the
    cooldown. Now the write's answer is compared: the cap is reported with the scale, the
    count read back, and no change by hand is alerted."""
    double, deployment, backend, _ = kubernetes
    double.admit_replicas = lambda replicas: min(replicas, 6)
    rig = TickRig(backend, tmp_path)
    first = rig.tick()
    assert first.acted and deployment.replicas == 6
    assert first.backend_note is not None and "6" in first.backend_note
    assert rig.alerts("2 → 13") == 1 and rig.alerts("set 6") == 1
    for _ in range(3):
        rig.tick()
    assert rig.alerts("outside the autoscaler") == 0


def test_kubernetes_forbidden_is_not_retried_and_alerts_once(kubernetes, tmp_path: Path):
    double, deployment, backend, sleeps = kubernetes
    double.deny("patch", "deployments/scale")
    rig = TickRig(backend, tmp_path)
    for _ in range(3):
        result = rig.tick()
        assert not result.acted and "Kubernetes refused" in result.errors["backend"]
        assert "forbidden" in result.errors["backend"]
    assert deployment.replicas == 2 and sleeps == []
    assert rig.alerts("backend failing") == 1


class LostAnswerFleet(SimulatedFleet):
    """The write lands but its answer is lost (the connection drops after the commit)."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.lose_answers = 0

    def scale(self, desired: int, reason: str) -> str | None:
        super().scale(desired, reason)
        if self.lose_answers:
            self.lose_answers -= 1
            raise BackendError("simulated fleet: connection lost after the write (injected)")


def test_write_that_landed_without_an_answer_is_not_taken_for_a_manual_change(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, rps=10.0)
    fleet = LostAnswerFleet(h.clock, 2, timedelta(minutes=10))
    h.fleet = fleet
    h.ticker.backend = fleet
    fleet.lose_answers = 1
    first = h.tick()
    assert not first.acted and "backend" in first.errors
    assert fleet.read().desired == 13
    for _ in range(3):
        result = h.tick()
        assert result.decision is not None and result.decision.desired == 13
    assert fleet.writes == 1
    assert not [t for t in h.notifier.texts if "outside the autoscaler" in t]
    assert sum("backend recovered" in t for t in h.notifier.texts) == 1


def test_partial_scale_failure_of_the_simulated_fleet_holds_then_completes(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.fleet.fail_scales = 2
    for _ in range(2):
        result = h.tick()
        assert not result.acted and h.fleet.read().desired == 2
    assert h.tick().acted and h.fleet.writes == 1 and h.fleet.read().desired == 13
    assert sum("backend failing" in t for t in h.notifier.texts) == 1


def test_nodes_given_back_after_a_failed_drain_are_not_a_change_by_hand(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A Nomad cluster (python-nomad against the Nomad API double, boto3 against moto's
    server) scales 2 -> 1 through the tick; the chosen node is still busy past its drain
    deadline, so the read gives it back and fails, and the group counts 2 again. Before,
    the next tick took that for a change by hand: an alert "changed from 1 to 2 outside
    the autoscaler" and a hold for the cooldown, which held a scale-up when demand rose.
    Now the count the backend restored itself is read afresh: no alert, no hold."""
    cluster.arrange([3, 4], drain_seconds=None)  # drains never end by themselves
    rig = TickRig(cluster.backend(), tmp_path, rps=0.5)  # 1 node is enough
    cluster.clock = rig.clock
    rig.ticker.backend = cluster.backend()
    while not rig.tick().acted:  # a whole stabilization window, then 2 -> 1
        assert rig.clock.now() < START + timedelta(minutes=30)
    rig.clock.advance(timedelta(minutes=11))  # past the 10-minute drain deadline
    given_back = rig.tick()
    assert "past the drain deadline" in given_back.errors["backend"]
    assert cluster.desired() == 2
    rig.ticker.metrics.rps = 5.0  # 5 / (1 x 0.8) -> 7 nodes
    result = rig.tick()
    assert result.decision is not None and result.decision.desired == 7, result.decision
    assert result.acted and cluster.desired() == 7
    assert rig.alerts("outside the autoscaler") == 0
