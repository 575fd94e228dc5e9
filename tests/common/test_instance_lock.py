"""One daemon per state folder: flock(2) on a file there, dropped by the kernel however
the holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from common.instance_lock import InstanceLockHeld, hold_instance_lock

HOLDER = """
import sys, time
from pathlib import Path
from common.instance_lock import hold_instance_lock
held = hold_instance_lock(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "state" / "autoscaler.lock"  # the folder is made
    first = hold_instance_lock(path)
    with pytest.raises(InstanceLockHeld, match=f"held by process {os.getpid()}"):
        hold_instance_lock(path)
    first.close()
    hold_instance_lock(path).close()


def test_a_killed_holder_leaves_nothing_to_clean_up(tmp_path: Path) -> None:
    """SIGKILL runs no clean-up: the kernel drops the lock, and the stale pid in the file
    does not block the next daemon."""
    path = tmp_path / "autoscaler.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(InstanceLockHeld, match=f"held by process {holder.pid}"):
            hold_instance_lock(path)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10
        while True:
            try:
                hold_instance_lock(path).close()
                break
            except InstanceLockHeld:
                assert time.monotonic() < deadline, "the lock outlived its killed holder"
                time.sleep(0.05)
        assert path.read_text().strip() == str(os.getpid())
    finally:
        holder.kill()


def test_a_folder_the_lock_cannot_be_made_in_is_an_os_error(tmp_path: Path) -> None:
    """A state "folder" that is a file (as a read-only one is, to a daemon not root)."""
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("")
    with pytest.raises(OSError):
        hold_instance_lock(not_a_folder / "autoscaler.lock")


def test_a_start_that_may_wait_takes_the_lock_once_the_holder_lets_go(tmp_path: Path) -> None:
    """The daemon as systemd starts it waits for a hand-run `--once` to finish rather than
    exit at once: five quick refusals in a row left the service failed by the unit's
    start limit. It is told who holds the folder once, as the wait begins."""
    path = tmp_path / "autoscaler.lock"
    first = hold_instance_lock(path)
    letting_go = threading.Timer(0.3, first.close)
    letting_go.start()
    told: list[str] = []
    second = hold_instance_lock(path, wait_s=30.0, waiting=told.append)
    try:
        assert told == [f"{path} is held by process {os.getpid()}"]
        assert path.read_text(encoding="utf-8").strip() == str(os.getpid())
    finally:
        second.close()
        letting_go.join()


def test_a_start_that_may_wait_is_refused_when_the_holder_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "autoscaler.lock"
    first = hold_instance_lock(path)
    try:
        with pytest.raises(InstanceLockHeld, match="held by process"):
            hold_instance_lock(path, wait_s=0.2)
    finally:
        first.close()
