"""Where demand is read from: Prometheus (with its TLS and auth) or a replayed trace.

Its own room because the credential rules (no inline secrets, one Authorization
header) are the config's most delicate part and are read by metrics_auth too.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from common.durations import PositiveDuration
from common.settings import ApiUrl, EnvName, Strict
from common.transport import HEADER_NAME, HEADER_VALUE

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class BasicAuth(Strict):
    """HTTP basic auth; the password comes from the environment or a file, never inline."""

    username: str = Field(min_length=1)
    password_env: EnvName | None = None
    password_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "a password is never written in the config: give password_env (a variable "
                "name) or password_file"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> BasicAuth:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        return self


class ClientCertificate(Strict):
    """A TLS client certificate and its (unencrypted) key, both PEM files."""

    cert_file: Path
    key_file: Path


class PrometheusMetrics(Strict):
    kind: Literal["prometheus"] = "prometheus"
    url: ApiUrl = "http://127.0.0.1:9090"
    timeout: PositiveDuration = timedelta(seconds=10)
    max_staleness: PositiveDuration = Field(
        default=timedelta(minutes=5),
        description="newest sample older than this is stale: the tick holds",
    )
    verify_tls: bool = True
    ca_file: Path | None = None
    bearer_token_env: EnvName | None = None
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None
    client_cert: ClientCertificate | None = None
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="sent with every query, e.g. Mimir's X-Scope-OrgID; never a credential",
    )
    allow_insecure: bool = Field(
        default=False, description="accept verify_tls: false or plain http to another host"
    )

    @field_validator("url")
    @classmethod
    def _api_path_appended(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            # prometheus-api-client appends /api/v1/query_range: every query would miss it
            raise ValueError(
                "must not have a query string or fragment (the API path is added after the "
                "URL); send a tenant as a header instead"
            )
        return url

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not re.match(HEADER_NAME, name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if name.lower() in SECRET_HEADERS:
                raise ValueError(
                    f"{name} carries a credential, which is never written in the config: use "
                    "basic_auth (password_env/password_file) or bearer_token_env/bearer_token_file"
                )
            if not HEADER_VALUE.fullmatch(value):
                # else every query fails (a misleading "not a successful answer")
                raise ValueError(
                    f"header {name} must be one line of printable Latin-1 characters, "
                    "not starting with a space"
                )
        return headers

    @model_validator(mode="after")
    def _one_authorization(self) -> PrometheusMetrics:
        sources = [
            name
            for name in ("bearer_token_env", "bearer_token_file", "basic_auth")
            if getattr(self, name) is not None
        ]
        if len(sources) > 1:
            raise ValueError(f"give at most one of {', '.join(sources)}: one Authorization header")
        return self


class ReplayMetrics(Strict):
    """A per-minute trace CSV (timestamp,requests) replayed as the metrics source."""

    kind: Literal["replay"]
    trace: Path
    max_staleness: PositiveDuration = timedelta(minutes=5)


MetricsConfig = Annotated[PrometheusMetrics | ReplayMetrics, Field(discriminator="kind")]
