"""Class 3 (issue 17): exceptions nobody caught. No input file can make a tick fail or
take the daemon down; a bad file found while running keeps the last good one, alerts
once and says where. Runs the real Daemon on a replayed trace and a simulated fleet."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.daemon import Daemon
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON, write_config
from tests.support import RecordingNotifier

DEEP = "a: " + "[" * 2_000 + "]" * 2_000 + "\n"
DEEP_MAPPING = "".join("  " * i + f"k{i}:\n" for i in range(1_500)) + "  " * 1_500 + "x: 1\n"


def daemon_for(path: Path) -> tuple[Daemon, RecordingNotifier]:
    notifier = RecordingNotifier()
    return Daemon(path, clock=SimulatedClock(NOON), notifier=notifier), notifier


@pytest.mark.parametrize("text", [DEEP, DEEP_MAPPING], ids=["lists", "mappings"])
def test_a_deeply_nested_config_is_a_located_error_in_validate_and_run(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    for args in (["validate", str(path)], ["run", "--once", "--config", str(path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert str(path) in result.output and "nested" in result.output


@pytest.mark.parametrize("text", [DEEP, DEEP_MAPPING], ids=["lists", "mappings"])
def test_a_deeply_nested_overrides_file_while_running_keeps_the_last_good_one(
    tmp_path: Path, text: str
) -> None:
    path = write_config(tmp_path)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        "overrides:\n  image-gen:\n    nodes: 7\n    expires: 2099-01-01T00:00:00Z\n"
        "    reason: launch\n"
    )
    daemon, notifier = daemon_for(path)
    assert daemon.tick()[0].decision.desired == 7
    overrides.write_text(text)
    for _ in range(4):
        (result,) = daemon.tick()
        assert result.decision is not None and result.decision.desired == 7
    alerts = [t for t in notifier.texts if "overrides file" in t]
    assert len(alerts) == 1 and str(overrides) in alerts[0] and "nested" in alerts[0]


@pytest.mark.parametrize(
    "change",
    [
        lambda text: text + DEEP.replace("a: ", "extra: "),
        lambda text: text.replace("max_nodes: 40", "max_nodes: 40\n  predictor: "
                                  "{kind: seasonal, params: {timezone: Mars/Olympus}}"),
    ],
    ids=["deeply nested", "unknown time zone"],
)  # fmt: skip
def test_a_bad_config_on_reload_keeps_the_old_one_and_says_where(tmp_path: Path, change) -> None:
    path = write_config(tmp_path)
    daemon, notifier = daemon_for(path)
    daemon.tick()
    running = daemon.runtime
    path.write_text(change(path.read_text()))
    daemon.request_reload()
    (result,) = daemon.tick()
    assert daemon.runtime is running and result.decision is not None
    (alert,) = [t for t in notifier.texts if "reload failed" in t]
    assert str(path) in alert


def test_an_unknown_time_zone_is_refused_at_start_not_a_traceback(tmp_path: Path) -> None:
    """ZoneInfoNotFoundError is a KeyError: it slipped past every `except ValueError`."""
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["pools"][0]["predictor"] = {"kind": "seasonal", "params": {"timezone": "Mars/Olympus"}}
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["run", "--once", "--config", str(path)])
    assert result.exit_code == 2 and "Mars/Olympus" in result.output, result.output
    assert not isinstance(result.exception, KeyError)


def test_a_number_that_overflows_in_one_pool_fails_neither_the_tick_nor_the_other_pool(
    tmp_path: Path,
) -> None:
    """A per-node capacity of 1e-320 req/s is positive, but demand over it is infinite
    (OverflowError in the node count). That pool holds with a reason; the other acts."""
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    tiny = {**config["pools"][0], "name": "tiny", "capacity": {"per_node_rps": 1e-320}}
    config["pools"].insert(0, tiny)
    path.write_text(yaml.safe_dump(config))
    daemon, notifier = daemon_for(path)
    for _ in range(3):
        tiny_result, other = daemon.tick()
        assert tiny_result.errors and tiny_result.pool == "tiny"
        assert tiny_result.decision is None or tiny_result.decision.desired >= 4
        assert other.decision is not None and not other.errors
    assert sum("tiny" in t and "failing" in t for t in notifier.texts) == 1


def test_a_taken_metrics_port_alerts_and_the_daemon_keeps_ticking(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, telemetry={"listen": f"127.0.0.1:{port}"})
        daemon, notifier = daemon_for(path)
        outcome: list[object] = []
        runner = threading.Thread(
            target=lambda: outcome.append(daemon.run_forever(install_signals=False))
        )
        runner.start()
        deadline = time.monotonic() + 20
        while daemon.ticks < 1 and runner.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.stop()
        runner.join(timeout=20)
    assert outcome == [0] and daemon.ticks >= 1
    assert any(str(port) in t and "metrics" in t for t in notifier.texts), notifier.texts


UNMAKEABLE = {
    "29 February of 2027": ("2027-02-29T08:00:00Z", "day is out of range"),
    "hour 24": ("2099-01-01T24:00:00Z", "hour must be in 0..23"),
    "offset past a day": ("2099-01-01T10:00:00+99:00", "offset"),
    "!!int of a word": ("!!int many", "an int"),
    "!!timestamp of a word": ("!!timestamp soon", "a timestamp"),
}
"""Values YAML takes for a type it then cannot make: PyYAML's constructor raised a bare
ValueError (AttributeError, KeyError) with no line, a traceback out of every reader."""


@pytest.mark.parametrize("case", sorted(UNMAKEABLE))
def test_a_value_yaml_cannot_make_is_a_located_error_in_validate_and_run(
    tmp_path: Path, case: str
) -> None:
    value, words = UNMAKEABLE[case]
    path = write_config(tmp_path)
    text = path.read_text().replace("max_nodes: 40", "max_nodes: 40\n  mark: " + value)
    path.write_text(text)
    line = text.splitlines().index("  mark: " + value) + 1
    for args in (["validate", str(path)], ["run", "--once", "--config", str(path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert f"{path}:{line}: pools[0].mark:" in result.output and words in result.output


@pytest.mark.parametrize("case", sorted(UNMAKEABLE))
def test_an_overrides_value_yaml_cannot_make_keeps_the_last_good_one(
    tmp_path: Path, case: str
) -> None:
    value, words = UNMAKEABLE[case]
    path = write_config(tmp_path)
    overrides = tmp_path / "overrides.yaml"
    good = "overrides:\n  image-gen:\n    nodes: 7\n    expires: {}\n    reason: launch\n"
    overrides.write_text(good.format("2099-01-01T00:00:00Z"))
    daemon, notifier = daemon_for(path)
    assert daemon.tick()[0].decision.desired == 7
    overrides.write_text(good.format(value))
    for _ in range(3):
        (result,) = daemon.tick()
        assert result.decision is not None and result.decision.desired == 7
    alerts = [t for t in notifier.texts if "overrides file" in t]
    assert len(alerts) == 1 and f"{overrides}:4" in alerts[0] and words in alerts[0], alerts
    listed = CliRunner().invoke(app, ["override", "list", "--config", str(path)])
    assert listed.exit_code == 2 and f"{overrides}:4" in listed.output, listed.output
