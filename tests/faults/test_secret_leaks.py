"""Class 6 (issue 17): secrets redacted by value wherever output leaves the process.

The daemon runs its tick path against the Prometheus, Nomad and Slack doubles (their
documented APIs; tests/doubles) with credentials in the environment, while the servers
answer with bodies that quote those credentials, and every output is searched for every
secret and for any 8-character piece of one (a truncated token is still a leak).
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.loader import load_config
from autoscaler.config.problems import ConfigError
from autoscaler.config.transport import insecure_settings
from autoscaler.daemon import Daemon
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON
from tests.doubles.nomad_api import NomadApiDouble
from tests.doubles.prometheus_server import PrometheusApiDouble, error_reply
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble
from tests.faults.test_secrets import NOMAD_SECRET, PROM_BEARER, closed_port
from tests.support import slack_posted

URL_PASSWORD = "nomad-url-pw-71c2e9"
ENV = {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "NOMAD_TOKEN": NOMAD_SECRET, "PROM_TOKEN": PROM_BEARER}
SECRETS = [DEFAULT_TOKEN, NOMAD_SECRET, PROM_BEARER, URL_PASSWORD]


def pieces(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def assert_no_secret(outputs: dict[str, str], secrets: list[str] = SECRETS) -> None:
    for name, text in outputs.items():
        for secret in secrets:
            leaked = [p for p in pieces(secret) if p in text]
            assert not leaked, f"a piece of a secret ({leaked[0]}) leaked into {name}"


def config_file(tmp_path: Path, prometheus_url: str, slack_url: str, backend: dict) -> Path:
    config = {
        "interval": "1m",
        "state_dir": str(tmp_path / "state"),
        "decision_log": str(tmp_path / "decisions.jsonl"),
        "metrics": {
            "kind": "prometheus",
            "url": prometheus_url,
            "bearer_token_env": "PROM_TOKEN",
            "timeout": "2s",
        },
        "slack": {"channel": "#gpu-autoscaler", "base_url": slack_url, "timeout": "2s"},
        "pools": [
            {
                "name": "ocr",
                "backend": backend,
                "demand": {"query": "sum(rate(x[2m]))", "window": "1h"},
                "capacity": {"per_node_rps": 1.0},
                "max_nodes": 20,
                "predictor": {"kind": "linear"},
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def outputs_of(tmp_path: Path, path: Path, caplog, slack: SlackApiDouble, results) -> dict:
    status = CliRunner().invoke(
        app, ["status", "--config", str(path)], env={**ENV, "COLUMNS": "250"}
    )
    assert status.exit_code in (0, 1), status.output  # 1: a pool is failing, as status says
    assert status.exception is None or isinstance(status.exception, SystemExit)
    return {
        "logs": caplog.text,
        "decision log": (tmp_path / "decisions.jsonl").read_text(),
        "slack": json.dumps([[m.text, m.blocks] for m in slack.messages]),
        "state": (tmp_path / "state" / "state.json").read_text(),
        "status": status.output,
        "errors": json.dumps([r.errors for r in results]),
    }


def two_ticks(
    tmp_path: Path,
    replies: list,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    env: dict = ENV,
    metrics: dict | None = None,
) -> tuple[Path, list]:
    """Two ticks a minute apart of a Nomad pool whose Prometheus gives `replies`;
    `metrics`: settings put over the config's metrics section (None: a key removed)."""
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    with PrometheusApiDouble(replies) as prom:
        backend = {"kind": "nomad_job", "job": "ocr-workers", "group": "gpu",
                   "address": nomad_api.url, "retries": 0}  # fmt: skip
        path = config_file(tmp_path, prom.url, slack_api.base_url, backend)
        if metrics:
            config = yaml.safe_load(path.read_text())
            merged = {**config["metrics"], **metrics}
            config["metrics"] = {key: value for key, value in merged.items() if value is not None}
            path.write_text(yaml.safe_dump(config))
        clock = SimulatedClock(NOON)
        daemon = Daemon(path, env=env, clock=clock)
        results = daemon.tick()
        clock.advance(timedelta(minutes=1))
        results += daemon.tick()
        slack_posted(daemon.runtime.notifier)
    return path, results


@pytest.mark.parametrize("padding", [0, 140, 145, 150])
def test_an_error_body_quoting_the_authorization_header_is_redacted_everywhere(
    tmp_path: Path,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    caplog: pytest.LogCaptureFixture,
    padding: int,
) -> None:
    """A proxy's 401 echoes the request's headers; `padding` puts the token across each
    place a message is cut (200 characters in the metrics error, 500 in Slack)."""
    caplog.set_level(logging.DEBUG)
    echo = "x" * padding + f" rejected header Authorization: Bearer {PROM_BEARER} (expired)"
    replies = [error_reply(401, "unauthorized", echo)]
    path, results = two_ticks(tmp_path, replies, nomad_api, slack_api)
    assert all(r.errors.get("metrics") for r in results)
    outputs = outputs_of(tmp_path, path, caplog, slack_api, results)
    assert "HTTP 401" in outputs["decision log"] and "failing" in outputs["slack"]
    assert_no_secret(outputs)


@pytest.mark.parametrize(
    "echoed",
    [lambda t: t[:20], lambda t: t[-12:], lambda t: f"{t[:9]}...{t[-9:]}"],
    ids=["first 20 characters", "last 12 characters", "both ends"],
)
def test_an_error_body_echoing_part_of_a_token_is_redacted_everywhere(
    tmp_path: Path,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    caplog: pytest.LogCaptureFixture,
    echoed,
) -> None:
    """A gateway in front of Prometheus (the double answers with Prometheus's documented
    error envelope) quotes the token cut short, as servers that shorten their errors do.
    Only the whole value was searched for: the piece reached every output."""
    caplog.set_level(logging.DEBUG)
    body = f"credential {echoed(PROM_BEARER)}... is not valid for this tenant"
    replies = [error_reply(403, "forbidden", body)]
    path, results = two_ticks(tmp_path, replies, nomad_api, slack_api)
    assert all("HTTP 403" in r.errors.get("metrics", "") for r in results), results
    outputs = outputs_of(tmp_path, path, caplog, slack_api, results)
    assert "is not valid for this tenant" in outputs["decision log"]
    assert_no_secret(outputs)


PROM_USER, PROM_PASSWORD = "autoscaler", "prom-basic-pw-5d81c3"


def test_an_error_body_echoing_the_basic_credentials_without_the_word_basic_is_redacted(
    tmp_path: Path,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gateway in front of Prometheus (the double answers with Prometheus's documented
    error envelope) quotes the Authorization header's value alone: base64 of
    `user:password`, the password to anyone who decodes it. Only `Basic <it>` was hidden."""
    caplog.set_level(logging.DEBUG)
    sent = base64.b64encode(f"{PROM_USER}:{PROM_PASSWORD}".encode()).decode()
    env = {**ENV, "PROM_PASSWORD": PROM_PASSWORD}
    bodies = [f"credentials {sent} refused", f"credentials {sent.rstrip('=')} refused"]
    replies = [error_reply(401, "unauthorized", body) for body in bodies]
    basic = {"username": PROM_USER, "password_env": "PROM_PASSWORD"}
    metrics = {"bearer_token_env": None, "basic_auth": basic}
    path, results = two_ticks(tmp_path, replies, nomad_api, slack_api, env, metrics)
    assert all("HTTP 401" in r.errors.get("metrics", "") for r in results), results
    outputs = outputs_of(tmp_path, path, caplog, slack_api, results)
    assert "credentials [redacted] refused" in outputs["decision log"]
    assert_no_secret(outputs, [*SECRETS, PROM_PASSWORD, sent.rstrip("=")])


def test_user_and_password_in_nomad_addr_are_never_printed(
    tmp_path: Path, slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {**ENV, "NOMAD_ADDR": f"http://ops:{URL_PASSWORD}@127.0.0.1:{closed_port()}"}
    with PrometheusApiDouble([error_reply(503, "timeout", "query timed out")]) as prom:
        backend = {"kind": "nomad_job", "job": "ocr-workers", "group": "gpu", "retries": 0}
        path = config_file(tmp_path, prom.url, slack_api.base_url, backend)
        daemon = Daemon(path, env=env, clock=SimulatedClock(NOON))
        results = daemon.tick()
        slack_posted(daemon.runtime.notifier)
    assert results[0].errors.get("backend"), results[0].errors
    outputs = outputs_of(tmp_path, path, caplog, slack_api, results)
    assert_no_secret(outputs)


def test_any_log_line_or_traceback_with_a_known_secret_is_redacted(
    tmp_path: Path, slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """Not per message: a library's debug line or a traceback goes through the same door."""
    with PrometheusApiDouble([error_reply(503, "timeout", "query timed out")]) as prom:
        backend = {"kind": "simulated"}
        path = config_file(tmp_path, prom.url, slack_api.base_url, backend)
        Daemon(path, env=ENV, clock=SimulatedClock(NOON))
    other = logging.getLogger("some.library")
    other.warning("sending headers {'X-Nomad-Token': '%s'}", NOMAD_SECRET)
    other.warning(f"slack said no to {DEFAULT_TOKEN}")  # formatted before logging saw it
    try:
        raise RuntimeError(f"bad token {PROM_BEARER}")
    except RuntimeError:
        other.exception("a traceback")
    text = "\n".join(logging.Formatter("%(message)s").format(record) for record in caplog.records)
    assert "[redacted]" in text
    assert_no_secret({"logs": text})


def plain_prometheus(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path),
                "metrics": {"kind": "prometheus", "url": "http://127.0.0.1:9090",
                            "bearer_token_env": "PROM_TOKEN"},
                "pools": [
                    {"name": "ocr", "backend": {"kind": "nomad_job", "job": "j", "group": "g",
                                                 "address": "http://localhost:4646"},
                     "demand": {"query": "q"}, "capacity": {"per_node_rps": 1}, "max_nodes": 4}
                ],
            }
        )
    )  # fmt: skip
    return path


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_plain_http_proxy_that_would_carry_tokens_is_an_insecure_transport(
    tmp_path: Path, name: str
) -> None:
    """Loopback http needs nothing, unless a proxy elsewhere would relay it in clear."""
    path = plain_prometheus(tmp_path)
    config = load_config(path)
    assert insecure_settings(config, {}) == []
    env = {name: "http://proxy.corp.example:3128", "PROM_TOKEN": PROM_BEARER}
    found = insecure_settings(config, env)
    assert any("metrics" in f and "proxy.corp.example" in f for f in found), found
    assert any("pools[0].backend" in f and "proxy" in f for f in found), found
    with pytest.raises(ConfigError, match="proxy"):
        Daemon(path, env=env)


@pytest.mark.parametrize(
    "env",
    [
        {"HTTP_PROXY": "http://proxy.corp.example:3128", "NO_PROXY": "127.0.0.1,localhost"},
        {"HTTP_PROXY": "http://127.0.0.1:3128"},
        {"HTTPS_PROXY": "http://proxy.corp.example:3128"},  # only https goes there: tunnelled
    ],
)
def test_a_proxy_that_is_bypassed_or_local_is_fine(tmp_path: Path, env: dict) -> None:
    assert insecure_settings(load_config(plain_prometheus(tmp_path)), env) == []
