"""The daemon loop: state across restarts, reloads that keep a good config, signals."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from autoscaler.daemon import Daemon
from common.clock import SimulatedClock
from tests.support import ROOT, RecordingNotifier, daemon_process

TRACE = ROOT / "config" / "traces" / "nasa_jul95_demo.csv"
NOON = datetime(1995, 7, 5, 16, 0, tzinfo=UTC)


def write_config(tmp_path: Path, **changes: object) -> Path:
    config: dict[str, object] = {
        "interval": "1m",
        "state_dir": str(tmp_path / "state"),
        "decision_log": str(tmp_path / "decisions.jsonl"),
        "overrides_file": str(tmp_path / "overrides.yaml"),
        "metrics": {"kind": "replay", "trace": str(TRACE)},
        "pools": [
            {
                "name": "image-gen",
                "backend": {"kind": "simulated", "initial_nodes": 4, "boot_delay": "10m"},
                "demand": {"query": "ignored", "window": "1h"},
                "capacity": {"per_node_rps": 0.25},
                "max_nodes": 40,
                "scale_down": {"stabilization": "10m", "max_step": 2},
            }
        ],
    }
    config.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_ticks(daemon: Daemon, clock: SimulatedClock, count: int) -> None:
    for _ in range(count):
        daemon.tick()
        clock.advance(timedelta(minutes=1))


def test_memory_survives_a_restart(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    clock = SimulatedClock(NOON)
    first = Daemon(path, clock=clock, notifier=RecordingNotifier())
    run_ticks(first, clock, 5)
    remembered = first.states["image-gen"].memory
    assert remembered.recommendations and remembered.last_action_at is not None
    second = Daemon(path, clock=clock, notifier=RecordingNotifier())
    assert second.states["image-gen"].memory == remembered


def test_a_state_changed_mid_save_fails_that_save_not_the_tick(tmp_path: Path) -> None:
    """A pool's tick left behind may still change its state (a failure starting) while
    the end-of-tick save reads it: that save is skipped and said, the tick completes,
    and the next tick saves."""
    clock = SimulatedClock(NOON)
    daemon = Daemon(write_config(tmp_path), clock=clock, notifier=RecordingNotifier())
    store = daemon.runtime.state_store
    real_save = store.save

    def changed_meanwhile(pools: object) -> None:
        raise RuntimeError("dictionary changed size during iteration")

    store.save = changed_meanwhile  # type: ignore[method-assign]
    results = daemon.tick()
    assert results[0].decision is not None and daemon.ticks == 1
    assert not store.path.exists()
    store.save = real_save  # type: ignore[method-assign]
    clock.advance(timedelta(minutes=1))
    daemon.tick()
    assert store.path.exists()


def test_bad_config_on_reload_keeps_the_old_one_and_alerts(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    clock = SimulatedClock(NOON)
    notifier = RecordingNotifier()
    daemon = Daemon(path, clock=clock, notifier=notifier)
    daemon.tick()
    old_runtime = daemon.runtime
    path.write_text(path.read_text().replace("max_nodes: 40", "max_nodes: forty"))
    daemon.request_reload()
    results = daemon.tick()
    assert daemon.runtime is old_runtime and results[0].decision is not None
    (alert,) = [t for t in notifier.texts if "reload failed" in t]
    assert "config.yaml" in alert and "max_nodes" in alert
    path.write_text(path.read_text().replace("max_nodes: forty", "max_nodes: 3"))
    daemon.request_reload()
    (result,) = daemon.tick()
    assert daemon.runtime.config.pools[0].max_nodes == 3
    assert result.decision is not None and result.decision.desired <= 3


def pinned_to_seven(tmp_path: Path) -> tuple[Daemon, SimulatedClock, RecordingNotifier, Path]:
    """A daemon whose overrides file pins image-gen to 7 nodes, after its first tick."""
    path = write_config(tmp_path)
    overrides = tmp_path / "overrides.yaml"
    expires = (NOON + timedelta(days=1)).isoformat()
    overrides.write_text(
        f"overrides:\n  image-gen:\n    nodes: 7\n    expires: {expires}\n    reason: test\n"
    )
    clock = SimulatedClock(NOON)
    notifier = RecordingNotifier()
    daemon = Daemon(path, clock=clock, notifier=notifier)
    (result,) = daemon.tick()
    assert result.decision is not None and result.decision.desired == 7
    return daemon, clock, notifier, overrides


def test_broken_overrides_file_keeps_the_last_good_overrides(tmp_path: Path) -> None:
    daemon, clock, notifier, overrides = pinned_to_seven(tmp_path)
    overrides.write_text("overrides:\n  image-gen: [this is: not valid\n")
    os.utime(overrides, (time.time() + 5, time.time() + 5))
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        (result,) = daemon.tick()
        assert result.decision is not None and result.decision.desired == 7
    assert sum("overrides file is broken" in t for t in notifier.texts) == 1


def test_an_overrides_file_broken_at_start_is_not_said_to_keep_overrides(
    tmp_path: Path,
) -> None:
    """A daemon (re)started, or a `--once` from cron, on a broken overrides file has no
    last good overrides: the pool it pinned is scaled by the forecast again. The alert
    once said "keeping the last good overrides", and the person who pinned the pool read
    that the pin held; it says that no override is in force."""
    path = write_config(tmp_path)
    expires = (NOON + timedelta(days=1)).isoformat()
    (tmp_path / "overrides.yaml").write_text(
        f"overrides:\n  image-gen:\n    nodes: 7\n    expires: {expires}\n    reasn: typo\n"
    )
    notifier = RecordingNotifier()
    daemon = Daemon(path, clock=SimulatedClock(NOON), notifier=notifier)
    (result,) = daemon.tick()
    assert result.decision is not None and result.decision.desired != 7
    (told,) = [t for t in notifier.texts if "overrides file is broken" in t]
    assert "keeping the last good" not in told
    assert "no override is in force" in told and "reasn" in told


def test_a_removed_overrides_file_lifts_its_overrides_and_says_so(tmp_path: Path) -> None:
    """Missing means no overrides, as at start; but a fleet pinned by one may now shrink,
    so its removal is told once, naming the pools whose overrides are lifted."""
    daemon, clock, notifier, overrides = pinned_to_seven(tmp_path)
    overrides.unlink()
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        (result,) = daemon.tick()
        assert result.decision is not None and not daemon.overrides.overrides
    (told,) = [t for t in notifier.texts if "was removed" in t]
    assert str(overrides) in told and "image-gen" in told


def test_a_reload_that_drops_the_overrides_file_says_which_overrides_are_lifted(
    tmp_path: Path,
) -> None:
    """A reload whose config no longer names `overrides_file` lifted every override without
    a word, where removing the file itself is told: a pinned fleet may now shrink."""
    daemon, clock, notifier, _ = pinned_to_seven(tmp_path)
    path = tmp_path / "config.yaml"
    config = yaml.safe_load(path.read_text())
    del config["overrides_file"]
    path.write_text(yaml.safe_dump(config))
    daemon.request_reload()
    run_ticks(daemon, clock, 3)
    assert daemon.overrides.overrides == {}
    (told,) = [t for t in notifier.texts if "no longer in the config" in t]
    assert "overrides_file" in told and "image-gen" in told


def test_an_emptied_overrides_file_keeps_the_last_good_overrides(tmp_path: Path) -> None:
    """An editor that truncates before it writes (nano, `cat > overrides.yaml` while the
    text is pasted) leaves the file empty for a while: read then, every override was
    lifted without a word, and a fleet held down by one scaled up at once. An empty file
    keeps the last good overrides, told once; `overrides: {}` lifts them."""
    daemon, clock, notifier, overrides = pinned_to_seven(tmp_path)
    overrides.write_text("")
    os.utime(overrides, (time.time() + 5, time.time() + 5))
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        (result,) = daemon.tick()
        assert result.decision is not None and result.decision.desired == 7
    (told,) = [t for t in notifier.texts if "is empty" in t]
    assert str(overrides) in told and "image-gen" in told
    overrides.write_text("overrides: {}\n")
    os.utime(overrides, (time.time() + 10, time.time() + 10))
    clock.advance(timedelta(minutes=1))
    daemon.tick()
    assert daemon.overrides.overrides == {}


def test_an_override_for_no_pool_of_the_config_is_said_with_its_line(tmp_path: Path) -> None:
    """A typo in a pool's name, or a pool renamed by a reload, leaves its override doing
    nothing: `validate` refuses it, and the daemon, which still applies the rest, says so
    once for each change, naming the file, the line and the entry."""
    daemon, clock, notifier, overrides = pinned_to_seven(tmp_path)
    expires = (NOON + timedelta(days=1)).isoformat()
    overrides.write_text(
        overrides.read_text()
        + f"  image_gen:\n    nodes: 9\n    expires: {expires}\n    reason: typo\n"
    )
    os.utime(overrides, (time.time() + 5, time.time() + 5))
    run_ticks(daemon, clock, 3)
    (told,) = [t for t in notifier.texts if "do nothing" in t]
    assert f"{overrides}:6: overrides.image_gen: unknown pool 'image_gen'" in told
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("name: image-gen", "name: image-gen-v2"))
    daemon.request_reload()
    run_ticks(daemon, clock, 2)
    (renamed,) = [t for t in notifier.texts if "do nothing" in t][1:]
    assert "overrides.image-gen: unknown pool 'image-gen'" in renamed
    assert "image-gen-v2" in renamed  # what the config has


def test_sigterm_finishes_the_tick_and_exits_zero_sighup_reload_survives_bad_file(
    tmp_path: Path,
) -> None:
    simulation = {"start": "1995-07-05T12:00:00Z", "end": "1995-07-06T12:00:00Z", "speed": 30}
    path = write_config(tmp_path, simulation=simulation)  # one tick every 2 s of real time
    log = tmp_path / "decisions.jsonl"
    with daemon_process(path) as proc:
        deadline = time.time() + 30
        while time.time() < deadline and not (log.exists() and log.read_text().strip()):
            time.sleep(0.1)
        assert log.exists(), "the daemon never ticked"
        path.write_text("pools: [oops\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(2.5)
        assert proc.poll() is None, "a bad config on SIGHUP must not stop the daemon"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "config reload failed" in err
    lines = log.read_text().splitlines()
    assert len(lines) >= 2  # it kept ticking on the old config after the bad reload
    assert all(json.loads(line)["pool"] == "image-gen" for line in lines)
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert "image-gen" in state["pools"]


def test_a_reload_keeps_start_only_settings_and_says_a_restart_applies_them(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    clock = SimulatedClock(NOON)
    notifier = RecordingNotifier()
    daemon = Daemon(path, clock=clock, notifier=notifier)
    daemon.tick()
    changed = yaml.safe_load(path.read_text())
    changed["interval"] = "2m"
    changed["telemetry"] = {"listen": "127.0.0.1:9999"}
    changed["pools"][0]["max_nodes"] = 3
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    daemon.request_reload()
    (result,) = daemon.tick()
    config = daemon.runtime.config
    assert config.pools[0].max_nodes == 3 and result.decision is not None  # the rest applies
    assert config.interval == timedelta(minutes=1) and config.telemetry is None
    (alert,) = [t for t in notifier.texts if "restart" in t]
    assert "interval, telemetry" in alert and "config.yaml" in alert
    daemon.request_reload()  # the file still differs from what runs: said again
    daemon.tick()
    assert len([t for t in notifier.texts if "restart" in t]) == 2


def two_pools(path: Path, ocr_max_nodes: int = 20, trace: Path = TRACE) -> None:
    config = yaml.safe_load(path.read_text())
    ocr = {**config["pools"][0], "name": "ocr", "max_nodes": ocr_max_nodes}
    config["pools"] = [config["pools"][0], ocr]
    config["metrics"] = {"kind": "replay", "trace": str(trace)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def predictors_of(daemon: Daemon) -> dict[str, object]:
    return {ticker.pool.name: ticker.predictor for ticker in daemon.runtime.tickers}


def two_pools_ticked(tmp_path: Path, ticks: int) -> tuple[Path, SimulatedClock, Daemon]:
    """A daemon on two pools (image-gen and ocr), `ticks` minutes in."""
    path = write_config(tmp_path)
    two_pools(path)
    clock = SimulatedClock(NOON)
    daemon = Daemon(path, clock=clock, notifier=RecordingNotifier())
    run_ticks(daemon, clock, ticks)
    return path, clock, daemon


def test_a_reload_keeps_what_unchanged_pools_learned(tmp_path: Path) -> None:
    """A pool configured the same keeps its predictor (history, fitted model) across a
    reload, and its next tick refits nothing; a changed pool starts afresh."""
    path, clock, daemon = two_pools_ticked(tmp_path, 3)
    before = predictors_of(daemon)
    fits = before["image-gen"].inner.heavy_fits  # type: ignore[attr-defined]
    two_pools(path, ocr_max_nodes=9)
    daemon.request_reload()
    run_ticks(daemon, clock, 1)
    after = predictors_of(daemon)
    assert daemon.runtime.config.pools[1].max_nodes == 9  # the reload took
    assert after["image-gen"] is before["image-gen"]
    assert after["image-gen"].inner.heavy_fits == fits  # type: ignore[attr-defined]
    assert after["ocr"] is not before["ocr"]


def test_a_reload_starts_afresh_on_another_source_or_beside_a_tick_left_running(
    tmp_path: Path,
) -> None:
    """Learning is carried only from the same metrics source, and never from a ticker
    whose tick is still running (it would share the predictor with the new one)."""
    path, clock, daemon = two_pools_ticked(tmp_path, 2)
    before = predictors_of(daemon)
    copy = tmp_path / "same_traffic.csv"
    copy.write_bytes(TRACE.read_bytes())
    two_pools(path, trace=copy)
    daemon.request_reload()
    run_ticks(daemon, clock, 1)
    after = predictors_of(daemon)
    assert not set(before.values()) & set(after.values())
    stuck = daemon.runtime.tickers[0]
    stuck.in_flight = True  # as if a tick left behind past its deadline still ran
    two_pools(path, ocr_max_nodes=9, trace=copy)
    daemon.request_reload()
    daemon.tick()
    again = predictors_of(daemon)
    assert again["image-gen"] is not after["image-gen"]


def test_a_tick_longer_than_the_interval_is_said_once_not_per_skipped_run(
    tmp_path: Path, caplog
) -> None:
    """apscheduler skips the runs due while a tick is still going; the daemon says so once
    per overrunning tick, at WARNING (a simulation, which always outruns its ticks: DEBUG)."""
    import logging
    import threading

    daemon = Daemon(write_config(tmp_path, interval="1s"), notifier=RecordingNotifier())
    real_tick = daemon.tick

    def slow_tick() -> list:
        time.sleep(3.2)  # three intervals
        return real_tick()

    daemon.tick = slow_tick  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG, logger="autoscaler.daemon")
    runner = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    runner.start()
    time.sleep(4.5)
    daemon.stop()
    runner.join(timeout=10)
    said = [r for r in caplog.records if "longer than the interval" in r.getMessage()]
    assert daemon.skipped_ticks >= 2
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert said[0].skipped_ticks >= 1  # type: ignore[attr-defined]


def test_a_pool_with_the_loop_margin_ticks_through_the_calibrated_predictor(
    tmp_path: Path,
) -> None:
    """`predictor.margin: loop` reaches the daemon's ticker (built by the runtime once the
    pool's per-node rate is known); the margin stays 1 until a day of ticks is kept."""
    from autoscaler.calibration import LoopCalibrated

    pool = yaml.safe_load(write_config(tmp_path).read_text())["pools"][0]
    pool["predictor"] = {"kind": "seasonal", "margin": "loop"}
    path = write_config(tmp_path, pools=[pool])
    clock = SimulatedClock(NOON)
    daemon = Daemon(path, clock=clock, notifier=RecordingNotifier())
    (ticker,) = daemon.runtime.tickers
    assert isinstance(ticker.predictor, LoopCalibrated)
    assert ticker.predictor.settings.per_node_rps == 0.25
    run_ticks(daemon, clock, 3)
    assert ticker.predictor.margin == 1.0 and len(ticker.predictor._ticks) == 3


def run_then_stop(daemon: Daemon) -> None:
    """The daemon's own loop (its first tick runs at once), stopped after that tick."""
    import threading

    runner = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    runner.start()
    deadline = time.monotonic() + 60
    while daemon.ticks < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.stop()
    runner.join(timeout=60)
    assert daemon.ticks >= 1 and not runner.is_alive()


def test_a_loop_pools_week_of_ticks_outlives_a_restart_not_a_dry_runs(
    tmp_path: Path, caplog
) -> None:
    """At a stop the daemon writes each loop-calibrated pool's week of ticks beside its
    state; the next start reads it as it starts, and its first tick goes on from it. A dry
    run reads it and writes nothing; a file that does not read is said, and that pool's
    week starts over."""
    import logging

    pool = yaml.safe_load(write_config(tmp_path).read_text())["pools"][0]
    pool["predictor"] = {"kind": "seasonal", "margin": "widen"}
    path = write_config(tmp_path, pools=[pool])
    clock = SimulatedClock(NOON)
    run_then_stop(Daemon(path, clock=clock, notifier=RecordingNotifier()))
    week = tmp_path / "state" / "loop-ticks" / "image-gen.npz"
    written = week.read_bytes()
    clock.advance(timedelta(minutes=1))
    dry = Daemon(path, clock=clock, dry_run=True, notifier=RecordingNotifier())
    run_then_stop(dry)
    assert len(dry.runtime.tickers[0].predictor._ticks) == 2  # type: ignore[attr-defined]
    assert week.read_bytes() == written
    restarted = Daemon(path, clock=clock, notifier=RecordingNotifier())
    week.unlink()  # read as the daemon started, not in its first tick
    run_ticks(restarted, clock, 2)
    assert len(restarted.runtime.tickers[0].predictor._ticks) == 3  # type: ignore[attr-defined]
    week.write_bytes(written[: len(written) // 2])  # cut short (a full disk)
    caplog.set_level(logging.WARNING)
    again = Daemon(path, clock=clock, notifier=RecordingNotifier())
    (result,) = again.tick()
    assert result.decision is not None
    assert len(again.runtime.tickers[0].predictor._ticks) == 1  # type: ignore[attr-defined]
    assert any(str(week) in r.getMessage() for r in caplog.records)


def test_a_week_that_cannot_be_written_is_said_and_the_daemon_goes_on(
    tmp_path: Path, caplog
) -> None:
    """The loop's week is a cache: a folder it cannot be written to (here a file in its
    place) is logged, naming it, and the ticks and the stop go on."""
    import logging

    pool = yaml.safe_load(write_config(tmp_path).read_text())["pools"][0]
    pool["predictor"] = {"kind": "seasonal", "margin": "widen"}
    path = write_config(tmp_path, pools=[pool])
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "loop-ticks").write_text("not a folder")
    caplog.set_level(logging.WARNING)
    daemon = Daemon(path, clock=SimulatedClock(NOON), notifier=RecordingNotifier())
    run_then_stop(daemon)
    said = [r.getMessage() for r in caplog.records if "week not saved" in r.getMessage()]
    assert said and "loop-ticks/image-gen.npz" in said[0]


def test_a_pool_a_reload_removes_leaves_the_metrics(tmp_path: Path) -> None:
    """/metrics shows only the pools that run: a removed pool's gauges and counters go
    with it (a stale series would look like a pool still held at its last count)."""
    from prometheus_client import generate_latest

    path, clock, daemon = two_pools_ticked(tmp_path, 2)
    before = generate_latest(daemon.telemetry.registry).decode()
    assert 'autoscaler_pool_current_nodes{pool="ocr"}' in before
    counted = [line for line in before.splitlines() if line.startswith("autoscaler_decisions")]
    assert any('pool="ocr"' in line for line in counted)
    config = yaml.safe_load(path.read_text())
    config["pools"] = config["pools"][:1]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    daemon.request_reload()
    run_ticks(daemon, clock, 1)
    after = generate_latest(daemon.telemetry.registry).decode()
    assert 'pool="ocr"' not in after
    assert 'autoscaler_pool_current_nodes{pool="image-gen"}' in after
    assert 'autoscaler_decisions_total{action="none",pool="image-gen"}' in after


def test_a_digest_stuck_on_slack_does_not_hold_the_ticks(tmp_path: Path) -> None:
    """Slack (the double of its documented Web API) takes the digest's chat.postMessage
    and does not answer: the post waits out its deadline (twice the 1 s timeout) beside
    the ticks, which may start meanwhile. Before, the digest held the tick lock for the
    whole post and upload (minutes with a PNG per pool), and no pool was scaled."""
    import threading

    from tests.autoscaler.cli.test_report import setup_day
    from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

    with SlackApiDouble() as slack_api:
        config = setup_day(tmp_path, slack_api.base_url)
        text = config.read_text().replace('base_url: "', 'timeout: 1s, base_url: "')
        config.write_text(text.replace("digest: {currency: EUR}", "digest: {plot: false}"))
        end = datetime(2026, 11, 27, tzinfo=UTC)
        daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(end))
        slack_api.fail("hang", times=1, hang_seconds=10)
        sent: list[bool] = []
        digest = threading.Thread(target=lambda: sent.append(daemon.send_digest()))
        digest.start()
        deadline = time.monotonic() + 10
        while slack_api.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slack_api.requests == 1 and digest.is_alive()  # the post is in flight
        free = daemon._tick_lock.acquire(timeout=0.5)  # what a tick takes first
        if free:
            daemon._tick_lock.release()
        digest.join(10)
    assert free
    assert sent == [False]  # dropped after its deadline, as any post Slack does not answer


def test_a_digest_whose_metrics_are_slow_does_not_hold_the_ticks(tmp_path: Path) -> None:
    """The digest's day of demand (a range query a pool) comes slowly, as from a Prometheus
    answering at its timeout: the ticks may start meanwhile. Before, the digest was built
    under the tick lock: each pool's query up to twice the timeout (20 s by default), plus
    reading a day of the decision log and drawing a PNG a pool, and no pool was ticked."""
    import threading

    from tests.autoscaler.cli.test_report import setup_day
    from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

    with SlackApiDouble() as slack_api:
        config = setup_day(tmp_path, slack_api.base_url)
        config.write_text(
            config.read_text().replace("digest: {currency: EUR}", "digest: {plot: false}")
        )
        end = datetime(2026, 11, 27, tzinfo=UTC)
        daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(end))
        metrics = daemon.runtime.metrics
        asked, answer = threading.Event(), threading.Event()
        day = metrics.demand

        def slow_demand(*args: object) -> object:
            asked.set()
            answer.wait(10)
            return day(*args)  # type: ignore[arg-type]

        metrics.demand = slow_demand  # type: ignore[method-assign]
        sent: list[bool] = []
        digest = threading.Thread(target=lambda: sent.append(daemon.send_digest()))
        digest.start()
        assert asked.wait(10)  # the digest waits on its query
        free = daemon._tick_lock.acquire(timeout=0.5)  # what a tick takes first
        if free:
            daemon._tick_lock.release()
        answer.set()
        digest.join(10)
    assert free
    assert sent == [True]


def test_a_stop_does_not_wait_for_a_digest_in_flight(tmp_path: Path, monkeypatch) -> None:
    """The daily digest fires (its trigger moved to now) and waits on its day of demand,
    as from a Prometheus answering slowly; the daemon is stopped meanwhile and ends
    without it. Before, the stop waited for every job of the scheduler, the digest's
    too: a digest of many pools on a slow Prometheus or Slack (minutes) held the stop
    past systemd's stop timeout, which then killed the daemon."""
    import threading

    from apscheduler.triggers.interval import IntervalTrigger

    import autoscaler.daemon as daemon_module
    from autoscaler.digest import QUEUE_WARMUP
    from tests.autoscaler.cli.test_report import setup_day
    from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

    with SlackApiDouble() as slack_api:
        config = setup_day(tmp_path, slack_api.base_url)
        digest = 'digest: {plot: false, at: "00:00"}'  # the day it covers ends at `end`
        config.write_text(config.read_text().replace("digest: {currency: EUR}", digest))
        soon = datetime.now(UTC) + timedelta(seconds=1)  # daily, as the digest's own
        monkeypatch.setattr(
            daemon_module, "digest_trigger", lambda *_: IntervalTrigger(days=1, start_date=soon)
        )
        end = datetime(2026, 11, 27, tzinfo=UTC)
        daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(end))
        metrics = daemon.runtime.metrics
        asked, answer = threading.Event(), threading.Event()
        day = metrics.demand

        def slow_demand(*args: object) -> object:
            # the digest's day, with the hour before that warms its queue; not a tick's
            if args[1:3] == (end - timedelta(days=1) - QUEUE_WARMUP, end):
                asked.set()
                answer.wait(120)
            return day(*args)  # type: ignore[arg-type]

        metrics.demand = slow_demand  # type: ignore[method-assign]
        runner = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
        runner.start()
        try:
            assert asked.wait(30)  # the digest waits on its query
            daemon.stop()
            runner.join(60)
            stopped_first = not runner.is_alive() and not answer.is_set()
        finally:
            answer.set()
            runner.join(60)
    assert stopped_first
    # the digest in flight at the stop is dropped, not posted once its query answers
    assert not [m for m in slack_api.messages if (m.text or "").startswith("Daily digest")]


def test_slack_posts_dropped_are_counted_on_the_metrics(tmp_path: Path) -> None:
    """Slack's double of chat.postMessage answers not_in_channel (the bot was never
    invited): the tick's news is dropped, and /metrics says so, where before only a log
    line at each post did."""
    from prometheus_client import generate_latest

    from autoscaler.notify_queue import finish
    from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

    with SlackApiDouble() as slack_api:
        slack = {"channel": "#gpu-autoscaler", "base_url": slack_api.base_url}
        config = write_config(tmp_path, slack=slack)
        clock = SimulatedClock(NOON)
        daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=clock)
        exported = generate_latest(daemon.telemetry.registry).decode()
        assert 'autoscaler_notifications_failed_total{reason="channel"} 0.0' in exported
        slack_api.outside.add("C0AUTOSCALE")
        run_ticks(daemon, clock, 1)
        finish(daemon.runtime.notifier)
        assert slack_api.requests >= 1 and not slack_api.messages
    exported = generate_latest(daemon.telemetry.registry).decode()
    assert (
        f'autoscaler_notifications_failed_total{{reason="channel"}} {slack_api.requests}.0'
        in exported
    )
