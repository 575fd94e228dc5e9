"""The `autoscaler` command line on the embedded demo config and on broken input."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def demo_copy(tmp_path: Path, **simulation: object) -> Path:
    """The shipped demo config, with its state and log in tmp and a shorter simulation."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["state_dir"] = str(tmp_path / "state")
    config["decision_log"] = str(tmp_path / "decisions.jsonl")
    config["metrics"]["trace"] = str(ROOT / "config" / "traces" / "nasa_jul95_demo.csv")
    config["simulation"].update(simulation)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_demo_plays_a_simulated_morning_and_prints_a_summary(tmp_path: Path) -> None:
    path = demo_copy(
        tmp_path, start="1995-07-11T10:00:00Z", end="1995-07-11T14:00:00Z", speed=60000
    )
    config = yaml.safe_load(path.read_text())
    config["pools"][0]["schedules"][0]["min_nodes"] = 30  # above what the forecast needs
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "summary" in result.output and "node-hours" in result.output
    records = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert len(records) == 48  # 4 hours at 5-minute ticks
    # 12:45 UTC = 08:45 New York: the business-hours floor (lead 15m) is in force from then.
    before = next(r for r in records if r["time"].startswith("1995-07-11T12:40"))
    at_open = next(r for r in records if r["time"].startswith("1995-07-11T12:45"))
    assert before["desired"] < 30 <= at_open["desired"]
    assert any("business-hours" in reason for reason in at_open["reasons"])
    assert all(r["forecast_model"] == "seasonal" for r in records)


def test_run_once_prints_the_decision(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(demo_copy(tmp_path)), "--once"])
    assert result.exit_code == 0, result.output
    assert "image-gen" in result.output and "→" in result.output


def test_run_once_keeps_the_loops_week_of_ticks_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --once` from cron is a restart every tick: each run writes the loop's week of
    ticks it took up and added to, so that the next run goes on learning from it; a dry
    run reads it and writes nothing. (The replayed trace is from 1995: the system clock
    is set there, a minute on at each run, as cron's would move.)"""
    from autoscaler import runtime
    from autoscaler.kept_ticks_file import read_week
    from common.clock import SimulatedClock

    config = yaml.safe_load(demo_copy(tmp_path).read_text())
    del config["simulation"]  # the real daemon's clock, not a simulation's
    path = tmp_path / "cron.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    week = tmp_path / "state" / "loop-ticks" / "image-gen.npz"
    start = datetime(1995, 7, 11, 16, 0, tzinfo=UTC)
    for minute, dry_run in ((0, False), (1, False), (2, True)):
        clock = SimulatedClock(start + timedelta(minutes=minute))
        monkeypatch.setattr(runtime, "make_clock", lambda _config, clock=clock: clock)
        args = ["run", "--config", str(path), "--once", *(["--dry-run"] if dry_run else [])]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert len(read_week(week, UTC).ticks) == min(minute, 1) + 1


def test_dry_run_once_says_would_and_writes_no_log_and_no_state(tmp_path: Path) -> None:
    """Its own output only: the decision log and the state are the real daemon's."""
    result = runner.invoke(
        app, ["run", "--config", str(demo_copy(tmp_path)), "--once", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "would " in result.output and "(dry run)" in result.output
    assert not (tmp_path / "decisions.jsonl").exists()
    assert not (tmp_path / "state").exists()


def test_forecast_shows_a_table_and_what_it_would_do_and_writes_nothing(tmp_path: Path) -> None:
    path = demo_copy(tmp_path)
    result = runner.invoke(app, ["forecast", "--config", str(path), "--hours", "1"])
    assert result.exit_code == 0, result.output
    assert "desired" in result.output and "would" in result.output
    assert not (tmp_path / "decisions.jsonl").exists()
    assert not (tmp_path / "state").exists()


def test_an_unknown_log_level_is_a_one_line_error_not_a_traceback(tmp_path: Path) -> None:
    """`run --log-level LOUD` raised logging's ValueError as a traceback, exit 1 (which
    systemd restarts on) instead of a bad option's exit 2."""
    path = demo_copy(tmp_path)
    result = runner.invoke(app, ["run", "--config", str(path), "--log-level", "LOUD"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "--log-level: expected DEBUG, INFO, WARNING or ERROR, got 'LOUD'" in result.output
    assert not (tmp_path / "state").exists()


def test_log_lines_on_a_terminal_are_in_utc_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal's plain lines were in the host's local time with no zone, beside
    decisions, status and Slack in UTC: 09:14 in a log read against 14:14 UTC elsewhere."""
    from common import log_lines

    class Terminal:
        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            return sys.__stderr__.write(text)

        def flush(self) -> None:
            sys.__stderr__.flush()

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    monkeypatch.setattr(log_lines.sys, "stderr", Terminal())
    record = logging.LogRecord("autoscaler.x", logging.INFO, __file__, 1, "hello", None, None)
    record.created, record.msecs = 1_790_000_000.25, 250.0  # 2026-09-21 14:13:20.250 UTC
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        log_lines.setup_logging("INFO")
        line = root.handlers[0].format(record)
    finally:
        monkeypatch.undo()
        time.tzset()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert line == "2026-09-21T14:13:20.250Z INFO autoscaler.x: hello"


def test_forecast_unknown_pool_fails(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["forecast", "--config", str(demo_copy(tmp_path)), "--pool", "nope"]
    )
    assert result.exit_code == 1


def test_validate_accepts_the_shipped_configs() -> None:
    """With the secrets autoscaler.env.example lists; without the Slack token, `run` would
    not start the production example, so `validate` names the variable instead."""
    env = {"SLACK_BOT_TOKEN": "xoxb-example"}
    for name in (
        "demo.yaml",
        "production.example.yaml",
        "backends.example.yaml",
        "signals.example.yaml",
    ):
        result = runner.invoke(app, ["validate", str(ROOT / "config" / name)], env=env)
        assert result.exit_code == 0, result.output
    production = ROOT / "config" / "production.example.yaml"
    result = runner.invoke(app, ["validate", str(production)], env={"SLACK_BOT_TOKEN": ""})
    assert result.exit_code == 2
    assert (
        f"{production}:14: slack.token_env: " in result.output
        and "SLACK_BOT_TOKEN" in result.output
    )


def test_bad_config_is_refused_with_file_line_and_field_and_scales_nothing(
    tmp_path: Path,
) -> None:
    path = demo_copy(tmp_path)
    text = path.read_text().replace("target_utilization: 0.8", "target_utilization: lots")
    path.write_text(text + "surprise: 1\n")
    for args in (["validate", str(path)], ["run", "--config", str(path), "--once"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert "demo.yaml:" in result.output
        assert "target_utilization" in result.output and "surprise" in result.output
    assert not (tmp_path / "decisions.jsonl").exists()


def test_validate_checks_the_overrides_file(tmp_path: Path) -> None:
    path = demo_copy(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["overrides_file"] = str(tmp_path / "overrides.yaml")
    path.write_text(yaml.safe_dump(config))
    # the example's pools, in force for a day (its own dates are long past: expired
    # overrides for no pool pass, as a reload must)
    overrides = yaml.safe_load((ROOT / "config" / "overrides.example.yaml").read_text())
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for override in overrides["overrides"].values():
        override["expires"] = expires
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "overrides.yaml" in result.output and "face-match" in result.output


def test_validate_takes_the_config_as_an_argument_or_as_run_takes_it(tmp_path: Path) -> None:
    """`validate FILE` is what ExecReload runs; `validate --config FILE` is what a person
    types after `run --config FILE`, and it was refused as an unknown option."""
    path = demo_copy(tmp_path)
    for args in (
        [str(path)],
        ["--config", str(path)],
        ["-c", str(path)],
        [str(path), "-c", str(path)],
    ):
        result = runner.invoke(app, ["validate", *args])
        assert result.exit_code == 0, result.output
        assert f"ok: {path} (1 pool: image-gen)" in " ".join(result.output.split())
    neither = runner.invoke(app, ["validate"], env={"COLUMNS": "200"})
    assert neither.exit_code == 2 and "no config given" in neither.output
    other = tmp_path / "other.yaml"
    both = runner.invoke(
        app, ["validate", str(path), "--config", str(other)], env={"COLUMNS": "300"}
    )
    assert both.exit_code == 2 and "two configs given" in both.output


def test_a_second_daemon_on_the_same_state_is_refused_but_a_dry_run_is_not(
    tmp_path: Path,
) -> None:
    """A daemon started by hand (or a cron `run --once`) while the service runs would tick
    the same pools: both scaling, one decision log interleaved, Slack told twice."""
    from common.instance_lock import hold_instance_lock

    path = demo_copy(tmp_path)
    service = hold_instance_lock(tmp_path / "state" / "autoscaler.lock")
    try:
        second = runner.invoke(app, ["run", "--config", str(path), "--once"])
        assert second.exit_code == 75, second.output
        assert f"held by process {os.getpid()}" in " ".join(second.output.split())
        assert not (tmp_path / "decisions.jsonl").exists()
        looked = runner.invoke(app, ["run", "--config", str(path), "--once", "--dry-run"])
        assert looked.exit_code == 0, looked.output
    finally:
        service.close()
    alone = runner.invoke(app, ["run", "--config", str(path), "--once"])
    assert alone.exit_code == 0, alone.output
    again = runner.invoke(app, ["run", "--config", str(path), "--once"])  # released at exit
    assert again.exit_code == 0, again.output


def test_run_once_gives_the_leader_lock_back_as_it_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nomad_api: NomadApiDouble
) -> None:
    """A `run --once` that took the leader lock held it for its TTL after it exited: the
    next `--once` from cron (another pid, another identity), or the service started
    meanwhile, stood by for the TTL and scaled nothing. It gives the lock back at exit, as
    a daemon that stops does."""
    from autoscaler import runtime
    from common.clock import SimulatedClock

    config = yaml.safe_load(demo_copy(tmp_path).read_text())
    del config["simulation"]  # the real daemon's clock, not a simulation's
    config["leader_election"] = {"kind": "nomad", "address": nomad_api.url, "ttl": "10m"}
    path = tmp_path / "cron.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    start = datetime(1995, 7, 11, 16, 0, tzinfo=UTC)
    for minute in (0, 1):
        clock = SimulatedClock(start + timedelta(minutes=minute))
        monkeypatch.setattr(runtime, "make_clock", lambda _config, clock=clock: clock)
        env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
        result = runner.invoke(app, ["run", "--config", str(path), "--once"], env=env)
        assert result.exit_code == 0, result.output
        assert "image-gen" in result.output and "standby" not in result.output
        assert [v.lock for v in nomad_api.variables.variables.values()] == [None]
