"""Refuse to talk to a fleet, metrics, lock or chat server insecurely unless the config says so.

TLS verification is on by default everywhere. Turning it off (`verify_tls: false`,
NOMAD_SKIP_VERIFY) or sending a credential over plain http to another machine must be
spelled out with `allow_insecure: true` on that block: a copied test setting must
not quietly ship a Nomad ACL token, a Slack bot token or a signed AWS request (with
its session token) in clear text. Plain http to loopback is fine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from autoscaler.config.schema import (
    AwsAsgBackend,
    BackendConfig,
    Config,
    LeaderElection,
    MetricsConfig,
    NomadClusterBackend,
    NomadJobBackend,
    PrometheusMetrics,
    SlackConfig,
    TlsApiCalls,
)

_TRUE_WORDS = ("1", "true", "t", "yes", "y", "on")


def insecure_settings(config: Config, env: Mapping[str, str]) -> list[str]:
    """Every connection that would skip TLS verification or send credentials in the clear
    to another host, unless its block says `allow_insecure: true`.

    `env` supplies what the Nomad CLI reads (NOMAD_ADDR, NOMAD_SKIP_VERIFY); loading the
    file checks with an empty env, starting the daemon checks again with the real one.
    """
    found = _metrics_findings(config.metrics)
    for i, pool in enumerate(config.pools):
        found += _backend_findings(pool.backend, f"pools[{i}].backend ({pool.name})", env)
    if config.leader_election is not None:
        found += _leader_findings(config.leader_election, env)
    if config.slack is not None:
        found += _slack_findings(config.slack)
    return found


def _metrics_findings(metrics: MetricsConfig) -> list[str]:
    if not isinstance(metrics, PrometheusMetrics) or metrics.allow_insecure:
        return []
    found = [] if metrics.verify_tls else ["metrics: verify_tls: false"]
    return found + _plain_http_finding(metrics.url, "metrics: url")


def _backend_findings(backend: BackendConfig, where: str, env: Mapping[str, str]) -> list[str]:
    if not isinstance(backend, TlsApiCalls) or backend.allow_insecure:
        return []
    found = [] if backend.verify_tls else [f"{where}: verify_tls: false"]
    if isinstance(backend, NomadJobBackend | NomadClusterBackend):
        found += _nomad_findings(backend.address, where, env)
    if isinstance(backend, AwsAsgBackend):
        found += _plain_http_finding(backend.endpoint_url, f"{where}: endpoint_url")
    if isinstance(backend, NomadClusterBackend):
        found += _plain_http_finding(backend.aws_endpoint_url, f"{where}: aws_endpoint_url")
    return found


def _leader_findings(election: LeaderElection, env: Mapping[str, str]) -> list[str]:
    """The Nomad lock carries the Nomad ACL token; the Lease, the Kubernetes credentials."""
    if election.allow_insecure:
        return []
    where = "leader_election"
    found = [] if election.verify_tls else [f"{where}: verify_tls: false"]
    if election.kind == "nomad":
        found += _nomad_findings(election.address, where, env)
    return found


def _slack_findings(slack: SlackConfig) -> list[str]:
    """The bot token rides in every request's Authorization header."""
    return [] if slack.allow_insecure else _plain_http_finding(slack.base_url, "slack: base_url")


def _nomad_findings(address: str | None, where: str, env: Mapping[str, str]) -> list[str]:
    """The address (else $NOMAD_ADDR, as the Nomad CLI reads it) and $NOMAD_SKIP_VERIFY."""
    source = "address" if address else "$NOMAD_ADDR"
    found = _plain_http_finding(address or env.get("NOMAD_ADDR"), f"{where}: {source}")
    if nomad_skip_verify(env):
        found.append(f"{where}: $NOMAD_SKIP_VERIFY turns TLS verification off")
    return found


def nomad_skip_verify(env: Mapping[str, str]) -> bool:
    """$NOMAD_SKIP_VERIFY as the Nomad CLI reads it: a true-ish word turns TLS checks off."""
    return env.get("NOMAD_SKIP_VERIFY", "").strip().lower() in _TRUE_WORDS


def _plain_http_finding(url: str | None, what: str) -> list[str]:
    if url and plain_http_elsewhere(url):
        return [f"{what} {_scheme_host(url)} is plain http"]
    return []


def refusal_text(insecure: list[str]) -> str:
    return (
        "insecure transport refused: "
        + "; ".join(insecure)
        + ". Use https with verification (ca_file or NOMAD_CACERT for a private CA), "
        "or accept the risk with allow_insecure: true on that block"
    )


def plain_http_elsewhere(url: str) -> bool:
    """Plain http to a host other than this machine: tokens would cross the network in clear."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _scheme_host(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.scheme}://{parts.hostname or ''}"
