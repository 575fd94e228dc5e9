"""Config reloads: what a reload lets go of, and what a pool that stays keeps."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.daemon import Daemon
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON, run_ticks, write_config
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.doubles.prometheus_server import PrometheusApiDouble
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble
from tests.faults.test_deadlines import HungFleet
from tests.faults.test_process_faults import fresh_demand
from tests.support import RecordingNotifier, slack_posted


def deadline_threads() -> int:
    return sum(t.name.startswith("deadline") for t in threading.enumerate())


def sender_threads() -> int:
    return sum(t.name == "slack-sender" for t in threading.enumerate())


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


@pytest.mark.parametrize("timeout", ["20s", "30s"])
def test_news_queued_at_a_reload_is_posted_once(tmp_path: Path, timeout: str) -> None:
    """Slack (the double of its Web API) holds a post unanswered while more news waits
    behind it, and a reload comes: one that keeps Slack's settings keeps the sender and
    its queue; one that changes them (the timeout) has the new sender take the queue
    over, the old one finishing the post in hand. Once Slack answers, each message is
    posted once: none lost, none twice; and one sender thread is left."""
    senders = sender_threads()
    with SlackApiDouble() as slack_api:
        slack = {"channel": "#gpu-autoscaler", "base_url": slack_api.base_url, "timeout": "20s"}
        path = write_config(tmp_path, slack=slack)
        daemon = Daemon(path, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(NOON))
        before = daemon.runtime.notifier
        slack_api.hold()
        try:
            daemon._alert("in Slack's hands at the reload")
            deadline = time.monotonic() + 10
            while slack_api.held == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            daemon._alert("queued at the reload")
            path.write_text(path.read_text().replace("timeout: 20s", f"timeout: {timeout}"))
            daemon.request_reload()
            (result,) = daemon.tick()
        finally:
            slack_api.release()
        slack_posted(before)
        slack_posted(daemon.runtime.notifier)
        deadline = time.monotonic() + 10  # a replaced sender's thread ends on its own
        while sender_threads() > senders + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sender_threads() == senders + 1
    assert result.acted
    assert (daemon.runtime.notifier is before) == (timeout == "20s")
    said = "\n".join(m.text or "" for m in slack_api.messages)
    assert said.count("in Slack's hands at the reload") == 1
    assert said.count("queued at the reload") == 1
    assert said.count("image-gen 4 →") == 1


def test_a_reload_that_removes_slack_ends_its_sender(tmp_path: Path) -> None:
    """The slack block taken out of the config: what the sender holds is posted and its
    thread ends. Before, it was kept for the life of the daemon (one more each such reload)."""
    senders = sender_threads()
    with SlackApiDouble() as slack_api:
        slack = {"channel": "#gpu-autoscaler", "base_url": slack_api.base_url}
        path = write_config(tmp_path, slack=slack)
        daemon = Daemon(path, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(NOON))
        daemon._alert("said before the reload")
        assert write_config(tmp_path) == path and "slack" not in path.read_text()
        daemon.request_reload()
        daemon.tick()
        deadline = time.monotonic() + 10
        while sender_threads() > senders and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sender_threads() == senders
    assert ["said before the reload" in (m.text or "") for m in slack_api.messages] == [True]


def test_reloads_while_a_digest_reads_leave_no_call_thread_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily digest takes the runtime of the moment, then reads Prometheus outside the
    tick lock (minutes, for many pools); a reload meanwhile closes that source. Before,
    the digest's reads from the closed source started a new kept call thread, which then
    waited for a next call for ever: one more thread, and its connection, for each reload
    that came during a digest."""
    import autoscaler.daemon_digest as daemon_module  # where the digest is posted

    real_digest_post = daemon_module.digest_post
    with (
        PrometheusApiDouble([fresh_demand(10.0, delay=0)]) as prometheus,
        SlackApiDouble() as slack_api,
    ):
        path = write_config(
            tmp_path,
            metrics={"kind": "prometheus", "url": prometheus.url},
            slack={"channel": "#gpu-autoscaler", "base_url": slack_api.base_url},
            digest={"plot": False},
        )
        daemon = Daemon(path, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN})
        daemon.tick()
        before = deadline_threads()

        def reloaded_meanwhile(config: object, metrics: object, *args: Any) -> Any:
            daemon.request_reload()
            daemon.tick()
            assert daemon.runtime.metrics is not metrics  # the digest's source: closed
            return real_digest_post(config, metrics, *args)

        monkeypatch.setattr(daemon_module, "digest_post", reloaded_meanwhile)
        for _ in range(3):
            assert daemon.send_digest()
        deadline = time.monotonic() + 5.0  # a closed source's thread ends on its own
        while deadline_threads() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert deadline_threads() <= before


@pytest.mark.parametrize("how", ["reload", "restart"])
def test_a_pool_moved_to_another_fleet_is_not_told_a_change_by_hand(
    tmp_path: Path, nomad_api: NomadApiDouble, how: str
) -> None:
    """A pool moved by a reload (or a restart) from one Nomad job to another, a v2 of the
    service under the same pool name, against the Nomad API double: the new job's count
    is not the one the old job was left at, and no change by hand. Before, the first tick
    on the new job alerted 'the count changed from 15 to 1 outside the autoscaler' and
    held the new job at 1 node for the cooldown, though demand needed 15."""
    nomad_api.add_job("llm-v1", {"gpu": 1})
    backend = {"kind": "nomad_job", "job": "llm-v1", "group": "gpu", "address": nomad_api.url}
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["pools"][0].update(backend=backend, cooldown="30m")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    clock = SimulatedClock(NOON)
    notifier = RecordingNotifier()
    env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    daemon = Daemon(path, clock=clock, notifier=notifier, env=env)
    run_ticks(daemon, clock, 2)
    scaled = nomad_api.jobs[("default", "llm-v1")].groups["gpu"]
    assert scaled > 1
    nomad_api.add_job("llm-v2", {"gpu": 1})
    path.write_text(path.read_text().replace("llm-v1", "llm-v2"))
    if how == "reload":
        daemon.request_reload()
    else:
        daemon = Daemon(path, clock=clock, notifier=notifier, env=env)
    (result,) = daemon.tick()
    assert result.decision is not None and result.decision.current == 1
    assert not [t for t in notifier.texts if "outside the autoscaler" in t]
    assert result.decision.desired > 1 and result.acted
    assert nomad_api.jobs[("default", "llm-v2")].groups["gpu"] == result.decision.desired
    assert nomad_api.jobs[("default", "llm-v1")].groups["gpu"] == scaled  # left as it was
    clock.advance(timedelta(minutes=1))
    nomad_api.jobs[("default", "llm-v2")].groups["gpu"] = 30  # by hand: still told
    daemon.tick()
    assert [t for t in notifier.texts if "outside the autoscaler" in t]


def test_a_pool_a_reload_removes_leaves_the_state_file(tmp_path: Path) -> None:
    """Pools added and removed by reloads under a new name each time (a pool per model
    version): each one's memory was kept for the life of the daemon, in memory and in the
    state file every tick rewrites. Now a reload that removes a pool forgets it; the pool
    that stays keeps its memory."""
    path = write_config(tmp_path)
    pool = yaml.safe_load(path.read_text())["pools"][0]
    clock = SimulatedClock(NOON)
    daemon = Daemon(path, clock=clock, notifier=RecordingNotifier())
    run_ticks(daemon, clock, 2)
    kept = daemon.states["image-gen"]
    for version in range(20):
        for pools in ([pool, {**pool, "name": f"model-v{version}"}], [pool]):
            write_config(tmp_path, pools=pools)
            daemon.request_reload()
            run_ticks(daemon, clock, 1)
    saved = json.loads((tmp_path / "state" / "state.json").read_text())["pools"]
    assert set(daemon.states) == set(saved) == {"image-gen"}
    assert daemon.states["image-gen"] is kept


def test_a_stuck_pool_removed_and_added_again_is_no_recovery(tmp_path: Path) -> None:
    """A pool whose tick was left behind (its fleet read hung past the 1 s interval:
    'tick failing' alerted), then removed by a reload and added again by another: the
    daemon kept its name among the stuck for good, so the new pool's first tick alerted
    'tick recovered' for a failure nobody had been told was still going on. A reload now
    forgets the stuck pools it removes, as it forgets their states."""
    path = write_config(tmp_path, interval="1s")
    config = yaml.safe_load(path.read_text())
    pool = config["pools"][0]
    other = {**pool, "name": "other"}
    write_config(tmp_path, interval="1s", pools=[pool, other])
    notifier = RecordingNotifier()
    daemon = Daemon(path, clock=SimulatedClock(NOON), notifier=notifier)
    stuck = daemon.runtime.tickers[1]
    stuck.backend = HungFleet(stuck.backend, hang_s=2.0)
    daemon.tick()
    assert sum("other: tick failing" in t for t in notifier.texts) == 1
    for pools in ([pool], [pool, other]):
        write_config(tmp_path, interval="1s", pools=pools)
        daemon.request_reload()
        daemon.tick()
    assert not [t for t in notifier.texts if "tick recovered" in t], notifier.texts
