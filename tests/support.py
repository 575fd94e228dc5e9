"""Helpers the tests share: readers and doubles the package itself has no use for."""

from __future__ import annotations

import builtins
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoscaler.loop_replay import Frame, LoopSettings, late_share, replay_lateness
from autoscaler.notify import Message
from predictors.bands import _late_fraction


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """Every record in a decision log; a missing file has none.

    A malformed line is an error naming the file and line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(
                f"{path}:{number}: expected a JSON object, got {type(record).__name__}"
            )
        records.append(record)
    return records


@dataclass
class RecordingNotifier:
    """Keeps every message it is given; `succeed=False` plays a notifier that is down."""

    succeed: bool = True
    messages: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> bool:
        self.messages.append(message)
        return self.succeed

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


class FakeClock:
    """Monotonic seconds that move only by the sleeps handed to it (a retry loop's, the
    Slack queue's): waits are asserted, never waited."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def posted_within(notifier: object, timeout_s: float = 10.0) -> bool:
    """Whether the Slack queue (autoscaler.notify_queue) has nothing left to post within
    `timeout_s` (real time): posted, or given up and said."""
    end = time.monotonic() + timeout_s
    while getattr(notifier, "pending", 0):
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def slack_posted(notifier: object) -> None:
    """What the daemon's Slack queue holds, posted (autoscaler.notify_queue: a tick only
    queues), for a test that reads the Slack double right after a tick."""
    assert posted_within(notifier), "Slack's queue was not posted within 10 s"


def late_share_above(
    capacity: np.ndarray, demand: np.ndarray, requests: np.ndarray, latency_slack: float
) -> np.ndarray:
    """Per column, the share of `requests` that would be late with demand served at
    `capacity` for one step: demand above capacity builds a queue from the step's start,
    and a request is late once that queue holds more than `latency_slack` of a step's
    capacity (the fluid queue of autoscaler/backtest/queue.py, without carry-over)."""
    late = requests * _late_fraction(capacity, demand, latency_slack)
    total = requests.sum(axis=0)
    return np.where(total > 0, late.sum(axis=0) / np.maximum(total, 1e-300), 0.0)


def whole_late(frame: Frame, margin: float, settings: LoopSettings) -> float:
    """The late share of the whole frame's replay at this margin (every day pooled)."""
    return late_share(*replay_lateness(frame, margin, settings))


def daily_wave(seconds: np.ndarray) -> np.ndarray:
    """Demand (req/s) at Unix times: a daily wave with an hourly ripple, the same samples
    however often and over whatever range it is asked."""
    return 20 + 10 * np.sin(2 * np.pi * seconds / 86_400) + 2 * np.sin(seconds / 1_111.0)


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> bool:
    """Whether `condition()` came true within `timeout` seconds (polled every 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def daemon_process(
    config: Path, *options: str, stdout: int | None = subprocess.PIPE
) -> Iterator[subprocess.Popen[str]]:
    """`autoscaler run [OPTIONS] --config CONFIG` as a child process (stderr piped, stdout
    as asked), killed if it still runs when the block ends: a failed assertion must not
    leave a daemon behind."""
    command = [sys.executable, "-m", "autoscaler.cli.main", "run", *options]
    proc = subprocess.Popen(
        [*command, "--config", str(config)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def full_disk_under(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Every file opened to write in `folder` (by os.open, as tempfile does, or by open(),
    as pathlib does) is made there, an inode taken, but its bytes go to /dev/full: each
    write that reaches the disk fails with ENOSPC, as on a disk that filled, and a file
    made stays unless the writer removes it."""
    folder = folder.resolve()
    real_os_open, real_io_open = os.open, io.open

    def inside(path: object) -> bool:
        if not isinstance(path, str | bytes | os.PathLike):
            return False
        return Path(os.fsdecode(path)).resolve().parent == folder

    def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        fd = real_os_open(path, flags, mode, dir_fd=dir_fd)
        if dir_fd is None and flags & (os.O_WRONLY | os.O_RDWR) and inside(path):
            full = real_os_open("/dev/full", os.O_WRONLY)
            os.dup2(full, fd)
            os.close(full)
        return fd

    def io_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if set(mode) & set("wax+") and inside(file):
            kwargs["opener"] = os_open
        return real_io_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", io_open)
    monkeypatch.setattr(builtins, "open", io_open)
