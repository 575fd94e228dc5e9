"""Config reloads: what a reload lets go of, and what a pool that stays keeps."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from autoscaler.daemon import Daemon
from tests.autoscaler.test_daemon import write_config
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
