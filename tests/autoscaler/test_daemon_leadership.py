"""The daemon keeps its leader lock through a tick longer than the lock's TTL.

The lock was renewed once, at the start of each tick; the pools then tick one after
another, each within the interval, so a tick of many (or slow) pools outlived the
lease: the last pools' writes were refused ("leader lease ran out") every tick and the
standby took the lock over mid-tick. Against the Nomad API double, with a manual
monotonic clock that the slow pools move.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from autoscaler.config.loader import load_config
from autoscaler.daemon import Daemon
from autoscaler.leader import LeaderGuardedBackend
from backends.base import Backend, FleetState
from backends.leases import make_leader_lock
from common.clock import SimulatedClock
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.support import RecordingNotifier

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "config" / "traces" / "nasa_jul95_demo.csv"
NOON = datetime(1995, 7, 5, 16, 0, tzinfo=UTC)
ENV = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
POOLS = ("gen-1", "gen-2", "gen-3", "gen-4")


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowRead:
    """A pool backend whose read takes `seconds` of the manual clock."""

    def __init__(self, backend: Backend, clock: ManualClock, seconds: float) -> None:
        self.backend, self.clock, self.seconds = backend, clock, seconds
        self.name = backend.name

    def read(self) -> FleetState:
        self.clock.now += self.seconds
        return self.backend.read()

    def check(self) -> None:
        self.backend.check()

    def scale(self, desired: int, reason: str) -> str | None:
        return self.backend.scale(desired, reason)


def pool(name: str, nomad_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "backend": {
            "kind": "nomad_job",
            "job": name,
            "group": "gpu",
            "address": nomad_url,
            "retries": 0,
        },
        "demand": {"query": "ignored", "window": "1h"},
        "capacity": {"per_node_rps": 0.25},
        "max_nodes": 40,
        "cooldown": "0s",
    }


def two_daemons(nomad_api: NomadApiDouble, tmp_path: Path) -> tuple[ManualClock, Daemon, Daemon]:
    """ops-a and ops-b on one Nomad variable lock, each pool a job of one node."""
    clock = ManualClock()
    nomad_api.variables.clock = clock
    for name in POOLS:
        nomad_api.add_job(name, {"gpu": 1})
    a = make_daemon(tmp_path, "ops-a", nomad_api, clock)
    return clock, a, make_daemon(tmp_path, "ops-b", nomad_api, clock)


def make_daemon(tmp_path: Path, name: str, nomad_api: NomadApiDouble, clock: ManualClock) -> Daemon:
    folder = tmp_path / name
    folder.mkdir()
    config = {
        "interval": "5s",
        "state_dir": str(folder / "state"),
        "metrics": {"kind": "replay", "trace": str(TRACE)},
        "leader_election": {"kind": "nomad", "address": nomad_api.url, "ttl": "10s"},
        "pools": [pool(p, nomad_api.url) for p in POOLS],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    election = load_config(path).leader_election
    assert election is not None
    lock = make_leader_lock(election.model_copy(update={"identity": name}), ENV, clock)
    notifier = RecordingNotifier()
    return Daemon(path, clock=SimulatedClock(NOON), env=ENV, notifier=notifier, leader_lock=lock)


@pytest.mark.parametrize(
    ("read_s", "pause_s"),
    [
        (4.0, 0.0),  # 16 s a tick, TTL 10 s: the last pools' writes were refused
        (1.6, 3.6),  # 6.4 s a tick, past the 5 s interval: the next tick 10 s after this one
    ],
)
def test_a_tick_longer_than_the_ttl_or_the_interval_keeps_the_lock_and_scales_every_pool(
    nomad_api: NomadApiDouble, tmp_path: Path, read_s: float, pause_s: float
) -> None:
    clock, a, b = two_daemons(nomad_api, tmp_path)
    for ticker in a.runtime.tickers:
        guarded = ticker.backend
        assert isinstance(guarded, LeaderGuardedBackend)
        guarded.backend = SlowRead(guarded.backend, clock, read_s)
    for _ in range(4):
        results = a.tick()
        assert [r.pool for r in results] == list(POOLS)
        assert all("backend" not in r.errors and "tick" not in r.errors for r in results), [
            r.errors for r in results
        ]
        assert b.tick() == []  # the standby never took the lock over
        clock.now += pause_s
    for name in POOLS:
        assert nomad_api.jobs[("default", name)].groups["gpu"] > 1, name


class HangingLock:
    """A leader lock whose calls wait on a gate, as a kubeconfig exec plugin that hangs
    holds the Kubernetes client's call (it waits on the plugin without a timeout)."""

    identity, ttl_s = "ops-a", 10.0

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls = 0
        self.released = False

    def acquire_or_renew(self) -> bool:
        self.calls += 1
        self.gate.wait(30)
        return True

    def is_held(self, margin: float = 0.0) -> bool:
        return self.gate.is_set()

    def release(self) -> None:
        self.released = True

    def holder(self) -> str | None:
        return self.identity

    def peek(self) -> str | None:
        return self.identity


def test_a_lock_call_that_never_returns_is_not_joined_by_another_each_tick(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """Each tick started another thread (and another plugin process) beside the hung one,
    for as long as it hung; and a stop waited on a release through the same plugin."""
    for name in POOLS:
        nomad_api.add_job(name, {"gpu": 1})
    daemon = make_daemon(tmp_path, "ops-a", nomad_api, ManualClock())
    notifier = daemon.runtime.notifier
    assert isinstance(notifier, RecordingNotifier)
    lock = HangingLock()
    daemon.leader = lock
    daemon._lock_deadline = lambda: 0.2  # type: ignore[method-assign]
    try:
        for _ in range(4):
            assert daemon.tick() == []  # held: no pool acts without the lock
        assert lock.calls == 1
        alerts = [t for t in notifier.texts if "leader lock unreachable" in t]
        assert len(alerts) == 2, alerts  # the deadline, then the hung call, once
        assert "has not returned" in alerts[1]
        daemon.release_leadership()
        assert not lock.released
    finally:
        lock.gate.set()
    deadline = time.monotonic() + 5
    while daemon._lock_call is not None and not daemon._lock_call[1].is_set():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [r.pool for r in daemon.tick()] == list(POOLS)  # it returned: asked again, leads
    assert lock.calls == 2


def test_a_daemon_that_stands_by_no_longer_exports_the_fleets_it_scaled(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """Against the Nomad API double's variable lock: ops-a leads and scales, then misses
    its renewals past the TTL and ops-b takes over. ops-a's /metrics kept every pool's
    gauges as its last tick left them, beside ops-b's live ones: two counts of each fleet
    on a dashboard, and an error budget once overspent firing its alert from the standby
    for as long as it stood by. A standby exports no pool's gauges (counters stay)."""
    clock, a, b = two_daemons(nomad_api, tmp_path)
    assert len(a.tick()) == len(POOLS)
    scraped = generate_latest(a.telemetry.registry).decode()
    assert 'autoscaler_pool_current_nodes{pool="gen-1"}' in scraped
    clock.now += 60  # ops-a stalls past its lease's TTL and the lock delay
    assert len(b.tick()) == len(POOLS)
    assert a.tick() == []  # ops-a now stands by
    scraped = generate_latest(a.telemetry.registry).decode()
    assert "autoscaler_leader 0.0" in scraped
    assert "autoscaler_pool_" not in scraped.replace("# HELP autoscaler_pool_", "").replace(
        "# TYPE autoscaler_pool_", ""
    )
    assert 'autoscaler_decisions_total{action="scale_up",pool="gen-1"}' in scraped
    assert a.tick() == [] and b.tick()
    clock.now += 60  # ops-b stalls in turn: ops-a leads again and exports its pools
    assert len(a.tick()) == len(POOLS)
    assert (
        'autoscaler_pool_current_nodes{pool="gen-1"}'
        in generate_latest(a.telemetry.registry).decode()
    )


def test_a_lock_server_asking_a_long_wait_is_alerted_once_not_every_tick(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """A proxy in front of Nomad (the API double) answers the lock's PUT 503 with a
    Retry-After as an HTTP-date 40 s ahead, past the lock call's deadline: the daemon
    does not act, and Slack is told. The error says how long the server asked to wait,
    a figure that is a little less at each tick, so each tick's text differed from the
    last and the "leader lock unreachable" alert went to Slack at every tick for as long
    as the proxy refused. The same trouble is told once; its end once."""
    for name in POOLS:
        nomad_api.add_job(name, {"gpu": 1})
    daemon = make_daemon(tmp_path, "ops-a", nomad_api, ManualClock())
    notifier = daemon.runtime.notifier
    assert isinstance(notifier, RecordingNotifier)
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    nomad_api.fail_next(4, status=503, method="PUT", path="/v1/var", retry_after=later)
    for _ in range(4):
        assert daemon.tick() == []
    alerts = [t for t in notifier.texts if "leader lock" in t]
    assert len(alerts) == 1, alerts
    assert "asked to wait" in alerts[0] and "past the deadline" in alerts[0]
    assert [r.pool for r in daemon.tick()] == list(POOLS)
    assert [t for t in notifier.texts if "leader lock" in t][1:] == [
        ":rotating_light: leader lock reachable again"
    ]
