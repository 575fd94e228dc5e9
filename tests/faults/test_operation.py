"""Classes 5 and 7 (issue 17): people's text is not markup, a hand-edited state does not
crash `status`; a SIGHUP while starting does not kill the daemon, an idle client does not
block /metrics, a broken overrides file is parsed when it changes, not every tick."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

import autoscaler.daemon_reload
from autoscaler.cli.main import app
from autoscaler.telemetry import Telemetry
from tests.autoscaler.test_daemon import ROOT, write_config
from tests.faults.test_uncaught import daemon_for

OVERRIDE = (
    "overrides:\n  image-gen:\n    nodes: 7\n    expires: 2099-01-01T00:00:00Z\n"
    "    reason: {reason}\n"
)


# ---- class 5: text is text ---------------------------------------------------------


@pytest.mark.parametrize(
    "reason", ["'[/]'", "'launch [bold]day'", "'[/bold] oops [red'", "'\\[x] [link=file:///]a'"]
)
def test_an_override_reason_with_markup_is_shown_as_written(tmp_path: Path, reason: str) -> None:
    path = write_config(tmp_path)
    (tmp_path / "overrides.yaml").write_text(OVERRIDE.format(reason=reason))
    daemon, _ = daemon_for(path)
    daemon.tick()
    result = CliRunner().invoke(app, ["status", "--config", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, (result.output, result.exception)
    shown = reason.strip("'").replace("\\\\", "\\")
    assert shown.split()[0] in result.output


@pytest.mark.parametrize(
    "damage",
    [
        lambda pool: pool.update(last_decision=["not", "a", "mapping"]),
        lambda pool: pool.update(last_decision="scaled up"),
        lambda pool: pool["last_decision"].update(reasons="one reason, not a list"),
        lambda pool: pool["last_decision"].update(errors=["metrics"]),
        lambda pool: pool["last_decision"].update(signals={"queue": 3}),
        lambda pool: pool["last_decision"].update(reasons=[1, None, {"a": "[/]"}]),
    ],
    ids=["decision-list", "decision-text", "reasons-text", "errors-list", "signals-dict",
         "reasons-odd"],
)  # fmt: skip
def test_a_hand_edited_state_field_of_the_wrong_type_does_not_crash_status(
    tmp_path: Path, damage
) -> None:
    path = write_config(tmp_path)
    daemon, _ = daemon_for(path)
    daemon.tick()
    state_file = tmp_path / "state" / "state.json"
    state = json.loads(state_file.read_text())
    damage(state["pools"]["image-gen"])
    state_file.write_text(json.dumps(state))
    result = CliRunner().invoke(app, ["status", "--config", str(path)], env={"COLUMNS": "250"})
    # 1 is status saying a pool has errors (a damaged errors field still lists one); a
    # crash would be an exception other than the exit
    assert result.exit_code in (0, 1), (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "image-gen" in result.output
    again, _ = daemon_for(path)  # and the daemon starts on it, and ticks
    assert again.tick()[0].decision is not None


# ---- class 7: operation -------------------------------------------------------------


def console_script() -> str:
    """The `autoscaler` entry point as installed ([project.scripts] in pyproject.toml)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts["autoscaler"]


def test_sighup_in_the_first_moments_after_start_does_not_kill_the_daemon(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    log = tmp_path / "decisions.jsonl"
    module, function = console_script().split(":")
    code = (
        f"import sys; sys.argv = ['autoscaler', 'run', '--config', {str(path)!r}]; "
        f"from {module} import {function} as main; main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        time.sleep(0.3)  # the interpreter is up; the imports and the config are not
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (log.exists() and log.read_text().strip()):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.1)
        assert proc.poll() is None, "a SIGHUP while starting killed the daemon"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert log.read_text().strip(), "it never ticked"
    assert "config reloaded" in err  # the reload asked for while starting was done


def test_an_idle_client_does_not_block_metrics_or_healthz() -> None:
    server = Telemetry().serve("127.0.0.1", 0)
    port = server.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.sendall(b"GET /metrics HTTP/1.1\r\n")  # and nothing more, for ever
            for path in ("/healthz", "/metrics"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
                    assert r.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_broken_overrides_file_is_parsed_when_it_changes_not_every_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(OVERRIDE.format(reason="launch"))
    parsed: list[Path] = []
    real = autoscaler.daemon_reload.read_overrides_document
    monkeypatch.setattr(
        autoscaler.daemon_reload,
        "read_overrides_document",
        lambda p: (parsed.append(p), real(p))[1],
    )
    daemon, notifier = daemon_for(path)
    daemon.tick()
    overrides.write_text("overrides: [broken\n")
    for _ in range(5):
        assert daemon.tick()[0].decision.desired == 7  # the last good override holds
    assert len(parsed) == 2
    overrides.write_text("overrides: {image-gen: [still broken]}\n")
    for _ in range(3):
        daemon.tick()
    assert len(parsed) == 3
    overrides.write_text(OVERRIDE.format(reason="launch again"))
    daemon.tick()
    assert len(parsed) == 4
    alerts = [t for t in notifier.texts if "overrides file" in t]
    assert len(alerts) == 3 and "readable again" in alerts[-1]  # broken, broken again, back
