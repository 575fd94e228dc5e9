"""`validate --check-backends` against what the daemon will talk to: a real Prometheus
(Debian's package, with backfilled history), the Nomad API double (job scale endpoint,
variable lock) and the Slack Web API double (auth.test, conversations.list). Every check
runs; "ok" is printed only after all passed, and never beside a failure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.loader import load_config
from backends.leases import make_leader_lock
from tests.autoscaler.cli.test_prometheus import write_config
from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.doubles.prometheus_server import PrometheusWithHistory
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

pytestmark = pytest.mark.integration
ENV = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN, "SLACK_BOT_TOKEN": DEFAULT_TOKEN}
runner = CliRunner()


def _config(
    tmp_path: Path, prometheus_url: str, nomad: NomadApiDouble, slack: SlackApiDouble, **extra
) -> Path:
    path = write_config(tmp_path, prometheus_url, nomad.url)
    config = yaml.safe_load(path.read_text())
    config["slack"] = {"channel": "#gpu-autoscaler", "base_url": slack.base_url}
    config.update(extra)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _check(path: Path, env: dict[str, str] = ENV) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", str(path), "--check-backends"], env=env)
    return result.exit_code, result.output


def test_every_check_passes_then_ok_comes_last(
    prometheus_history: PrometheusWithHistory,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 3})
    path = _config(tmp_path, prometheus_history.url, nomad_api, slack_api)
    code, output = _check(path)
    assert code == 0, output
    lines = output.strip().splitlines()
    assert lines[-1].startswith("ok: ") and "every backend check passed" in lines[-1]
    assert sum("ok:" in line for line in lines) == 1
    assert "nasa: nomad_job: reachable, target exists" in output
    assert "nasa: other autoscalers: none found" in output
    assert "nasa: demand query: " in output and " samples over 1h, newest " in output
    assert re.search(r" newest \d+[smh] old\n", output)  # not "newest 19904.627ms old"
    assert "slack: #gpu-autoscaler: token valid (team Double Workspace" in output
    # README asks chat:write alone, which cannot ask about a channel: said, not passed
    assert "; channel not checked: needs the channels:read scope" in output
    assert slack_api.auth_tests == 1 and slack_api.messages == []  # asked, posted nothing
    assert DEFAULT_TOKEN not in output and DOUBLE_ACL_TOKEN not in output


@pytest.mark.parametrize(
    "break_it, says",
    [
        ("empty query", "nasa: demand query"),
        ("slack token", "slack: #gpu-autoscaler: auth.test"),
        ("no such job", "nasa: nomad_job"),
        ("bot not in the channel", "slack: #gpu-autoscaler: channel #gpu-autoscaler: the bot"),
    ],
)
def test_a_failing_check_fails_validate_and_no_ok_is_printed(
    prometheus_history: PrometheusWithHistory,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
    break_it: str,
    says: str,
) -> None:
    if break_it != "no such job":
        nomad_api.add_job("web-workers", {"gpu": 3})
    path = _config(tmp_path, prometheus_history.url, nomad_api, slack_api)
    env = dict(ENV)
    if break_it == "empty query":
        config = yaml.safe_load(path.read_text())
        config["pools"][0]["demand"]["query"] = "sum(rate(no_such_metric_total[5m]))"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    if break_it == "slack token":
        env["SLACK_BOT_TOKEN"] = "xoxb-revoked"
    if break_it == "bot not in the channel":  # every post would be refused: not_in_channel
        slack_api.scopes.add("channels:read")
        slack_api.outside.add("C0AUTOSCALE")
    code, output = _check(path, env)
    assert code == 2, output
    assert f"FAILED {says}" in output
    assert "ok:" not in output  # not before the failure, not after it
    assert "1 backend check(s) failed" in output
    assert "xoxb-revoked" not in output
    assert slack_api.messages == []


def test_a_nomad_scaling_policy_on_the_group_fails_its_check(
    prometheus_history: PrometheusWithHistory,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
) -> None:
    """Before, a group the Nomad Autoscaler also scaled passed: the two then fought."""
    policy = {"check": [{"queue": [{"source": "prometheus", "query": "sum(q)"}]}]}
    nomad_api.add_job(
        "web-workers", {"gpu": 3}, scaling={"gpu": (1, 9)}, scaling_policy={"gpu": policy}
    )
    path = _config(tmp_path, prometheus_history.url, nomad_api, slack_api)
    code, output = _check(path)
    assert code == 2 and "ok:" not in output and "1 backend check(s) failed" in output
    assert (
        "FAILED nasa: other autoscalers: another autoscaler also scales this fleet: the "
        "scaling policy of Nomad job 'web-workers' group 'gpu' (1 to 9; the Nomad Autoscaler "
        "acts on it): set `enabled = false` in its scaling block"
    ) in " ".join(output.split())


def test_prometheus_down_is_a_failed_check(
    stopped_prometheus_url: str,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 3})
    path = _config(tmp_path, stopped_prometheus_url, nomad_api, slack_api)
    code, output = _check(path)
    assert code == 2 and "FAILED nasa: demand query" in output and "ok:" not in output
    assert "nasa: nomad_job: reachable" in output  # the other checks still ran


def test_the_leader_lock_is_read_never_taken(
    prometheus_history: PrometheusWithHistory,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
) -> None:
    """Against the Nomad API double's variables (tests/doubles/nomad_variables.py)."""
    nomad_api.add_job("web-workers", {"gpu": 3})
    election = {"kind": "nomad", "name": "gpu-autoscaler/leader", "address": nomad_api.url}
    election["ttl"] = "3m"
    path = _config(tmp_path, prometheus_history.url, nomad_api, slack_api, leader_election=election)
    code, output = _check(path)
    assert code == 0, output
    assert "lock 'gpu-autoscaler/leader': reachable, not taken yet" in output
    assert not nomad_api.variables.variables  # reading it created nothing

    taken = load_config(path).leader_election
    assert taken is not None
    holder = make_leader_lock(taken.model_copy(update={"identity": "ops-a"}), ENV)
    assert holder.acquire_or_renew()
    code, output = _check(path)
    assert code == 0 and "held by ops-a" in output
    assert holder.is_held()  # validate did not take or break it

    code, output = _check(path, {**ENV, "NOMAD_TOKEN": "not-the-token"})
    assert code == 2 and "FAILED leader_election: nomad lock" in output
    assert "not-the-token" not in output and "ok:" not in output


class _EchoingGateway(JsonApiHandler):
    """What sits at slack.base_url answers HTML quoting the request's Authorization header
    (a debugging proxy or gateway error page), with the status the test asks for."""

    def serve(self, request: IncomingRequest) -> None:
        quoted = request.headers.get("authorization")
        body = f"<html><body><h1>Bad gateway</h1>request: {quoted}</body></html>"
        self.send_bytes(self.server.double.status, body.encode(), "text/html")


@pytest.mark.parametrize("status", [200, 502])
def test_a_slack_answer_quoting_the_token_is_not_printed(
    stopped_prometheus_url: str, nomad_api: NomadApiDouble, tmp_path: Path, status: int
) -> None:
    """auth.test answered by an HTML page that quotes the bot token: slack-sdk makes its
    first 100 characters the error, which the failed check printed as it was. The token
    is [redacted] there, as everywhere."""
    token = "xoxb-5830291746-Gq7vRt2mWz-bench"
    nomad_api.add_job("web-workers", {"gpu": 3})
    with LoopbackDouble(_EchoingGateway) as gateway:
        gateway.status = status  # type: ignore[attr-defined]
        path = write_config(tmp_path, stopped_prometheus_url, nomad_api.url)
        config = yaml.safe_load(path.read_text())
        config["slack"] = {"channel": "#gpu-autoscaler", "base_url": f"{gateway.url}/api/"}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        code, output = _check(path, {**ENV, "SLACK_BOT_TOKEN": token})
    assert code == 2 and "FAILED slack: #gpu-autoscaler: auth.test" in output
    assert "Bad gateway" in output and "[redacted]" in output
    assert not any(token[i : i + 8] in output for i in range(len(token) - 7)), output
