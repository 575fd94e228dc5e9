"""What the ops box can do to the daemon's files while it runs: a file people edit
replaced by a FIFO, a directory or something huge; a disk that fills. No such file may
stall a tick, take the daemon down or stop the fleet being scaled; the last good one
keeps running, and one alert names the file when the trouble starts (one when it ends).
Runs the real Daemon on a replayed trace and a simulated fleet."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autoscaler.decision_log
import autoscaler.state
from autoscaler.cli.main import app
from autoscaler.daemon import Daemon
from autoscaler.tick_result import TickResult
from tests.autoscaler.cli.test_main import demo_copy
from tests.autoscaler.test_daemon import ROOT, write_config
from tests.faults.test_operation import console_script
from tests.faults.test_uncaught import daemon_for

OVERRIDE = (
    "overrides:\n  image-gen:\n    nodes: 7\n    expires: 2099-01-01T00:00:00Z\n"
    "    reason: launch\n"
)
TICK_WITHIN_S = 3.0


def make_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def make_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def make_huge(path: Path) -> None:
    """16 MB of one YAML comment: read whole, PyYAML spends many seconds composing it."""
    with path.open("w") as handle:
        handle.write("# " + "x" * (16 << 20) + "\n")


ODD_FILES = {"fifo": make_fifo, "directory": make_directory, "huge": make_huge}
SAYS = {"fifo": "a FIFO", "directory": "a directory", "huge": "larger than"}


@contextlib.contextmanager
def writer_released(path: Path) -> Iterator[None]:
    """After the test, a reader still blocked on the FIFO (the bug) is let go."""
    try:
        yield
    finally:
        if path.is_fifo():
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def tick_within(daemon: Daemon, seconds: float) -> list[TickResult]:
    """The daemon's tick, failing the test (not hanging it) where it takes longer."""
    results: list[list[TickResult]] = []
    thread = threading.Thread(target=lambda: results.append(daemon.tick()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the tick took longer than {seconds} s"
    return results[0]


@pytest.mark.parametrize("damage", ODD_FILES.values(), ids=ODD_FILES.keys())
def test_an_odd_overrides_file_neither_stalls_the_tick_nor_loses_the_override(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = write_config(tmp_path)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(OVERRIDE)
    daemon, notifier = daemon_for(path)
    assert daemon.tick()[0].decision.desired == 7
    damage(overrides)
    with writer_released(overrides):
        for _ in range(3):
            (result,) = tick_within(daemon, TICK_WITHIN_S)
            assert result.decision is not None and result.decision.desired == 7
    (alert,) = [t for t in notifier.texts if "overrides file" in t]
    kind = next(k for k, f in ODD_FILES.items() if f is damage)
    assert str(overrides) in alert and SAYS[kind] in alert


@pytest.mark.parametrize("damage", ODD_FILES.values(), ids=ODD_FILES.keys())
def test_an_odd_config_file_on_reload_keeps_the_running_config(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = write_config(tmp_path)
    daemon, notifier = daemon_for(path)
    daemon.tick()
    running = daemon.runtime
    damage(path)
    with writer_released(path):
        daemon.request_reload()
        (result,) = tick_within(daemon, TICK_WITHIN_S)
    assert daemon.runtime is running and result.decision is not None
    (alert,) = [t for t in notifier.texts if "reload failed" in t]
    kind = next(k for k, f in ODD_FILES.items() if f is damage)
    assert str(path) in alert and SAYS[kind] in alert


class FullDisk:
    """While `full`, the state file, its journal and the decision log fail to be written
    as on a full disk (ENOSPC), where the real calls would touch the disk."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, decision_log: bool = True) -> None:
        self.full = False
        write, save_pool = autoscaler.state.write_atomically, autoscaler.state.StateStore.save_pool
        opened = autoscaler.decision_log._opened

        def failing(real: Callable[..., object]) -> Callable[..., object]:
            def call(*args: object, **kwargs: object) -> object:
                if self.full:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real(*args, **kwargs)

            return call

        monkeypatch.setattr(autoscaler.state, "write_atomically", failing(write))
        monkeypatch.setattr(autoscaler.state.StateStore, "save_pool", failing(save_pool))
        if decision_log:
            monkeypatch.setattr(autoscaler.decision_log, "_opened", failing(opened))


def test_a_full_disk_scales_the_fleet_keeps_the_state_file_whole_and_alerts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FullDisk(monkeypatch)
    path = write_config(tmp_path)
    daemon, notifier = daemon_for(path)
    daemon.tick()  # scales 4 -> 15, saved
    state_file, decisions = tmp_path / "state" / "state.json", tmp_path / "decisions.jsonl"
    saved = state_file.read_text()
    daemon.runtime.tickers[0].decision_log.close()  # as after logrotate: the next line opens it
    disk.full = True
    (tmp_path / "overrides.yaml").write_text(OVERRIDE)  # 7 nodes: a write while full
    with caplog.at_level(logging.DEBUG, logger="autoscaler"):
        results = [daemon.tick()[0] for _ in range(4)]
    assert results[0].acted and results[0].decision.desired == 7  # the decision stands
    assert daemon.runtime.tickers[0].backend.read().desired == 7
    assert state_file.read_text() == saved  # the last good state, whole
    assert not list(state_file.parent.glob("*.tmp"))  # no leftovers
    alerts = [t for t in notifier.texts if "cannot write" in t]
    assert len(alerts) == 2, alerts  # once per file per episode, not per tick
    assert any(str(state_file) in t and "No space left" in t for t in alerts)
    assert any(str(decisions) in t and "No space left" in t for t in alerts)
    said = [r for r in caplog.records if r.levelno >= logging.WARNING and "write" in r.message]
    assert len([r for r in said if "state file" in r.message]) == 1

    disk.full = False
    daemon.tick()
    assert json.loads(state_file.read_text())["saved_ns"] != json.loads(saved)["saved_ns"]
    assert daemon.states["image-gen"].memory.last_action_at is not None
    again = [t for t in notifier.texts if "written again" in t]
    assert len(again) == 2 and any(str(state_file) in t for t in again)
    assert len(decisions.read_text().splitlines()) == 2  # the first tick's and this one


def test_run_once_on_a_full_disk_exits_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-shot run (cron, a deploy check) says by its exit status that the state file
    could not be written, though the pools ticked and logged their decisions."""
    path = demo_copy(tmp_path)
    ran = CliRunner().invoke(app, ["run", "--config", str(path), "--once"])
    assert ran.exit_code == 0, ran.output  # the control: the same run with room on the disk
    (tmp_path / "state" / "state.json").unlink()
    FullDisk(monkeypatch, decision_log=False).full = True
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--once"])
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "state" / "state.json").exists()
    assert (tmp_path / "decisions.jsonl").read_text().strip()


def run_once_program(config: Path) -> str:
    """`autoscaler run --once --config CONFIG` as a `python -c` program (the console script)."""
    module, function = console_script().split(":")
    return (
        f"import sys; sys.argv = ['autoscaler', 'run', '--once', '--config', {str(config)!r}]; "
        f"from {module} import {function} as main; main()"
    )


def test_the_daemon_runs_with_stderr_closed(tmp_path: Path) -> None:
    """`autoscaler run --once 2>&-`: it exited 1 before its first tick, saying nothing."""
    simulation = {"start": "1995-07-05T16:00:00Z", "end": "1995-07-05T17:00:00Z"}
    path = write_config(tmp_path, simulation=simulation)
    code = run_once_program(path)
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" -c "$1" 2>&-', sys.executable, code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    assert "image-gen" in done.stdout  # the --once line
    (line,) = (tmp_path / "decisions.jsonl").read_text().splitlines()
    assert json.loads(line)["pool"] == "image-gen"


def test_stdout_a_closed_pipe_costs_the_tick_nothing(tmp_path: Path) -> None:
    """`autoscaler run --once | head -0`: printing the tick's line met a closed pipe (rich
    raises SystemExit), which left the tick before its state was saved: exit 1, no
    state file. Now the printing is let go and the tick ends as it would."""
    simulation = {"start": "1995-07-05T16:00:00Z", "end": "1995-07-05T17:00:00Z"}
    path = write_config(tmp_path, simulation=simulation)
    code = run_once_program(path)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert "output is closed" in done.stderr and "Traceback" not in done.stderr
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["pools"]["image-gen"]["last_decision"]["pool"] == "image-gen"


@pytest.mark.parametrize("damage", [make_fifo, make_directory], ids=["fifo", "directory"])
def test_a_decision_log_replaced_by_a_fifo_or_directory_holds_no_tick(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    """Opening a FIFO to append waited for a reader: the pool's tick was left behind at
    its deadline, and the pool held for ever behind it."""
    path = write_config(tmp_path)
    daemon, notifier = daemon_for(path)
    daemon.tick()
    decisions = tmp_path / "decisions.jsonl"
    damage(decisions)
    with writer_released(decisions):
        for _ in range(3):
            (result,) = tick_within(daemon, TICK_WITHIN_S)
            assert result.decision is not None and not result.errors
    (alert,) = [t for t in notifier.texts if "cannot write" in t]
    kind = next(k for k, f in ODD_FILES.items() if f is damage)
    assert str(decisions) in alert and SAYS[kind] in alert
