"""sd_notify: READY once the loop runs, watchdog pings only while ticks go on, STOPPING."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.daemon import Daemon
from autoscaler.watchdog import ServiceNotifier, ticks_alive
from tests.autoscaler.cli.test_main import demo_copy


class Sink:
    """A datagram socket standing in for systemd's, read as fast as systemd reads it."""

    def __init__(self, path: str) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(path)
        self.socket.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                self.received.append((time.monotonic(), self.socket.recv(4096).decode()))
            except TimeoutError:
                continue

    def messages(self, since: float = 0.0) -> list[str]:
        time.sleep(0.1)  # what is in flight lands
        return [text for at, text in list(self.received) if at >= since]


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    folder = tempfile.mkdtemp(prefix="sd", dir="/tmp")  # short: socket paths are limited
    path = os.path.join(folder, "notify")
    sink = Sink(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sink
    sink.closed.set()
    sink.reader.join(1)
    sink.socket.close()
    os.unlink(path)
    os.rmdir(folder)


def test_the_loop_is_alive_while_ticks_start_and_finish_in_time() -> None:
    assert ticks_alive(100.0, None, 90.0, interval_s=60, limit_s=30)
    assert ticks_alive(100.0, 80.0, 80.0, interval_s=60, limit_s=30)  # a tick 20 s in
    assert ticks_alive(100.0, 60.0, 60.0, interval_s=60, limit_s=30)  # 40 s: in a deadline
    assert not ticks_alive(100.0, 30.0, 30.0, interval_s=60, limit_s=30)  # 70 s in: hung
    assert not ticks_alive(200.0, None, 100.0, interval_s=60, limit_s=30)  # none started


def test_outside_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    service = ServiceNotifier()
    assert not service.enabled
    assert not service.beat(0.0, True)


def test_pings_come_at_a_third_of_the_period_and_never_when_stuck(
    notify_socket: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    service = ServiceNotifier()
    assert service.watchdog_s == 3.0
    service.ready("2 pools")
    assert [service.beat(t, True) for t in (0.0, 0.5, 1.0, 2.1)] == [True, False, True, True]
    assert not service.beat(9.0, alive=False)
    service.stopping()
    assert notify_socket.messages() == ["READY=1\nSTATUS=2 pools"] + ["WATCHDOG=1"] * 3 + [
        "STOPPING=1"
    ]


def test_a_watchdog_meant_for_another_process_is_ignored(
    notify_socket: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert ServiceNotifier().watchdog_s is None


def test_the_daemon_says_ready_pings_and_says_stopping(
    tmp_path: Path, notify_socket: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000")  # 60 ms: a ping every 20 ms
    path = demo_copy(tmp_path, start="1995-07-11T10:00:00Z", end="1995-07-11T12:00:00Z")
    assert Daemon(path).run_forever(install_signals=False) == 0
    messages = notify_socket.messages()
    assert messages[0].startswith("READY=1\n")
    assert messages[-1] == "STOPPING=1"
    assert "WATCHDOG=1" in messages


def test_a_hung_tick_stops_the_pings(
    tmp_path: Path, notify_socket: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd then kills and restarts the daemon: what WatchdogSec is for."""
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # 0.3 s
    daemon = Daemon(demo_copy(tmp_path))
    release = threading.Event()
    hung = threading.Event()

    def stuck_tick() -> list:
        hung.set()
        release.wait(10)
        return []

    monkeypatch.setattr(daemon, "tick", stuck_tick)
    loop = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    loop.start()
    try:
        assert hung.wait(5)
        assert "WATCHDOG=1" in notify_socket.messages()  # pings until the limit
        time.sleep(0.5)  # past the 0.3 s limit: the pings must have stopped by now
        since = time.monotonic()
        time.sleep(0.6)
        assert "WATCHDOG=1" not in notify_socket.messages(since)
    finally:
        daemon.stop()
        release.set()
        loop.join(10)


def test_a_long_tick_whose_pools_go_on_is_alive() -> None:
    assert ticks_alive(500.0, 480.0, 100.0, interval_s=60, limit_s=30)  # 400 s in, a pool 20 s
    assert not ticks_alive(500.0, 430.0, 100.0, interval_s=60, limit_s=30)  # none for 70 s


def test_a_pool_that_takes_its_deadline_is_alive_where_the_interval_passes_the_period() -> None:
    """An interval of 10 minutes under the unit's 5-minute watchdog: a pool's call that
    hangs is left behind at its deadline (the interval), so 6 minutes without a pool
    beginning is no hang; killing the daemon then restarted it into the same hung call.
    Past the deadline and a tenth more, it is."""
    assert ticks_alive(1000.0, 640.0, 600.0, interval_s=600, limit_s=300)  # 360 s
    assert not ticks_alive(1000.0, 330.0, 330.0, interval_s=600, limit_s=300)  # 670 s


def test_a_tick_of_many_slow_pools_keeps_the_pings(
    tmp_path: Path, notify_socket: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pool within its deadline, the whole tick far past the watchdog period (a slow
    Prometheus costs each pool its timeout): not hung, so systemd must not kill it."""
    monkeypatch.setenv("WATCHDOG_USEC", "600000")  # 0.6 s
    path = demo_copy(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["pools"] = [dict(config["pools"][0], name=f"pool-{n}") for n in range(12)]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    daemon = Daemon(path)
    in_tick = threading.Event()
    for ticker in daemon.runtime.tickers:
        ticker.tick = _slowed(ticker.tick, in_tick)  # type: ignore[method-assign]
    loop = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    loop.start()
    try:
        assert in_tick.wait(10)
        time.sleep(1.5)  # past the 0.6 s period, 4 of the 12 pools' 0.3 s each done
        since = time.monotonic()
        time.sleep(1.2)
        assert "WATCHDOG=1" in notify_socket.messages(since)
    finally:
        daemon.stop()
        loop.join(20)


def _slowed(tick: Callable[..., Any], began: threading.Event) -> Callable[..., Any]:
    def slow(*args: Any, **kwargs: Any) -> Any:
        began.set()
        time.sleep(0.3)
        return tick(*args, **kwargs)

    return slow
