"""`run --once --dry-run` changes nothing outside its own output, end to end: a real
Prometheus, the Nomad API double (job scale endpoint and the variable lock), the Slack
Web API double, and the state and decision log a real run left."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from tests.autoscaler.cli.test_prometheus import write_config
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.doubles.prometheus_server import PrometheusWithHistory
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

pytestmark = pytest.mark.integration
ENV = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN, "SLACK_BOT_TOKEN": DEFAULT_TOKEN}


def _with_slack_and_lock(path: Path, slack: SlackApiDouble, nomad: NomadApiDouble) -> None:
    config = yaml.safe_load(path.read_text())
    config["slack"] = {"channel": "#gpu-autoscaler", "base_url": slack.base_url}
    config["leader_election"] = {"kind": "nomad", "address": nomad.url, "ttl": "3m"}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _dry_run(path: Path, nomad: NomadApiDouble, slack: SlackApiDouble) -> tuple[str, list]:
    """The dry run's output, and the Nomad requests it made; it must not call Slack."""
    seen, slack_calls = len(nomad.requests), slack.requests
    result = CliRunner().invoke(app, ["run", "--config", str(path), "--once", "--dry-run"], env=ENV)
    assert result.exit_code == 0, result.output
    assert slack.requests == slack_calls
    during = nomad.requests[seen:]
    assert [r for r in during if r.method in ("POST", "PUT", "DELETE")] == []
    assert [r for r in during if "/v1/var" in r.path] == []  # the lock: not even read
    return result.output, during


def test_dry_run_leaves_state_log_lock_fleet_and_slack_as_they_were(
    prometheus_history: PrometheusWithHistory,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
) -> None:
    job = nomad_api.add_job("web-workers", {"gpu": 1})
    path = write_config(tmp_path, prometheus_history.url, nomad_api.url)
    _with_slack_and_lock(path, slack_api, nomad_api)
    config_only = _files(tmp_path)

    output, during = _dry_run(path, nomad_api, slack_api)  # a fresh fleet, far too small
    assert "would scale up (dry run)" in output
    assert any(r.method == "GET" for r in during)  # it did read the fleet
    assert _files(tmp_path) == config_only  # no state, no decision log, no backend record
    assert job.groups["gpu"] == 1 and slack_api.messages == []

    real = CliRunner().invoke(app, ["run", "--config", str(path), "--once"], env=ENV)
    assert real.exit_code == 0, real.output
    assert job.groups["gpu"] > 1 and len(slack_api.messages) == 1  # the real run does it all
    assert (tmp_path / "decisions.jsonl").exists() and nomad_api.variables.variables
    job.groups["gpu"] = 1  # someone scales by hand: a run notices, alerts, holds
    after_real = _files(tmp_path)

    output, _ = _dry_run(path, nomad_api, slack_api)
    assert "would hold (dry run)" in output
    assert "would notify" in output and "outside the autoscaler" in output
    assert _files(tmp_path) == after_real  # the next real run starts as if none had run
    assert job.groups["gpu"] == 1 and len(slack_api.messages) == 1
