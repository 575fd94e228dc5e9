"""Security: secrets never reach any output, and TLS is verified unless spelled out.

The secret scan runs the daemon's tick path with a Slack token, a Nomad ACL token,
a Prometheus bearer token, AWS keys and a Kubernetes token, while
every one of those services fails, then searches every output for every secret:
logs at DEBUG, the decision log, Slack messages, the state file, `autoscaler
status` and /metrics.
"""

from __future__ import annotations

import json
import logging
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.loader import load_config
from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.config.problems import ConfigError
from autoscaler.config.transport import insecure_settings
from autoscaler.daemon import Daemon
from autoscaler.metrics_prometheus import PrometheusSource
from backends.aws_asg import AutoScalingGroup, AwsAsgBackend
from backends.kubernetes import KubernetesBackend
from backends.kubernetes_credentials import connect
from backends.nomad_cluster import NomadCluster, NomadClusterBackend
from backends.nomad_connection import nomad_connection
from backends.nomad_job import NomadJobBackend
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON
from tests.doubles.kubernetes_api import KubernetesApiDouble
from tests.doubles.nomad_api import NomadApiDouble
from tests.doubles.prometheus_server import PrometheusApiDouble, error_reply
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble
from tests.support import slack_posted

NOMAD_SECRET = "nomad-acl-0b1c2d3e-expired-secret"
PROM_BEARER = "prom-bearer-9f8e7d6c-secret"
AWS_KEY_ID = "AKIAFAULTSUITE7SECRET"
AWS_SECRET = "wJalrXUtnFEMI/fault/suite/SECRETKEYEXAMPLE"
KUBE_SECRET = "kube-expired-token-5a6b7c-secret"
SECRETS = [DEFAULT_TOKEN, NOMAD_SECRET, PROM_BEARER, AWS_SECRET, KUBE_SECRET]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def secret_config(
    tmp_path: Path,
    prometheus: PrometheusApiDouble,
    nomad: NomadApiDouble,
    kube: KubernetesApiDouble,
    slack: SlackApiDouble,
) -> Path:
    kubeconfig = kube.write_kubeconfig(
        tmp_path / "kubeconfig", contexts={"double": {"token": KUBE_SECRET}}
    )
    common = {
        "demand": {"query": "sum(rate(x[2m]))", "window": "1h"},
        "capacity": {"per_node_rps": 1.0},
        "max_nodes": 20,
        "predictor": {"kind": "linear"},
    }
    config = {
        "interval": "1m",
        "state_dir": str(tmp_path / "state"),
        "decision_log": str(tmp_path / "decisions.jsonl"),
        "metrics": {
            "kind": "prometheus",
            "url": prometheus.url,
            "bearer_token_env": "PROM_TOKEN",
            "timeout": "2s",
        },
        "slack": {"channel": "#gpu-autoscaler", "base_url": slack.base_url, "timeout": "2s"},
        "pools": [
            {
                "name": "nomad-pool",
                "backend": {
                    "kind": "nomad_job",
                    "job": "ocr-workers",
                    "group": "gpu",
                    "address": nomad.url,
                    "retries": 1,
                    "timeout": "2s",
                },
                **common,
            },
            {
                "name": "kube-pool",
                "backend": {
                    "kind": "kubernetes",
                    "name": "ocr",
                    "kubeconfig": str(kubeconfig),
                    "retries": 0,
                    "timeout": "2s",
                },
                **common,
            },
            {
                "name": "aws-pool",
                "backend": {
                    "kind": "aws_asg",
                    "group": "gpu-asg",
                    "region": "us-east-1",
                    "endpoint_url": f"http://127.0.0.1:{closed_port()}",
                    "retries": 0,
                    "timeout": "1s",
                },
                **common,
            },
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


ENV = {
    "SLACK_BOT_TOKEN": DEFAULT_TOKEN,
    "NOMAD_TOKEN": NOMAD_SECRET,
    "PROM_TOKEN": PROM_BEARER,
    "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}


def test_no_secret_reaches_any_output_while_everything_fails(
    tmp_path: Path,
    nomad_api: NomadApiDouble,
    kubernetes_api: KubernetesApiDouble,
    slack_api: SlackApiDouble,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    nomad_api.add_job("ocr-workers", {"gpu": 2})  # the double's token differs: 403
    kubernetes_api.add_deployment("ocr", replicas=2, ready=2)  # our token is unknown: 401
    with PrometheusApiDouble([error_reply(401, "unauthorized", "bad bearer token")]) as prom:
        path = secret_config(tmp_path, prom, nomad_api, kubernetes_api, slack_api)
        clock = SimulatedClock(NOON)
        daemon = Daemon(path, env=ENV, clock=clock)
        results = daemon.tick()
        slack_posted(daemon.runtime.notifier)
        slack_api.fail("invalid_auth")  # Slack refuses the token too
        clock.advance(timedelta(minutes=1))
        prom.replies = [error_reply(503, "timeout", "query timed out")]
        results += daemon.tick()
        slack_posted(daemon.runtime.notifier)
        sent_headers = json.dumps([headers for _, _, headers in prom.requests])
    assert PROM_BEARER in sent_headers  # the token was really in use...
    assert all(r.errors.get("metrics") for r in results)
    assert {"nomad-pool", "kube-pool", "aws-pool"} == {r.pool for r in results if r.errors}
    status = CliRunner().invoke(
        app, ["status", "--config", str(path)], env={**ENV, "COLUMNS": "250"}
    )
    assert status.exit_code in (0, 1) and "nomad-pool" in status.output  # 1: pools failing
    outputs = {
        "logs": caplog.text,
        "decision log": (tmp_path / "decisions.jsonl").read_text(),
        "slack": json.dumps([[m.text, m.blocks] for m in slack_api.messages]),
        "state": (tmp_path / "state" / "state.json").read_text(),
        "status": status.output,
        "metrics": generate_latest(daemon.telemetry.registry).decode(),
        "errors": json.dumps([r.errors for r in results]),
    }
    assert "403" in outputs["decision log"] and "failing" in outputs["slack"]
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret ({secret[:6]}...) leaked into {name}"


# ---- TLS ------------------------------------------------------------------------------


NOMAD = {"kind": "nomad_job", "job": "ocr", "group": "gpu"}
KUBERNETES = {"kind": "kubernetes", "name": "ocr"}
AWS_ASG = {"kind": "aws_asg", "group": "gpu-workers", "region": "us-east-1"}
NOMAD_CLUSTER = {"kind": "nomad_cluster", "asg": "gpu-clients", "aws_region": "us-east-1"}
SIMULATED = {"kind": "simulated"}
NOMAD_LOCK = {"kind": "nomad", "ttl": "2m"}
KUBERNETES_LEASE = {"kind": "kubernetes", "ttl": "2m"}
SLACK = {"channel": "#gpu-autoscaler"}


def write_tls_config(path: Path, blocks: dict[str, dict] | None = None) -> Path:
    """A valid config; `blocks` adds to `metrics`, replaces the pool's `backend` (a Nomad
    job by default) and adds other top-level blocks (`leader_election`, `slack`)."""
    blocks = dict(blocks or {})
    config = {
        "state_dir": str(path.parent),
        "metrics": {
            "kind": "prometheus",
            "url": "https://prometheus.internal:9090",
            **blocks.pop("metrics", {}),
        },
        "pools": [
            {
                "name": "ocr",
                "backend": blocks.pop("backend", NOMAD),
                "demand": {"query": "q"},
                "capacity": {"per_node_rps": 1},
                "max_nodes": 4,
            }
        ],
        **blocks,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_tls_verification_is_on_by_default_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert PrometheusMetrics().verify_tls is True
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with PrometheusSource(PrometheusMetrics(url="https://prometheus.internal:9090")) as source:
        assert source._client._session.verify is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/private-ca.pem")  # as requests reads it
    with PrometheusSource(PrometheusMetrics(url="https://prometheus.internal:9090")) as source:
        assert source._client._session.verify == "/etc/private-ca.pem"
    nomad = NomadJobBackend(kind="nomad_job", job="j", group="g")
    assert nomad.verify_tls is True
    assert nomad_connection(nomad, {"NOMAD_ADDR": "https://nomad.internal:4646"}).verify is True
    assert nomad_connection(nomad, {"NOMAD_CACERT": "/etc/ca.pem"}).verify == "/etc/ca.pem"
    with KubernetesApiDouble() as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        backend = KubernetesBackend(kind="kubernetes", name="ocr", kubeconfig=kubeconfig)
        assert backend.verify_tls is True
        assert connect(backend, {}).api_client.configuration.verify_ssl is True
    # boto3 verifies against botocore's own CA choice, so AWS_CA_BUNDLE still counts.
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/private-ca.pem")
    aws = AwsAsgBackend(**AWS_ASG)
    assert aws.verify_tls is True
    assert _boto_verify(AutoScalingGroup(aws, env=ENV)) == "/etc/private-ca.pem"
    cluster = NomadCluster(NomadClusterBackend(**NOMAD_CLUSTER), env=ENV)
    assert _boto_verify(cluster.group) == "/etc/private-ca.pem"


def test_verify_tls_false_reaches_the_aws_clients_when_spelled_out() -> None:
    off = {"verify_tls": False, "allow_insecure": True}
    assert _boto_verify(AutoScalingGroup(AwsAsgBackend(**AWS_ASG, **off), env=ENV)) is False
    cluster = NomadCluster(NomadClusterBackend(**NOMAD_CLUSTER, **off), env=ENV)
    assert _boto_verify(cluster.group) is False


def _boto_verify(group: AutoScalingGroup) -> object:
    return group.client._endpoint.http_session._verify


# case: (block, its settings, words the refusal must contain)
REFUSED: dict[str, tuple[str, dict, str]] = {
    "prometheus_verify_off": ("metrics", {"verify_tls": False}, "metrics: verify_tls: false"),
    "prometheus_plain_http": (
        "metrics",
        {"url": "http://prometheus.internal:9090"},
        "metrics: url http://prometheus.internal is plain http",
    ),
    "nomad_verify_off": (
        "backend",
        {**NOMAD, "verify_tls": False},
        "pools[0].backend (ocr): verify_tls: false",
    ),
    "nomad_plain_http": (
        "backend",
        {**NOMAD, "address": "http://10.0.0.5:4646"},
        "pools[0].backend (ocr): address http://10.0.0.5 is plain http",
    ),
    "kubernetes_verify_off": (
        "backend",
        {**KUBERNETES, "verify_tls": False},
        "pools[0].backend (ocr): verify_tls: false",
    ),
    "aws_asg_verify_off": (
        "backend",
        {**AWS_ASG, "verify_tls": False},
        "pools[0].backend (ocr): verify_tls: false",
    ),
    "aws_asg_plain_http": (
        "backend",
        {**AWS_ASG, "endpoint_url": "http://vpce.internal:4566"},
        "pools[0].backend (ocr): endpoint_url http://vpce.internal is plain http",
    ),
    "nomad_cluster_aws_plain_http": (
        "backend",
        {**NOMAD_CLUSTER, "aws_endpoint_url": "http://10.1.2.3:4566"},
        "pools[0].backend (ocr): aws_endpoint_url http://10.1.2.3 is plain http",
    ),
    "nomad_cluster_verify_off": (
        "backend",
        {**NOMAD_CLUSTER, "verify_tls": False},
        "pools[0].backend (ocr): verify_tls: false",
    ),
    "nomad_lock_verify_off": (
        "leader_election",
        {**NOMAD_LOCK, "verify_tls": False},
        "leader_election: verify_tls: false",
    ),
    "nomad_lock_plain_http": (
        "leader_election",
        {**NOMAD_LOCK, "address": "http://nomad.internal:4646"},
        "leader_election: address http://nomad.internal is plain http",
    ),
    "kubernetes_lease_verify_off": (
        "leader_election",
        {**KUBERNETES_LEASE, "verify_tls": False},
        "leader_election: verify_tls: false",
    ),
    "slack_plain_http": (
        "slack",
        {**SLACK, "base_url": "http://slack-proxy.internal/api/"},
        "slack: base_url http://slack-proxy.internal is plain http",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_insecure_setting_is_refused_unless_spelled_out(tmp_path: Path, case: str) -> None:
    block, settings, words = REFUSED[case]
    path = write_tls_config(tmp_path / "config.yaml", {block: settings})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert words in str(caught.value) and "allow_insecure: true" in str(caught.value)
    write_tls_config(path, {block: {**settings, "allow_insecure": True}})
    load_config(path)  # spelled out: accepted


@pytest.mark.parametrize(
    ("blocks", "env", "words"),
    [
        (
            {"backend": NOMAD},
            {"NOMAD_ADDR": "http://nomad.internal:4646"},
            "pools[0].backend (ocr): $NOMAD_ADDR http://nomad.internal is plain http",
        ),
        ({"backend": NOMAD}, {"NOMAD_SKIP_VERIFY": "true"}, "(ocr): $NOMAD_SKIP_VERIFY"),
        (
            {"leader_election": NOMAD_LOCK},
            {"NOMAD_ADDR": "http://nomad.internal:4646"},
            "leader_election: $NOMAD_ADDR http://nomad.internal is plain http",
        ),
        (
            {"leader_election": NOMAD_LOCK},
            {"NOMAD_SKIP_VERIFY": "1"},
            "leader_election: $NOMAD_SKIP",
        ),
    ],
)
def test_insecure_nomad_environment_stops_the_daemon_from_starting(
    tmp_path: Path, blocks: dict[str, dict], env: dict[str, str], words: str
) -> None:
    """`blocks` holds the one block that talks to Nomad; the pool is simulated otherwise."""
    path = write_tls_config(tmp_path / "config.yaml", {"backend": SIMULATED, **blocks})
    with pytest.raises(ConfigError, match="insecure transport refused") as caught:
        Daemon(path, env=env)
    assert words in str(caught.value)
    result = CliRunner().invoke(app, ["run", "--once", "--config", str(path)], env=env)
    assert result.exit_code == 2 and "insecure transport refused" in result.output
    allowed = {name: {**block, "allow_insecure": True} for name, block in blocks.items()}
    write_tls_config(path, {"backend": SIMULATED, **allowed})
    assert not insecure_settings(load_config(path), env)


def test_the_environment_of_a_kubernetes_lease_is_not_nomads(tmp_path: Path) -> None:
    path = write_tls_config(
        tmp_path / "config.yaml", {"backend": SIMULATED, "leader_election": KUBERNETES_LEASE}
    )
    env = {"NOMAD_ADDR": "http://nomad.internal:4646", "NOMAD_SKIP_VERIFY": "true"}
    assert not insecure_settings(load_config(path), env)


URL_SETTINGS = {
    "metrics": lambda url: {"metrics": {"url": url}},
    "aws_asg": lambda url: {"backend": {**AWS_ASG, "endpoint_url": url}},
    "nomad_cluster": lambda url: {"backend": {**NOMAD_CLUSTER, "aws_endpoint_url": url}},
    "nomad_lock": lambda url: {"leader_election": {**NOMAD_LOCK, "address": url}},
    "slack": lambda url: {"slack": {**SLACK, "base_url": url}},
}


@pytest.mark.parametrize("where", sorted(URL_SETTINGS))
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9090", "http://localhost:9090", "http://[::1]:9090", "https://prom:9090"],
)
def test_loopback_or_https_needs_nothing_spelled_out(tmp_path: Path, where: str, url: str) -> None:
    path = write_tls_config(tmp_path / "config.yaml", URL_SETTINGS[where](url))
    assert not insecure_settings(load_config(path), {"NOMAD_ADDR": "http://127.0.0.1:4646"})
