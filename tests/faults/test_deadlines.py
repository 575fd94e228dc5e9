"""Class 1 (issue 17): every call has a total deadline, and each pool's tick one of its own.

`requests` (and urllib, urllib3) time each read, not the answer: tests.doubles.drip sends
its status and headers at once, then a real answer's body a byte at a time, so every read
is in time and the whole answer takes many seconds. Prometheus, Nomad and Slack clients
are the real ones; the daemon runs as a process for SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.metrics import MetricsError
from autoscaler.metrics_prometheus import PrometheusSource
from autoscaler.notify import Message
from autoscaler.notify_slack import SlackNotifier
from backends.base import BackendError
from backends.nomad_job import NomadJobBackend, NomadJobGroup
from tests.autoscaler.test_daemon import NOON, write_config
from tests.doubles.drip import DripDouble
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.faults.test_metrics_faults import STEADY_NODES, PrometheusHarness, good
from tests.faults.test_uncaught import daemon_for
from tests.support import daemon_process, wait_for

DRIP_S = 0.04
MATRIX = json.dumps(
    {"status": "success", "data": {"resultType": "matrix", "result": []}, "pad": "x" * 150}
).encode()  # about 8 s at DRIP_S a byte


def elapsed(call) -> tuple[float, object]:
    started = time.monotonic()
    try:
        outcome: object = call()
    except Exception as exc:
        outcome = exc
    return time.monotonic() - started, outcome


def test_a_prometheus_body_sent_a_byte_at_a_time_times_out_in_total() -> None:
    with DripDouble(MATRIX, DRIP_S) as drip:
        config = PrometheusMetrics(url=drip.url, timeout=timedelta(seconds=0.5))
        with PrometheusSource(config) as source:
            end = NOON
            seconds, outcome = elapsed(
                lambda: source.demand("q", end - timedelta(hours=1), end, timedelta(minutes=1))
            )
    assert isinstance(outcome, MetricsError) and outcome.kind == "timeout", outcome
    assert "whole answer" in str(outcome)
    assert seconds < 3.0, f"a 0.5 s timeout took {seconds:.1f} s"


LONG_BODY = json.dumps(
    {"status": "success", "data": {"resultType": "matrix", "result": []}, "pad": "x" * 20_000}
).encode()  # about 17 minutes at 0.05 s a byte


def no_more_than(before: tuple[int, int]) -> bool:
    """No more threads and open files than `before` (a thread another test left may end
    meanwhile: fewer is no leak)."""
    return all(now <= then for now, then in zip(threads_and_files(), before, strict=True))


def threads_and_files() -> tuple[int, int]:
    """This process's threads and open files (the drip double's side of a socket too)."""
    return threading.active_count(), len(os.listdir("/proc/self/fd"))


def test_a_prometheus_query_left_behind_keeps_no_thread_or_socket() -> None:
    """Against the drip double serving a real (empty) matrix answer of 20 KB a byte every
    0.05 s, at a 0.3 s timeout: each query ends at its deadline, and the call it leaves
    behind must end too. Before, that call read on, a whole 64 KiB piece at a time, until
    the last byte: 5 queries kept 5 threads and 5 sockets (twice that with the double's
    side) for ~17 minutes. Now its read gives up at the deadline and closes the socket."""
    with DripDouble(LONG_BODY, 0.05) as drip:
        before = threads_and_files()
        config = PrometheusMetrics(url=drip.url, timeout=timedelta(seconds=0.3))
        with PrometheusSource(config) as source:
            for _ in range(5):
                with pytest.raises(MetricsError, match="no whole answer"):
                    source.demand("q", NOON - timedelta(hours=1), NOON, timedelta(minutes=1))
        assert wait_for(lambda: no_more_than(before), timeout=10), (  # others may end meanwhile
            threads_and_files(),
            before,
        )


def test_a_dripping_prometheus_holds_the_fleet_and_the_tick_ends_in_time(tmp_path: Path) -> None:
    with DripDouble(MATRIX, DRIP_S) as drip:
        from tests.doubles.prometheus_server import PrometheusApiDouble, matrix_reply

        with PrometheusApiDouble([matrix_reply()]) as prom:
            h = PrometheusHarness(tmp_path, prom.url)
            prom.replies = [good(h.clock.now(), 10.0)]
            assert h.tick().acted
        h.ticker.metrics = PrometheusSource(
            PrometheusMetrics(url=drip.url, timeout=timedelta(seconds=0.5))
        )
        for _ in range(2):
            seconds, result = elapsed(h.tick)
            assert seconds < 3.0
            assert result.errors["metrics"].startswith("timeout:")
            assert result.decision is not None and result.decision.desired == STEADY_NODES
    assert sum("metrics failing" in t for t in h.notifier.texts) == 1


def test_a_dripping_nomad_answer_is_a_backend_error_in_total_time() -> None:
    scale = {"JobID": "ocr", "TaskGroups": {"gpu": {"Desired": 3, "Running": 3}}}
    body = json.dumps({**scale, "pad": "x" * 150}).encode()
    with DripDouble(body, DRIP_S) as drip:
        settings = NomadJobBackend(
            kind="nomad_job", job="ocr", group="gpu", address=drip.url, timeout="0.5s", retries=1
        )
        group = NomadJobGroup(settings, env={}, sleep=lambda s: None)
        seconds, outcome = elapsed(group.read)
    assert isinstance(outcome, BackendError), outcome
    assert "whole answer" in str(outcome) and "2 attempts" in str(outcome)
    assert seconds < 4.0, f"two attempts at 0.5 s took {seconds:.1f} s"


def test_a_nomad_read_left_behind_keeps_no_thread_or_socket() -> None:
    """Against the drip double serving a real JobScaleStatus padded to 20 KB, a byte every
    0.05 s, at a 0.3 s timeout (python-nomad over requests): each read fails at its
    deadline, and the call it leaves behind must end too. Before, requests read on, 10 KiB
    at a time, until the last byte: 5 reads kept 5 threads and 5 sockets for ~17 minutes."""
    scale = {"JobID": "ocr", "TaskGroups": {"gpu": {"Desired": 3, "Running": 3}}}
    with DripDouble(json.dumps({**scale, "pad": "x" * 20_000}).encode(), 0.05) as drip:
        before = threads_and_files()
        settings = NomadJobBackend(
            kind="nomad_job", job="ocr", group="gpu", address=drip.url, timeout="0.3s", retries=0
        )
        group = NomadJobGroup(settings, env={}, sleep=lambda s: None)
        for _ in range(5):
            with pytest.raises(BackendError, match="whole answer"):
                group.read()
        assert wait_for(lambda: no_more_than(before), timeout=10), (  # others may end meanwhile
            threads_and_files(),
            before,
        )


def test_a_dripping_slack_answer_drops_the_message_in_total_time() -> None:
    with DripDouble(json.dumps({"ok": True, "pad": "x" * 150}).encode(), DRIP_S) as drip:
        slack = SlackNotifier("#gpu", "xoxb-drip-test-token", f"{drip.url}/api/", timeout=0.5)
        seconds, delivered = elapsed(lambda: slack.send(Message("hello")))
    assert delivered is False and seconds < 3.0, seconds


class HungFleet:
    """A fleet client stuck inside a call no timeout bounds (a library waiting on a lock)."""

    def __init__(self, inner, hang_s: float) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.hang_s, self.writes = inner, hang_s, 0

    def read(self):  # type: ignore[no-untyped-def]
        time.sleep(self.hang_s)
        return self.inner.read()

    def scale(self, desired: int, reason: str):  # type: ignore[no-untyped-def]
        self.writes += 1
        return self.inner.scale(desired, reason)

    def check(self) -> None:
        pass


def test_one_stuck_pool_does_not_starve_the_others_and_never_writes_late(tmp_path: Path) -> None:
    path = write_config(tmp_path, interval="1s")
    config = yaml.safe_load(path.read_text())
    config["pools"].append({**config["pools"][0], "name": "other"})
    path.write_text(yaml.safe_dump(config))
    daemon, notifier = daemon_for(path)
    stuck = daemon.runtime.tickers[0]
    stuck.backend = hung = HungFleet(stuck.backend, hang_s=2.5)
    seconds, results = elapsed(daemon.tick)
    assert seconds < 2.0, f"the tick waited {seconds:.1f} s for the stuck pool"
    first, other = results
    assert "deadline" in first.errors["tick"] and first.decision is None
    assert other.decision is not None and not other.errors
    skipped = daemon.tick()[0]  # still stuck: skipped, not piled up
    assert "still running" in skipped.errors["tick"]
    time.sleep(2.0)  # the stuck read returns; the tick left behind must not write
    assert hung.writes == 0
    assert sum("image-gen" in t and "tick failing" in t for t in notifier.texts) == 1


class SlowBeforeItsWrite:
    """A real Nomad job group whose scale is slow before its write (scale() reads the
    count again first, with retries: minutes on a slow Nomad)."""

    def __init__(self, inner: NomadJobGroup, hang_s: float) -> None:
        self.inner, self.hang_s = inner, hang_s

    def read(self):  # type: ignore[no-untyped-def]
        return self.inner.read()

    def scale(self, desired: int, reason: str) -> str | None:
        time.sleep(self.hang_s)
        return self.inner.scale(desired, reason)

    def check(self) -> None:
        pass


@pytest.mark.parametrize("hang_s", [0.2, 2.5])
def test_a_tick_left_behind_inside_its_scale_does_not_write(
    tmp_path: Path, nomad_api: NomadApiDouble, hang_s: float
) -> None:
    """The daemon stops waiting for a tick at its deadline and tells it not to write; the
    tick checked that once, before its scale began, so a scale slow in its own read (here
    held 2.5 s, interval 1 s) still wrote, late. Every backend call made by the scale now
    checks it (the real python-nomad client against the Nomad double); in time, it writes."""
    nomad_api.add_job("ocr", {"gpu": 4})
    daemon, _ = daemon_for(write_config(tmp_path, interval="1s"))
    settings = NomadJobBackend(kind="nomad_job", job="ocr", group="gpu", address=nomad_api.url)
    group = NomadJobGroup(settings, env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN})
    daemon.runtime.tickers[0].backend = SlowBeforeItsWrite(group, hang_s)
    (result,) = daemon.tick()
    writes = nomad_api.requests_to("POST", "/v1/job/ocr/scale")
    if hang_s < 1:  # in time: the decision (a change from 4) is written
        assert result.decision is not None and len(writes) == 1, result
        assert group.read().desired == result.decision.desired != 4
        return
    assert "deadline" in result.errors["tick"], result.errors
    time.sleep(3.0)  # the scale left behind returns meanwhile, and must not write
    assert nomad_api.requests_to("POST", "/v1/job/ocr/scale") == []
    assert group.read().desired == 4


def test_sigterm_is_prompt_while_prometheus_drips(tmp_path: Path) -> None:
    with DripDouble(MATRIX, 0.2) as drip:  # a whole answer would take 40 s
        path = write_config(tmp_path)
        config = yaml.safe_load(path.read_text())
        config["metrics"] = {"kind": "prometheus", "url": drip.url, "timeout": "1s"}
        config["pools"] += [{**config["pools"][0], "name": f"pool-{i}"} for i in range(2)]
        path.write_text(yaml.safe_dump(config))
        with daemon_process(path, stdout=None) as proc:
            deadline = time.monotonic() + 30
            while not drip.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert drip.requests, "the daemon never queried Prometheus"
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            _, err = proc.communicate(timeout=60)
            took = time.monotonic() - started
    assert proc.returncode == 0, err
    assert took < 8.0, f"SIGTERM took {took:.1f} s"


@pytest.mark.parametrize("hang_s", [0.2])
def test_guard_a_tick_in_time_is_not_cut(tmp_path: Path, hang_s: float) -> None:
    """Guard: a pool slower than usual but within the interval decides and acts as before."""
    path = write_config(tmp_path, interval="2s")
    daemon, _ = daemon_for(path)
    ticker = daemon.runtime.tickers[0]
    ticker.backend = hung = HungFleet(ticker.backend, hang_s=hang_s)
    (result,) = daemon.tick()
    assert not result.errors and result.decision is not None
    assert hung.writes == (1 if result.decision.desired != result.decision.current else 0)
