"""Refuse to talk to a fleet or metrics server insecurely unless the config says so.

TLS verification is on by default everywhere. Turning it off (`verify_tls: false`,
NOMAD_SKIP_VERIFY) or sending a token over plain http to another machine must be
spelled out with `allow_insecure: true` on that block: a copied test setting must
not quietly ship a Nomad ACL token in clear text. Plain http to loopback is fine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from autoscaler.config import (
    Config,
    KubernetesBackend,
    NomadClusterBackend,
    NomadJobBackend,
    PrometheusMetrics,
)


def insecure_settings(config: Config, env: Mapping[str, str]) -> list[str]:
    """Every connection that would skip TLS verification or send credentials in the clear
    to another host, unless its block says `allow_insecure: true`.

    `env` supplies what the Nomad CLI reads (NOMAD_ADDR, NOMAD_SKIP_VERIFY); loading the
    file checks with an empty env, starting the daemon checks again with the real one.
    """
    found: list[str] = []
    metrics = config.metrics
    if isinstance(metrics, PrometheusMetrics) and not metrics.allow_insecure:
        if not metrics.verify_tls:
            found.append("metrics: verify_tls: false")
        if plain_http_elsewhere(metrics.url):
            found.append(f"metrics: url {_scheme_host(metrics.url)} is plain http")
    for i, pool in enumerate(config.pools):
        backend = pool.backend
        where = f"pools[{i}].backend ({pool.name})"
        if isinstance(backend, NomadJobBackend | NomadClusterBackend | KubernetesBackend):
            if backend.allow_insecure:
                continue
            if not backend.verify_tls:
                found.append(f"{where}: verify_tls: false")
        if isinstance(backend, NomadJobBackend | NomadClusterBackend):
            address = backend.address or env.get("NOMAD_ADDR")
            if address and plain_http_elsewhere(address):
                source = "address" if backend.address else "$NOMAD_ADDR"
                found.append(f"{where}: {source} {_scheme_host(address)} is plain http")
            skip = env.get("NOMAD_SKIP_VERIFY", "").strip().lower()
            if skip in ("1", "true", "t", "yes", "y", "on"):
                found.append(f"{where}: $NOMAD_SKIP_VERIFY turns TLS verification off")
    return found


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
