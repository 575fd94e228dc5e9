"""What a Prometheus query carries besides the query: credentials, client certificate, headers.

Secrets come from the environment or from files only (the config names where, never
what), and every error names the variable or the file, never its content. Mimir and
Thanos behind a gateway take basic auth or a bearer token, a TLS client certificate,
and a tenant header (X-Scope-OrgID).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from autoscaler.config.metrics_source import HEADER_VALUE, PrometheusMetrics
from common.secrets import remember, remember_basic_auth, remember_url
from common.small_files import CREDENTIAL_MAX_BYTES, read_small_text

_SECRET_HEADER = re.compile(r"auth|token|key|secret|password|cookie", re.I)


class CredentialError(ValueError):
    """A credential the config names cannot be read; the text names where, not what."""

    def __init__(self, where: str, reason: str) -> None:
        self.loc = tuple(where.split("."))
        """The config field that names the credential, e.g. (metrics, basic_auth, password_env)."""
        self.reason = reason
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class QueryCredentials:
    headers: dict[str, str] = field(default_factory=dict)
    basic_auth: tuple[str, str] | None = None
    client_cert: tuple[str, str] | None = None

    def __repr__(self) -> str:  # never print a secret, even in a traceback's locals
        auth = "basic" if self.basic_auth else ("bearer" if "Authorization" in self.headers else "")
        return f"QueryCredentials(auth={auth or 'none'}, client_cert={bool(self.client_cert)})"


class CredentialSession(requests.Session):
    """A session that drops, on a redirect to another host, every header named like a
    credential (X-Api-Key, X-Auth-Token), as requests drops only Authorization."""

    def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in [name for name in prepared_request.headers if _SECRET_HEADER.search(name)]:
                del prepared_request.headers[name]
        super().rebuild_auth(prepared_request, response)


def query_credentials(config: PrometheusMetrics, env: Mapping[str, str]) -> QueryCredentials:
    """Read every secret the metrics block names, or say which one is missing (or which
    certificate file)."""
    headers = dict(config.headers)
    token = _bearer_token(config, env)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    basic = None
    if config.basic_auth is not None:
        auth = config.basic_auth
        password = (
            read_secret_file(auth.password_file, "metrics.basic_auth.password_file")
            if auth.password_file is not None
            else read_secret_env(env, auth.password_env or "", "metrics.basic_auth.password_env")
        )
        basic = (auth.username, password)
    if config.verify_tls and config.ca_file is not None and not config.ca_file.is_dir():
        # requests looks for it at each query: a missing one failed every tick, not the start
        _readable(config.ca_file, "metrics.ca_file")
    cert = None
    if config.client_cert is not None:
        pair = config.client_cert
        for path, where in ((pair.cert_file, "cert_file"), (pair.key_file, "key_file")):
            _readable(path, f"metrics.client_cert.{where}")
        cert = (str(pair.cert_file), str(pair.key_file))
    if basic:
        remember_basic_auth(*basic)
    remember_url(config.url)
    remember(*(value for name, value in headers.items() if _SECRET_HEADER.search(name)))
    return QueryCredentials(headers, basic, cert)


def _bearer_token(config: PrometheusMetrics, env: Mapping[str, str]) -> str | None:
    """The token, if one is named and set; one that cannot go in a header (requests and
    http.client refuse it at every query) stops the start instead."""
    if config.bearer_token_file is not None:
        where, holder = "metrics.bearer_token_file", str(config.bearer_token_file)
        token: str | None = read_secret_file(config.bearer_token_file, where)
    elif config.bearer_token_env is not None:
        # Unset or empty stops the start, as password_env and README say: read as "no
        # token", every query met a 401 and the pool held on missing metrics for ever.
        where, holder = (
            "metrics.bearer_token_env",
            f"environment variable {config.bearer_token_env}",
        )
        token = read_secret_env(env, config.bearer_token_env, where)
    else:
        return None
    if token and not HEADER_VALUE.fullmatch(token):
        raise CredentialError(
            where,
            f"{holder} holds a token an HTTP header cannot carry (a second line, a control "
            "character or one outside Latin-1)",
        )
    return token


def read_secret_env(env: Mapping[str, str], name: str, where: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise CredentialError(where, f"environment variable {name} is not set or empty")
    return value


def read_secret_file(path: Path, where: str) -> str:
    text = _readable(path, where)
    value = text.strip()
    if not value:
        raise CredentialError(where, f"{path} is empty")
    return value


def _readable(path: Path, where: str) -> str:
    try:
        return read_small_text(path, CREDENTIAL_MAX_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise CredentialError(where, f"{path} cannot be read ({reason})") from None
