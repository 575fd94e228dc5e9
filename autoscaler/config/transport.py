"""Refuse to talk to a fleet, metrics, lock or chat server insecurely unless the config says so.

TLS verification is on by default everywhere. Turning it off (`verify_tls: false`,
NOMAD_SKIP_VERIFY) or sending a credential over plain http to another machine must be
spelled out with `allow_insecure: true` on that block: a copied test setting must
not quietly ship a Nomad ACL token, a Slack bot token or a signed AWS request (with
its session token) in clear text. Plain http to loopback is fine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel

from common.transport import plain_http_finding, proxy_finding

if TYPE_CHECKING:  # the schema calls these checks: no import back at run time
    from autoscaler.config.metrics_source import MetricsConfig
    from autoscaler.config.reporting import SlackConfig
    from autoscaler.config.schema import Config


def insecure_settings(config: Config, env: Mapping[str, str]) -> list[str]:
    """Every connection that would skip TLS verification or send credentials in the clear
    to another host, unless its block says `allow_insecure: true`.

    `env` supplies what the Nomad CLI reads (NOMAD_ADDR, NOMAD_SKIP_VERIFY); loading the
    file checks with an empty env, starting the daemon checks again with the real one.
    Each backend checks its own connections (backends.settings.TlsApiCalls).
    """
    found = _metrics_findings(config.metrics)
    for i, pool in enumerate(config.pools):
        found += pool.backend.insecure_findings(f"pools[{i}].backend ({pool.name})", env)
    if config.leader_election is not None:
        found += config.leader_election.insecure_findings(env)
    if config.slack is not None:
        found += _slack_findings(config.slack)
    return found + proxy_findings(config, env)


def proxy_findings(config: Config, env: Mapping[str, str]) -> list[str]:
    """Plain-http endpoints (loopback ones too, which need nothing on their own) that a
    plain-http proxy from the environment would relay, tokens and all."""
    if not any(k.lower() in ("http_proxy", "all_proxy") for k in env):
        return []
    found = []
    for where, block in _blocks(config):
        if getattr(block, "allow_insecure", False):
            continue
        for name in type(block).model_fields:
            value = getattr(block, name)
            if name == "address" and value is None and str(getattr(block, "kind", "")) in NOMAD:
                value = env.get("NOMAD_ADDR") or "http://127.0.0.1:4646"  # the CLI default
            if isinstance(value, str) and "://" in value:
                found += proxy_finding(value, f"{where}: {name}", env)
    return found


NOMAD = ("nomad", "nomad_job", "nomad_cluster")


def _blocks(config: Config) -> list[tuple[str, BaseModel]]:
    """Each block that may hold an endpoint, with the name its findings give it."""
    blocks: list[tuple[str, BaseModel]] = [("metrics", config.metrics)]
    blocks += [(f"pools[{i}].backend ({p.name})", p.backend) for i, p in enumerate(config.pools)]
    if config.leader_election is not None:
        blocks.append(("leader_election", config.leader_election))
    if config.slack is not None:
        blocks.append(("slack", config.slack))
    return blocks


def _metrics_findings(metrics: MetricsConfig) -> list[str]:
    if metrics.kind != "prometheus" or metrics.allow_insecure:
        return []
    found = [] if metrics.verify_tls else ["metrics: verify_tls: false"]
    return found + plain_http_finding(metrics.url, "metrics: url")


def _slack_findings(slack: SlackConfig) -> list[str]:
    """The bot token rides in every request's Authorization header."""
    return [] if slack.allow_insecure else plain_http_finding(slack.base_url, "slack: base_url")


def refusal_text(insecure: list[str]) -> str:
    return (
        "insecure transport refused: "
        + "; ".join(insecure)
        + ". Use https with verification (ca_file or NOMAD_CACERT for a private CA), "
        "or accept the risk with allow_insecure: true on that block"
    )
