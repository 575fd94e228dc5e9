"""Process faults: SIGTERM mid-tick, SIGKILL and restart, a corrupt state file.

(SIGHUP with a broken config keeping the old one running is tested in
tests/autoscaler/test_daemon.py: test_bad_config_on_reload_keeps_the_old_one_and_alerts
and test_sigterm_finishes_the_tick_and_exits_zero_sighup_reload_survives_bad_file.)
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import signal
import time
import types
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.daemon import Daemon
from autoscaler.state import StateStore
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON, write_config
from tests.doubles.prometheus_server import PrometheusApiDouble, Reply, matrix_reply
from tests.support import RecordingNotifier, daemon_process, wait_for


def fresh_demand(rps: float, delay: float) -> Reply:
    """An hour of flat demand ending at the wall clock's current minute, answered late."""
    end = pd.Timestamp.now(tz="UTC").floor("min")
    stamps = [(end - pd.Timedelta(minutes=59 - i)).timestamp() for i in range(60)]
    reply = matrix_reply(({}, [(t, f"{rps:g}") for t in stamps]))
    return Reply(body=reply.body, delay=delay)


def test_sigterm_mid_tick_finishes_the_tick_then_exits_zero(tmp_path: Path) -> None:
    """The metrics query of the first tick takes 2.5 s; SIGTERM lands while it waits."""
    with PrometheusApiDouble([fresh_demand(10.0, delay=2.5)]) as prometheus:
        config = write_config(tmp_path, metrics={"kind": "prometheus", "url": prometheus.url})
        with daemon_process(config) as proc:
            assert wait_for(lambda: prometheus.requests, 30), "the daemon never queried"
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
            waited = time.monotonic() - signalled
    assert proc.returncode == 0, err
    assert waited >= 1.5, "it exited before the tick in flight finished"
    assert "finishing the tick in flight" in err
    (line,) = (tmp_path / "decisions.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["action"] == "scale_up" and record["acted"] and record["reasons"]
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["pools"]["image-gen"]["last_decision"]["desired"] == record["desired"]
    assert state["pools"]["image-gen"]["last_known_desired"] == record["desired"]


def test_sigkill_at_random_moments_leaves_a_whole_state_file(tmp_path: Path) -> None:
    """The demo's clock at high speed saves the state ~50 times a second; killed -9 at
    random moments, the file is always the last complete save (written atomically)."""
    simulation = {"start": "1995-07-05T12:00:00Z", "end": "1995-07-09T12:00:00Z", "speed": 3000}
    config = write_config(tmp_path, simulation=simulation)
    state = tmp_path / "state" / "state.json"
    chance = random.Random(6)
    kills = 0
    for _ in range(3):
        with daemon_process(config) as proc:
            assert wait_for(state.exists, 30), "the daemon never saved its state"
            time.sleep(chance.uniform(0.2, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
        saved = json.loads(state.read_text())  # valid JSON, never a half-written file
        assert saved["version"] == 1 and "image-gen" in saved["pools"]
        loaded = StateStore(state).load()
        assert "image-gen" in loaded and not state.with_name("state.json.corrupt").exists()
        assert not list(state.parent.glob("*.tmp*"))  # no temporary file left behind
    assert kills == 3


def run(daemon: Daemon, clock: SimulatedClock, count: int) -> list[tuple[int, tuple[str, ...]]]:
    decisions = []
    for _ in range(count):
        (result,) = daemon.tick()
        assert result.decision is not None
        decisions.append((result.decision.desired, remembered(result.decision.reasons)))
        clock.advance(timedelta(minutes=1))
    return decisions


def remembered(reasons: tuple[str, ...]) -> tuple[str, ...]:
    """The reasons a restart must reproduce: not the "little history" note, whose figure is
    the history this process has seen (an uninterrupted one has kept more than its query
    window; a restarted one starts from the window)."""
    return tuple(r for r in reasons if not r.startswith("little history"))


EVENING = NOON + timedelta(hours=5)  # demand falls: scale-downs happen in the hour after


def uninterrupted_hour(tmp_path: Path) -> tuple[list[tuple[int, tuple[str, ...]]], Path]:
    """An hour of decisions from EVENING by a daemon never killed, and an empty folder for
    the daemon that will be."""
    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    reference_dir.mkdir()
    crashed_dir.mkdir()
    clock = SimulatedClock(EVENING)
    reference = Daemon(write_config(reference_dir), clock=clock, notifier=RecordingNotifier())
    return run(reference, clock, 60), crashed_dir


def fresh_start(folder: Path) -> tuple[Path, SimulatedClock, Daemon]:
    """A daemon at EVENING with no saved state: each kill scenario starts over."""
    clock = SimulatedClock(EVENING)
    config = write_config(folder)
    for leftover in (folder / "state").glob("*"):
        leftover.unlink()
    return config, clock, Daemon(config, clock=clock, notifier=RecordingNotifier())


def test_restart_after_a_kill_decides_exactly_like_an_uninterrupted_daemon(tmp_path: Path):
    """The fleet outlives the daemon; the state saved after every tick is all it needs to
    carry on with the same stabilization window, cooldown and step limits."""
    expected, crashed_dir = uninterrupted_hour(tmp_path)
    assert any(later < earlier for (earlier, _), (later, _) in itertools.pairwise(expected)), (
        "the scenario must contain scale-downs to prove anything"
    )

    for kill_after in (7, 23, 41):
        config, clock, first = fresh_start(crashed_dir)
        before = run(first, clock, kill_after)
        fleet = first.runtime.tickers[0].backend  # the fleet lives on
        del first  # killed: nothing more is written
        second = Daemon(config, clock=clock, notifier=RecordingNotifier())
        second.runtime.tickers[0].backend = fleet
        after = run(second, clock, 60 - kill_after)
        assert before + after == expected, f"diverged after a kill at tick {kill_after}"


def test_kill_between_the_write_and_the_end_of_tick_save_changes_nothing(tmp_path: Path):
    """The worst moment: the fleet was scaled, the end-of-tick save never happened. The
    state saved just before the write (count marked unknown) is what the restarted daemon
    finds: it decides exactly like a daemon that was never killed, and does not take its
    own change for a manual one."""
    expected, crashed_dir = uninterrupted_hour(tmp_path)
    acting = [i for i, ((a, _), (b, _)) in enumerate(itertools.pairwise(expected), 1) if a != b]
    assert len(acting) >= 3, "the scenario must contain actions to prove anything"

    for kill_at in acting[:3]:
        config, clock, first = fresh_start(crashed_dir)
        before = run(first, clock, kill_at)
        saves: list[int] = []

        def never(states: object, saves: list[int] = saves) -> None:
            saves.append(1)

        first.runtime.state_store.save = never  # type: ignore[method-assign]
        (result,) = first.tick()  # acts, then "dies" before its end-of-tick save
        assert result.acted and len(saves) == 1  # only the pool's own save, before the write
        assert first.runtime.state_store.journal.read_text()  # that save, on disk
        assert result.decision is not None
        before.append((result.decision.desired, remembered(result.decision.reasons)))
        after, notifier = restarted(config, clock, first, 60 - kill_at - 1)
        assert before + after == expected, f"diverged after a kill at tick {kill_at}"
        assert not [t for t in notifier.texts if "outside the autoscaler" in t]


def test_a_kill_after_the_wall_clock_stepped_back_keeps_the_write_s_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, with the system clock stepped back an hour (an NTP step, a VM restored
    from a snapshot) between the last whole save and the acting tick: the pool's save
    before the write carried an earlier time than the state file, and the restart took it
    for a leftover of a save cut short and ignored it. The restarted daemon then took its
    own write for a change by hand: a false alert and a hold for the cooldown."""
    import autoscaler.state as state_module

    expected, crashed_dir = uninterrupted_hour(tmp_path)
    acting = [i for i, ((a, _), (b, _)) in enumerate(itertools.pairwise(expected), 1) if a != b]
    kill_at = acting[0]
    config, clock, first = fresh_start(crashed_dir)
    before = run(first, clock, kill_at)
    an_hour_back = types.SimpleNamespace(
        time=time.time, time_ns=lambda: time.time_ns() - 3_600 * 10**9
    )
    monkeypatch.setattr(state_module, "time", an_hour_back)  # the clock state.py reads
    first.runtime.state_store.save = lambda states: None  # type: ignore[method-assign]
    (result,) = first.tick()  # acts, then "dies" before its end-of-tick save
    assert result.acted and result.decision is not None
    before.append((result.decision.desired, remembered(result.decision.reasons)))
    after, notifier = restarted(config, clock, first, 60 - kill_at - 1)
    assert not [t for t in notifier.texts if "outside the autoscaler" in t]
    assert before + after == expected


def restarted(
    config: Path, clock: SimulatedClock, killed: Daemon, ticks: int
) -> tuple[list[tuple[int, tuple[str, ...]]], RecordingNotifier]:
    """A minute after `killed` died, a new daemon on its state and the same fleet, run for
    `ticks`: what it decided, and what it told."""
    clock.advance(timedelta(minutes=1))
    notifier = RecordingNotifier()
    second = Daemon(config, clock=clock, notifier=notifier)
    second.runtime.tickers[0].backend = killed.runtime.tickers[0].backend
    return run(second, clock, ticks), notifier


def real_state(tmp_path: Path) -> tuple[Path, Path, str]:
    config = write_config(tmp_path)
    clock = SimulatedClock(NOON)
    run(Daemon(config, clock=clock, notifier=RecordingNotifier()), clock, 3)
    state = tmp_path / "state" / "state.json"
    return config, state, state.read_text()


def with_count(text: str, count: object) -> str:
    data = json.loads(text)
    data["pools"]["image-gen"]["last_known_desired"] = count
    return json.dumps(data)


def naive_times(text: str) -> str:
    return text.replace("+00:00", "")


CORRUPTIONS = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "garbage_bytes": lambda text: "\x00\xff\x13 not json",
    "wrong_version": lambda text: text.replace('"version": 1', '"version": 99'),
    "a_list": lambda text: "[1, 2, 3]",
    "pools_a_list": lambda text: '{"version": 1, "pools": []}',
    "naive_times": naive_times,
    "count_a_string": lambda text: with_count(text, "13"),
    "negative_count": lambda text: with_count(text, -2),
}


@pytest.mark.parametrize("damage", sorted(CORRUPTIONS))
def test_corrupt_state_file_starts_safely_and_reports(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    config, state, text = real_state(tmp_path)
    damaged = CORRUPTIONS[damage](text)
    assert damaged != text
    state.write_text(damaged, encoding="latin-1")
    notifier = RecordingNotifier()
    clock = SimulatedClock(NOON + timedelta(minutes=3))
    with caplog.at_level(logging.ERROR):
        daemon = Daemon(config, clock=clock, notifier=notifier)
    assert daemon.states == {}
    (alert,) = [t for t in notifier.texts if "state file" in t]
    assert "set aside" in alert and "held, not shrunk" in alert
    assert "state file" in caplog.text
    assert state.with_name("state.json.corrupt").read_bytes() == damaged.encode("latin-1")
    results = run(daemon, clock, 5)  # ticks work; empty memory holds rather than shrinks
    assert all(desired >= 4 for desired, _ in results)
    assert json.loads(state.read_text())["pools"]["image-gen"]["last_decision"]


def test_reports_unreadable_state_in_the_status_command_without_setting_it_aside(
    tmp_path: Path,
) -> None:
    config, state, text = real_state(tmp_path)
    state.write_text(text[:40])
    result = CliRunner().invoke(
        app, ["status", "--config", str(config)], env={"COLUMNS": "300"}
    )  # status fits the terminal it is given
    # Said and failed (it read "ok", exit 0, a warning aside): every pool "never ticked".
    assert result.exit_code == 1 and "never ticked" in result.output
    assert "is unreadable" in " ".join(result.output.split())
    assert state.read_text() == text[:40]  # a read-only command leaves it for the daemon


def test_sigterm_mid_tick_of_run_once_finishes_the_tick_then_exits_zero(tmp_path: Path) -> None:
    """`run --once` from cron or a systemd timer is stopped the same way: SIGTERM while its
    tick waits on Prometheus (the double of its documented HTTP API answers in 2.5 s).
    Before, no handler was installed for `--once`: it died of the signal (exit 143) with
    the tick's decision neither logged nor saved."""
    with PrometheusApiDouble([fresh_demand(10.0, delay=2.5)]) as prometheus:
        config = write_config(tmp_path, metrics={"kind": "prometheus", "url": prometheus.url})
        with daemon_process(config, "--once") as proc:
            assert wait_for(lambda: prometheus.requests, 30), "it never queried"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "finishing the tick in flight" in err and "image-gen" in out
    (line,) = (tmp_path / "decisions.jsonl").read_text().splitlines()
    record = json.loads(line)
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["pools"]["image-gen"]["last_decision"]["desired"] == record["desired"]
