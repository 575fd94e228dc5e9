"""Self-metrics and /healthz, scraped over HTTP from the real prometheus-client app."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscaler.metrics import MetricsError
from autoscaler.sizing import Sizing
from autoscaler.telemetry import Telemetry
from autoscaler.tick_result import TickResult
from predictors import Forecast
from tests.autoscaler.cli.test_main import ROOT, demo_copy
from tests.autoscaler.test_tick import Harness


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_show_what_the_daemon_sees_decides_and_fails_at(tmp_path: Path) -> None:
    telemetry = Telemetry()
    server = telemetry.serve("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        h = Harness(tmp_path, rps=10.0)
        for _ in range(2):
            result = h.tick()
            telemetry.record(result)
            telemetry.tick_finished([result], 0.01)
        h.metrics.failure = MetricsError("stale", "q", "old")
        result = h.tick()
        telemetry.record(result)
        telemetry.tick_finished([result], 0.01)
        status, body = get(url + "/metrics")
    finally:
        server.shutdown()
    assert status == 200
    assert 'autoscaler_pool_desired_nodes{pool="ocr"} 13.0' in body
    assert 'autoscaler_pool_demand_requests_per_second{pool="ocr"} 10.0' in body
    assert 'autoscaler_errors_total{kind="metrics",pool="ocr"} 1.0' in body
    assert 'autoscaler_decisions_total{action="scale_up",pool="ocr"} 1.0' in body
    assert 'autoscaler_decision_rules_total{pool="ocr",rule="missing_data"} 1.0' in body
    assert 'autoscaler_pool_forecast_abs_error_requests_per_second{pool="ocr"}' in body
    assert "autoscaler_tick_duration_seconds_count 3.0" in body
    assert "autoscaler_last_successful_tick_timestamp_seconds" in body
    labels = f'python="{platform.python_version()}",version="{version("gpu-autoscaler")}"'
    assert f"autoscaler_build_info{{{labels}}} 1.0" in body
    assert "autoscaler_leader" not in body  # no leader election configured: nothing to say
    assert "_rps" not in body  # base units: requests_per_second


def test_the_leader_gauge_is_exported_only_with_leader_election() -> None:
    from prometheus_client import generate_latest

    with_lock = Telemetry(leader_election=True)
    with_lock.set_leader(True)
    assert "autoscaler_leader 1.0" in generate_latest(with_lock.registry).decode()
    without = Telemetry()
    without.set_leader(False)
    assert "autoscaler_leader" not in generate_latest(without.registry).decode()


@pytest.mark.parametrize(("zone", "unit"), [("UTC", "ns"), ("Europe/Berlin", "s")])
def test_the_forecast_error_is_the_previous_forecasts_step_nearest_now(
    zone: str, unit: str
) -> None:
    """|demand now - the previous tick's forecast for now|: its step nearest the tick's
    time, whatever the forecast's zone and unit; not scored where it did not cover now."""
    from prometheus_client import generate_latest

    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    times = pd.date_range(start, periods=30, freq="1min", tz="UTC").tz_convert(zone)
    point = np.arange(30, dtype=float)
    forecast = Forecast(times.as_unit(unit), point, point + 1.0, "seasonal")
    telemetry = Telemetry()

    def record(at: datetime, demand: float) -> str:
        telemetry.record(TickResult("p", at, None, Sizing(demand, forecast), None))
        return generate_latest(telemetry.registry).decode()

    metric = 'autoscaler_pool_forecast_abs_error_requests_per_second{pool="p"}'
    record(start - timedelta(minutes=1), 0.0)  # keeps the forecast; none before it
    assert f"{metric} 1.5" in record(start + timedelta(minutes=7, seconds=10), 8.5)  # step 7
    assert f"{metric} 1.5" in record(start + timedelta(minutes=40), 100.0)  # not covered


def test_healthz_fails_when_no_tick_has_succeeded_for_too_long(tmp_path: Path) -> None:
    clock = FakeTime()
    telemetry = Telemetry(unhealthy_after=timedelta(minutes=5), clock=clock)
    server = telemetry.serve("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    try:
        assert get(url)[0] == 200  # grace period at start
        h = Harness(tmp_path, rps=10.0)
        result = h.tick()
        telemetry.tick_finished([result], 0.01)
        clock.now += 240
        assert get(url)[0] == 200
        h.metrics.failure = MetricsError("unreachable", "q", "down")
        for _ in range(3):  # ticks keep running but none succeeds
            result = h.tick()
            telemetry.tick_finished([result], 0.01)
            clock.now += 60
        status, body = get(url)
        assert status == 503 and "last successful tick" in body
    finally:
        server.shutdown()


def test_logs_are_json_lines_off_a_terminal_with_every_decision_at_info(tmp_path: Path) -> None:
    path = demo_copy(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoscaler.cli.main",
            "run",
            "--config",
            str(path),
            "--once",
            "--log-level",
            "INFO",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    decisions = [r for r in records if "decision" in r]
    assert len(decisions) == 1
    assert decisions[0]["levelname"] == "INFO"
    assert decisions[0]["decision"]["pool"] == "image-gen"
    assert decisions[0]["decision"]["reasons"]
    for record in records:  # one time field; fields, not a dict's repr, in the message
        assert "timestamp" in record and "asctime" not in record
        assert "{'" not in record["message"] and '{"' not in record["message"]


def test_status_shows_every_pool_after_a_tick(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autoscaler.cli.main import app

    runner = CliRunner()
    path = demo_copy(tmp_path)
    before = runner.invoke(
        app, ["status", "--config", str(path)], env={"COLUMNS": "300"}
    )  # status fits the terminal it is given
    assert before.exit_code == 0 and "never ticked" in before.output
    assert runner.invoke(app, ["run", "--config", str(path), "--once"]).exit_code == 0
    after = runner.invoke(
        app, ["status", "--config", str(path)], env={"COLUMNS": "300"}
    )  # status fits the terminal it is given
    assert after.exit_code == 0, after.output
    assert "image-gen" in after.output and "scale_up" in after.output
    assert "business-hours" in after.output  # the next schedule change


def test_a_loop_calibrated_pool_exports_its_margin_budget_and_policy() -> None:
    """The error-budget estimate and the margin of `margin: loop` (autoscaler.calibration)
    reach /metrics; a pool with the plain band exports none of them."""
    from datetime import UTC, datetime

    import numpy as np
    import pandas as pd
    from prometheus_client import generate_latest

    from autoscaler.sizing import Sizing
    from autoscaler.tick_result import TickResult
    from predictors import Calibration, Forecast

    times = pd.date_range("2026-12-04 10:01", periods=3, freq="1min", tz="UTC")
    at = datetime(2026, 12, 4, 10, tzinfo=UTC)
    telemetry = Telemetry()
    for pool, calibration in (
        ("ocr", Calibration(0.85, "reactive", 0.01, budget_spent=0.42)),
        ("llm", None),
    ):
        forecast = Forecast(times, np.ones(3), np.ones(3), "seasonal", calibration=calibration)
        telemetry.record(TickResult(pool, at, None, Sizing(5.0, forecast, 6), None))
    body = generate_latest(telemetry.registry).decode()
    assert 'autoscaler_pool_loop_margin_ratio{pool="ocr"} 0.85' in body
    assert 'autoscaler_pool_error_budget_spent_ratio{pool="ocr"} 0.42' in body
    assert 'autoscaler_pool_policy{policy="reactive",pool="ocr"} 1.0' in body
    assert 'autoscaler_pool_policy{policy="forecast",pool="ocr"} 0.0' in body
    assert 'pool="llm"' in body and 'autoscaler_pool_loop_margin_ratio{pool="llm"}' not in body


def test_idle_connections_hold_a_bounded_number_of_threads_and_print_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients that open connections and never finish a request (a slow-loris) took a
    thread and a descriptor each, without bound, and each timeout printed a traceback."""
    import socket
    import threading
    import time

    from autoscaler import telemetry as module

    monkeypatch.setattr(module._QuietHandler, "timeout", 6.0)
    server = Telemetry().serve("127.0.0.1", 0)
    port = server.server_address[1]
    before, bound = threading.active_count(), 16  # MAX_CONNECTIONS
    idle = []
    try:
        for _ in range(bound + 12):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(b"GET /metrics HTTP/1.1\r\n")  # the headers never end
            idle.append(client)
        most, until = 0, time.monotonic() + 5  # the server accepts them a few at a time
        while time.monotonic() < until:
            most = max(most, threading.active_count() - before)
            time.sleep(0.1)
        assert most <= bound
        time.sleep(2)  # past the handler's timeout: their threads are done
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        for client in idle:
            client.close()
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capsys.readouterr().err
    assert bound == module.MAX_CONNECTIONS


def test_healthz_of_a_standby_is_ok_and_says_standby(tmp_path: Path) -> None:
    """A standby ticks no pool: its /healthz must not read as a daemon that scales."""
    clock = FakeTime()
    telemetry = Telemetry(clock=clock, leader_election=True)
    server = telemetry.serve("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    try:
        telemetry.standby_tick()
        clock.now += 30
        status, body = get(url)
        assert status == 200 and "standby" in body and "successful tick" not in body
        result = Harness(tmp_path, rps=10.0).tick()  # it took the lead and ticked
        telemetry.tick_finished([result], 0.01)
        status, body = get(url)
        assert status == 200 and "last successful tick" in body and "standby" not in body
    finally:
        server.shutdown()


def test_healthz_counts_in_elapsed_time_whatever_the_wall_clock_does(tmp_path: Path) -> None:
    """/healthz turns 503 when no tick has succeeded for unhealthy_after. It counted in
    wall-clock time: stepped back an hour (an NTP step, a VM restored from a snapshot), a
    daemon whose ticks then failed read healthy for that hour too; stepped forward a day,
    one that had just ticked read unhealthy until its next tick. The age is now counted in
    elapsed (monotonic) time; the exported timestamp stays the wall clock's."""
    elapsed, wall = FakeTime(), FakeTime()
    telemetry = Telemetry(unhealthy_after=timedelta(minutes=5), clock=elapsed, wall=wall)
    server = telemetry.serve("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    h = Harness(tmp_path, rps=10.0)
    try:
        telemetry.tick_finished([h.tick()], 0.01)
        wall.now += 86_400  # stepped forward a day, a moment after a good tick
        assert get(url)[0] == 200
        wall.now -= 86_400 + 3_600  # then back an hour before it
        h.metrics.failure = MetricsError("unreachable", "q", "down")
        for _ in range(6):  # ticks keep running but none succeeds, for 6 minutes
            telemetry.tick_finished([h.tick()], 0.01)
            elapsed.now += 60
            wall.now += 60
        status, body = get(url)
        assert status == 503 and "last successful tick 360 s ago" in body
    finally:
        server.shutdown()
    exported = telemetry.last_success._value.get()
    assert exported == 1_000_000.0  # when it succeeded, by the wall clock
