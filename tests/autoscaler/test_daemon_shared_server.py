"""One slow server shared by many pools: within a tick, once a call to it went unanswered,
the other pools on it hold without waiting for it again (common.tick_circuit).

The pools' clients are the real ones (python-nomad, prometheus-api-client) against the HTTP
doubles of Nomad's and Prometheus's documented APIs (tests/doubles), one of each stalling
every request past the client's timeout as a blackholed server does; the requests each
double received are counted, never the seconds. `python bench/shared_server.py` measures
the tick at the default timeouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autoscaler.daemon import Daemon
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON, write_config
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.doubles.prometheus_server import PrometheusApiDouble, Reply
from tests.faults.test_metrics_faults import good
from tests.support import RecordingNotifier

STALL_S = 30.0  # far past the 0.3 s timeout; the doubles' stop releases it


def nomad_pool(name: str, address: str) -> dict[str, Any]:
    backend = {
        "kind": "nomad_job",
        "job": name,
        "group": "gpu",
        "address": address,
        "timeout": "0.3s",
        "retries": 1,
    }
    return {
        "name": name,
        "backend": backend,
        "demand": {"query": "ignored", "window": "1h"},
        "capacity": {"per_node_rps": 0.25},
        "max_nodes": 40,
    }


def daemon_on(path: Path, **changes: Any) -> tuple[Daemon, RecordingNotifier]:
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config))
    notifier = RecordingNotifier()
    env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    return Daemon(path, clock=SimulatedClock(NOON), notifier=notifier, env=env), notifier


def test_pools_on_a_nomad_that_does_not_answer_wait_for_it_once_a_tick(tmp_path: Path) -> None:
    """Three pools on a Nomad that stalls every request, then one on a healthy Nomad: only
    the first pool's calls reach the stalled one (at the first tick, its question about
    other autoscalers, one attempt); the two after it hold, saying whose call went
    unanswered (no token in it), told once; the healthy pool is decided; the next tick asks
    the stalled Nomad again, the first pool's read and its retry."""
    with NomadApiDouble() as stalled, NomadApiDouble() as healthy:
        for name in ("ocr", "asr", "tts"):
            stalled.add_job(name, {"gpu": 3})
        stalled.delay_next(100, STALL_S)
        healthy.add_job("llm", {"gpu": 3})
        pools = [nomad_pool(n, stalled.url) for n in ("ocr", "asr", "tts")]
        pools.append(nomad_pool("llm", healthy.url))
        daemon, notifier = daemon_on(write_config(tmp_path), pools=pools)

        first = {r.pool: r for r in daemon.tick()}
        asked = {r.path for r in stalled.requests}
        assert asked and all("/job/ocr" in p for p in asked), asked
        for name in ("asr", "tts"):
            why = first[name].errors["backend"]
            assert f"skipped: {stalled.url} did not answer pool ocr's call this tick" in why
            assert first[name].decision is None and not first[name].acted
        assert first["llm"].decision is not None and not first["llm"].errors

        before = len(stalled.requests)
        second = {r.pool: r for r in daemon.tick()}
        assert {r.path for r in stalled.requests[before:]} <= {"/v1/job/ocr/scale"}
        assert len(stalled.requests) - before == 2  # the read and its one retry
        assert "skipped" not in second["ocr"].errors["backend"]
        assert "skipped" in second["tts"].errors["backend"]
    texts = "\n".join(notifier.texts)
    assert DOUBLE_ACL_TOKEN[:8] not in texts
    assert sum("tts" in t and "backend failing" in t for t in notifier.texts) == 1


def test_pools_on_a_prometheus_that_does_not_answer_hold_after_one_query(tmp_path: Path) -> None:
    """Every pool reads one Prometheus, which stalls: the first pool's query times out and
    the others hold on missing data (never zero load) without asking; the next tick asks
    once again."""
    with PrometheusApiDouble([Reply(body=good(NOON, 10.0).body, delay=STALL_S)]) as prom:
        path = write_config(tmp_path)
        config = yaml.safe_load(path.read_text())
        pool = config["pools"][0]
        pools = [{**pool, "name": name} for name in ("ocr", "asr", "tts")]
        metrics = {"kind": "prometheus", "url": prom.url, "timeout": "0.3s"}
        daemon, _ = daemon_on(path, pools=pools, metrics=metrics)
        results = daemon.tick()
        assert len(prom.requests) == 1
        for result in results:
            assert result.errors["metrics"].startswith(("timeout:", "unreachable:"))
            assert result.decision is not None and result.decision.desired == 4
            assert not result.acted
        assert f"{prom.url} did not answer pool ocr's call" in results[2].errors["metrics"]
        daemon.tick()
        assert len(prom.requests) == 2
