"""Config reloads: what a reload lets go of, and what a pool that stays keeps."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from autoscaler.daemon import Daemon
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON, run_ticks, write_config
from tests.doubles.prometheus_server import PrometheusApiDouble
from tests.faults.test_process_faults import fresh_demand
from tests.support import RecordingNotifier


def deadline_threads() -> int:
    return sum(t.name.startswith("deadline") for t in threading.enumerate())


def test_reloads_do_not_pile_up_prometheus_connections_or_threads(tmp_path: Path) -> None:
    """Each reload builds a new Prometheus source; the one it replaces is closed. Before,
    every reload left its session and its kept call thread behind for good."""
    with PrometheusApiDouble([fresh_demand(10.0, delay=0)]) as prometheus:
        path = write_config(tmp_path, metrics={"kind": "prometheus", "url": prometheus.url})
        daemon = Daemon(path, notifier=RecordingNotifier())
        (result,) = daemon.tick()
        assert result.decision is not None
        before = deadline_threads()
        for _ in range(5):
            daemon.request_reload()
            (result,) = daemon.tick()
            assert result.decision is not None
        deadline = time.monotonic() + 5.0  # a closed source's thread ends on its own
        while deadline_threads() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert deadline_threads() <= before


def test_a_reload_keeps_a_simulated_fleet_whose_settings_stay(tmp_path: Path) -> None:
    """A simulated pool scaled up, then a reload (its max_nodes changed, its backend not):
    the fleet keeps its count. Before, the reload built a fresh fleet at initial_nodes and
    the next tick alerted a change by hand and held it for the cooldown."""
    path = write_config(tmp_path)
    clock = SimulatedClock(NOON)
    notifier = RecordingNotifier()
    daemon = Daemon(path, clock=clock, notifier=notifier)
    run_ticks(daemon, clock, 3)
    desired = daemon.runtime.tickers[0].backend.read().desired
    assert desired > 4  # scaled up from initial_nodes
    path.write_text(path.read_text().replace("max_nodes: 40", "max_nodes: 39"))
    daemon.request_reload()
    (result,) = daemon.tick()
    assert daemon.runtime.config.pools[0].max_nodes == 39
    assert result.decision is not None and result.decision.current == desired
    assert not [t for t in notifier.texts if "outside the autoscaler" in t]


def test_a_drain_left_by_a_pool_no_longer_configured_is_said(tmp_path: Path) -> None:
    """A pool renamed or removed while its nodes drained (nomad_cluster's scale-in record,
    `<pool>.backend.json`) left them drained, ineligible and counted by their group, and
    nothing said so: now the start and each reload say it, naming the file; a configured
    pool's record is not named, and the file is left as it is."""
    path = write_config(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "image-gen.backend.json").write_text("{}")
    gone = state / "old-ocr.backend.json"
    gone.write_text('{"nodes": []}')
    notifier = RecordingNotifier()
    Daemon(path, clock=SimulatedClock(NOON), notifier=notifier)
    said = [t for t in notifier.texts if "no longer in the config" in t]
    assert len(said) == 1 and str(gone) in said[0] and "'old-ocr'" in said[0]
    assert gone.read_text() == '{"nodes": []}'
