"""The systemd unit: notify + watchdog, no restart on a config error, real docs, hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from common.instance_lock import hold_instance_lock

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "config" / "autoscaler.service"
MAX_EXPOSURE = 2.0
"""systemd-analyze's 0-10 scale; 1.1 when written, what is left being network access."""


def _settings() -> dict[str, list[str]]:
    """Key → values in order (systemd allows a key more than once)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_daemon_tells_systemd_it_runs_and_is_watched() -> None:
    unit = _settings()
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert re.fullmatch(r"\d+(min|s)", unit["WatchdogSec"][0])


def test_a_config_error_exit_is_not_restarted(tmp_path: Path) -> None:
    """The status `run` gives an invalid config is the one the unit does not restart on."""
    config = tmp_path / "broken.yaml"
    config.write_text("interval: 1m\npools: []\nno_such_key: 1\n")
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--once"])
    assert result.exit_code != 0
    assert str(result.exit_code) in _settings()["RestartPreventExitStatus"][0].split()
    assert _settings()["Restart"] == ["on-failure"]


def test_a_start_refused_by_a_held_state_folder_is_retried(tmp_path: Path) -> None:
    """A hand-run `run --once` holding the state folder while the service starts (a
    restart, a boot) is soon done: the service's refused start must be restarted, not
    read as a config error and left stopped with the fleet unscaled."""
    settings = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text(encoding="utf-8"))
    settings["state_dir"] = str(tmp_path / "state")
    settings["decision_log"] = str(tmp_path / "decisions.jsonl")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    held = hold_instance_lock(tmp_path / "state" / "autoscaler.lock")
    try:
        result = CliRunner().invoke(app, ["run", "--config", str(config)])
    finally:
        held.close()
    assert result.exit_code != 0 and "held by process" in " ".join(result.output.split())
    assert str(result.exit_code) not in _settings()["RestartPreventExitStatus"][0].split()
    assert _settings()["Restart"] == ["on-failure"]


def test_documentation_points_at_a_file_the_install_steps_put_there() -> None:
    (doc,) = _settings()["Documentation"]
    assert doc.startswith("file:///")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"install -D -m 0644 README.md {doc.removeprefix('file://')}" in readme


def _installed_copy(tmp_path: Path) -> Path:
    """The unit pointed at the venv running these tests (verify checks ExecStart exists)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "autoscaler").exists():
        pytest.skip("the tests run outside the venv the package is installed in")
    copy = tmp_path / "autoscaler.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/autoscaler/venv", str(venv)))
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs Debian's systemd")
def test_systemd_analyze_verifies_the_unit_and_scores_its_exposure(tmp_path: Path) -> None:
    copy = _installed_copy(tmp_path)
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    assert float(score.group(1)) <= MAX_EXPOSURE, security.stdout


def test_a_start_waiting_for_a_held_state_folder_ends_before_systemd_gives_up_on_it() -> None:
    """Started by systemd, `run` waits LOCK_WAIT_S for a state folder a hand-run `--once`
    holds; the unit must allow that start longer (TimeoutStartSec), or it kills the wait.
    `--once`, and a daemon started by hand, are told at once."""
    from autoscaler.cli.main import LOCK_WAIT_S, lock_wait_s

    (timeout,) = _settings()["TimeoutStartSec"]
    minutes = re.fullmatch(r"(\d+)min", timeout)
    assert minutes is not None and int(minutes[1]) * 60 > LOCK_WAIT_S + 30
    assert lock_wait_s(once=False, env={"NOTIFY_SOCKET": "/run/systemd/notify"}) == LOCK_WAIT_S
    assert lock_wait_s(once=True, env={"NOTIFY_SOCKET": "/run/systemd/notify"}) == 0.0
    assert lock_wait_s(once=False, env={}) == 0.0
