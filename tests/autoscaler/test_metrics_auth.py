"""Prometheus behind auth: basic auth, TLS client certificates, bearer tokens from files,
custom headers (Mimir's X-Scope-OrgID), secrets only from the environment or files.

The auth tests run against a real Prometheus (Debian's package) started with
--web.config.file: TLS with a certificate made here for 127.0.0.1, client certificates
required and verified against a CA made here, and basic auth with a bcrypt hash.
Headers are checked on the query_range HTTP double (a real Prometheus ignores them).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.metrics import MetricsError
from autoscaler.metrics_auth import CredentialError, query_credentials
from autoscaler.metrics_prometheus import PrometheusSource
from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble
from tests.doubles.prometheus_server import (
    PrometheusApiDouble,
    PrometheusProcess,
    error_reply,
    matrix_reply,
    require_prometheus,
    start_prometheus,
)

PASSWORD = "s3cret-Pa55-word-xyzzy"
USER = "autoscaler"
WIDE_USER, WIDE_PASSWORD = "opérateur", "Mötley-€-Kz8Qy3Wv"  # beyond ASCII, and Latin-1
MINUTE = timedelta(minutes=1)


# ---- certificates ------------------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass(frozen=True)
class SecuredPrometheus:
    url: str
    ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


@pytest.fixture(scope="module")
def secured_prometheus(tmp_path_factory: pytest.TempPathFactory):
    prometheus, _ = require_prometheus()
    tmp = tmp_path_factory.mktemp("secured-prometheus")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("test CA", ca_key, None, ca=True)
    _write(tmp / "ca", ca_cert, ca_key)
    issuer = (ca_cert.subject, ca_key)
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(tmp / name, _certificate(name, key, issuer, server=server), key)
    stranger_key = ec.generate_private_key(ec.SECP256R1())  # self-signed: not from the CA
    _write(tmp / "stranger", _certificate("stranger", stranger_key, None), stranger_key)
    hashed, wide = (
        bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4)).decode()
        for secret in (PASSWORD, WIDE_PASSWORD)
    )
    web = tmp / "web.yml"
    web.write_text(
        textwrap.dedent(f"""\
        tls_server_config:
          cert_file: {tmp / "server.crt"}
          key_file: {tmp / "server.key"}
          client_auth_type: RequireAndVerifyClientCert
          client_ca_file: {tmp / "ca.crt"}
        basic_auth_users:
          {USER}: {hashed}
          {WIDE_USER}: {wide}
        """)
    )
    client = (str(tmp / "client.crt"), str(tmp / "client.key"))

    def ready(url: str) -> bool:
        try:
            answer = requests.get(
                f"{url}/-/ready",
                verify=str(tmp / "ca.crt"),
                cert=client,
                auth=(USER, PASSWORD),
                timeout=1,
            )
        except requests.RequestException:
            return False
        return answer.status_code == 200

    server: PrometheusProcess = start_prometheus(
        prometheus, tmp / "data", tmp, web_config=web, scheme="https", ready=ready
    )
    try:
        yield SecuredPrometheus(
            server.url,
            tmp / "ca.crt",
            tmp / "client.crt",
            tmp / "client.key",
            tmp / "stranger.crt",
            tmp / "stranger.key",
        )
    finally:
        server.stop()


def metrics_config(server: SecuredPrometheus, **changes: object) -> PrometheusMetrics:
    settings: dict[str, object] = {
        "url": server.url,
        "ca_file": server.ca,
        "timeout": timedelta(seconds=5),
        "basic_auth": {"username": USER, "password_env": "PROM_PASSWORD"},
        "client_cert": {"cert_file": server.client_cert, "key_file": server.client_key},
    }
    settings.update(changes)
    return PrometheusMetrics.model_validate({k: v for k, v in settings.items() if v is not None})


def query(config: PrometheusMetrics, env: dict[str, str]):
    now = datetime.now(UTC).replace(microsecond=0)
    with PrometheusSource(config, env=env) as source:
        return source.demand("vector(4.5)", now - 5 * MINUTE, now, MINUTE)


# ---- against a real Prometheus with --web.config.file --------------------------------


def test_basic_auth_and_client_certificate_reach_a_secured_prometheus(
    secured_prometheus: SecuredPrometheus,
) -> None:
    series = query(metrics_config(secured_prometheus), {"PROM_PASSWORD": PASSWORD})
    assert len(series) == 6
    assert set(series.tolist()) == {4.5}


def test_password_from_a_file_works_too(
    secured_prometheus: SecuredPrometheus, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    auth = {"username": USER, "password_file": secret}
    series = query(metrics_config(secured_prometheus, basic_auth=auth), {})
    assert set(series.tolist()) == {4.5}


def test_a_password_file_rotated_under_the_source_is_read_again(
    secured_prometheus: SecuredPrometheus, tmp_path: Path
) -> None:
    """metrics.basic_auth.password_file rewritten by an agent (vault-agent) after the
    password changed: the source kept the one it read at start, so every query was a 401
    and every pool held, blind, until a restart. A 401 now reads the files again and, where
    they hold another credential, asks once more with it."""
    secret = tmp_path / "password"
    secret.write_text("Rq8vTn3Lx6Wd-old\n")
    auth = {"username": USER, "password_file": secret}
    now = datetime.now(UTC).replace(microsecond=0)
    with PrometheusSource(metrics_config(secured_prometheus, basic_auth=auth), env={}) as source:
        secret.write_text(PASSWORD + "\n")
        series = source.demand("vector(4.5)", now - 5 * MINUTE, now, MINUTE)
    assert set(series.tolist()) == {4.5}


def test_a_user_and_password_beyond_ascii_are_sent_in_utf8(
    secured_prometheus: SecuredPrometheus,
) -> None:
    """Prometheus checks the bcrypt hash of the UTF-8 bytes (RFC 7617's charset): requests
    sent a str in Latin-1 (a 401 for the right password) or, for "€", nothing at all (every
    query failed as 'not a successful Prometheus JSON answer')."""
    auth = {"username": WIDE_USER, "password_env": "PROM_PASSWORD"}
    config = metrics_config(secured_prometheus, basic_auth=auth)
    series = query(config, {"PROM_PASSWORD": WIDE_PASSWORD})
    assert set(series.tolist()) == {4.5}


def test_a_wrong_password_is_a_401_naming_where_it_came_from_never_the_secret(
    secured_prometheus: SecuredPrometheus,
) -> None:
    wrong = "wrong-" + PASSWORD
    with pytest.raises(MetricsError) as caught:
        query(metrics_config(secured_prometheus), {"PROM_PASSWORD": wrong})
    text = str(caught.value)
    assert caught.value.kind == "bad_response"
    assert "HTTP 401" in text and "$PROM_PASSWORD" in text and repr(USER) in text
    assert wrong not in text and PASSWORD not in text


def test_no_basic_auth_is_refused(secured_prometheus: SecuredPrometheus) -> None:
    with pytest.raises(MetricsError, match="HTTP 401"):
        query(metrics_config(secured_prometheus, basic_auth=None), {})


@pytest.mark.parametrize("which", ["none", "stranger"])
def test_without_a_trusted_client_certificate_the_handshake_fails(
    secured_prometheus: SecuredPrometheus, which: str
) -> None:
    server = secured_prometheus
    cert = (
        None
        if which == "none"
        else {"cert_file": server.stranger_cert, "key_file": server.stranger_key}
    )
    with pytest.raises(MetricsError) as caught:
        query(metrics_config(server, client_cert=cert), {"PROM_PASSWORD": PASSWORD})
    assert caught.value.kind == "unreachable"
    assert "client_cert" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_missing_secret_stops_the_source_naming_the_variable_or_file(
    secured_prometheus: SecuredPrometheus, tmp_path: Path
) -> None:
    with pytest.raises(CredentialError, match=r"password_env: environment variable PROM_PASSWORD"):
        PrometheusSource(metrics_config(secured_prometheus), env={})
    gone = tmp_path / "no-such-key.pem"
    cert = {"cert_file": secured_prometheus.client_cert, "key_file": gone}
    with pytest.raises(CredentialError, match=r"client_cert.key_file: .*no-such-key.pem"):
        PrometheusSource(
            metrics_config(secured_prometheus, client_cert=cert), env={"PROM_PASSWORD": "x"}
        )


@pytest.mark.parametrize("token", ["tok-Hw4Rn8Qz\n# rotated 2026-01", "tok-Hw4Rn8Qz-€"])
def test_a_token_no_header_can_carry_stops_the_source_naming_where_never_the_token(
    tmp_path: Path, token: str
) -> None:
    """A second line in the token file (or a character outside Latin-1) passed the start,
    then every query failed as 'HTTP request failed (InvalidHeader)' or 'not a successful
    Prometheus JSON answer', naming no setting."""
    secret = tmp_path / "token"
    secret.write_text(token + "\n")
    for settings, env, where in (
        ({"bearer_token_file": secret}, {}, f"metrics.bearer_token_file: {secret} holds"),
        ({"bearer_token_env": "PROM_TOKEN"}, {"PROM_TOKEN": token}, "variable PROM_TOKEN holds"),
    ):
        config = PrometheusMetrics(url="https://prometheus.example:9090", **settings)
        with pytest.raises(CredentialError) as caught:
            PrometheusSource(config, env=env)
        assert where in str(caught.value) and "cannot carry" in str(caught.value)
        assert "Hw4Rn8Qz" not in str(caught.value)


def test_a_secret_file_that_is_a_fifo_is_refused_at_once(
    secured_prometheus: SecuredPrometheus, tmp_path: Path
) -> None:
    """A FIFO in place of the password file would hold the start (or a reload) until a
    writer came; it is refused, naming the file and what it is."""
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    auth = {"username": "autoscaler", "password_file": str(fifo)}
    with pytest.raises(
        CredentialError, match=r"password.*cannot be read \(not a regular file \(a FIFO"
    ):
        PrometheusSource(metrics_config(secured_prometheus, basic_auth=auth), env={})


# ---- headers and the config's rules ---------------------------------------------------


def test_custom_headers_and_a_bearer_token_file_are_sent(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    with PrometheusApiDouble([matrix_reply()]) as double:
        config = PrometheusMetrics(
            url=double.url,
            headers={"X-Scope-OrgID": "tenant-a"},
            bearer_token_file=token,
        )
        with PrometheusSource(config, env={}) as source:
            now = datetime.now(UTC)
            source.demand("up", now - MINUTE, now, MINUTE)
    headers = double.requests[0][2]
    assert headers["X-Scope-OrgID"] == "tenant-a"
    assert headers["Authorization"] == "Bearer tok-from-file"


def test_a_bearer_token_file_rotated_is_sent_after_a_401(tmp_path: Path) -> None:
    """A gateway refusing the token read at start (401), the file holding the next one:
    the query is asked once more with it, the tenant header kept."""
    token = tmp_path / "token"
    token.write_text("Wc4nRz8Tq1Ym-old\n")
    refused = error_reply(401, "unauthorized", "token expired")
    with PrometheusApiDouble([refused, matrix_reply()]) as double:
        config = PrometheusMetrics(
            url=double.url, headers={"X-Scope-OrgID": "tenant-a"}, bearer_token_file=token
        )
        with PrometheusSource(config, env={}) as source:
            token.write_text("Gx7kPs2Vb5Hd-new\n")
            now = datetime.now(UTC)
            assert source.demand("up", now - MINUTE, now, MINUTE).notna().all()
    sent = [headers["Authorization"] for _, _, headers in double.requests]
    assert sent == ["Bearer Wc4nRz8Tq1Ym-old", "Bearer Gx7kPs2Vb5Hd-new"]
    assert double.requests[1][2]["X-Scope-OrgID"] == "tenant-a"


class _Redirecting(JsonApiHandler):
    """Answers every request with a 307 to the same path on the double's `target`."""

    def serve(self, request: IncomingRequest) -> None:
        target = self.server.double.target  # type: ignore[attr-defined]
        self.send_bytes(307, b"", "text/plain", {"Location": target + self.path})


def test_no_credential_header_follows_a_redirect_to_another_host() -> None:
    """A Prometheus URL answering 307 to another host (the double at `localhost`, not
    127.0.0.1): requests drops Authorization there, but a header named like a credential
    (X-Api-Key, here given with the tenant's) went along. Now it stays; the tenant goes."""
    with (
        PrometheusApiDouble([matrix_reply()]) as elsewhere,
        LoopbackDouble(_Redirecting) as redirecting,
    ):
        redirecting.target = elsewhere.url.replace("127.0.0.1", "localhost")  # type: ignore[attr-defined]
        headers = {"X-Scope-OrgID": "tenant-a", "X-Api-Key": "key-Qm7Rz2Wx9Vb4Tn6K"}
        config = PrometheusMetrics(url=redirecting.url, headers=headers)
        with PrometheusSource(config, env={}) as source:
            now = datetime.now(UTC)
            source.demand("up", now - MINUTE, now, MINUTE)
    sent = elsewhere.requests[0][2]
    assert sent["X-Scope-OrgID"] == "tenant-a"
    assert "X-Api-Key" not in sent and "key-Qm7Rz2Wx9Vb4Tn6K" not in str(sent)


class _OAuthProxy(JsonApiHandler):
    """An OAuth proxy in front of Prometheus, as oauth2-proxy documents it with
    --skip-provider-button: a request without its session cookie gets a 302 to
    /oauth2/start?rd=<path>, which gets a 302 to the provider's /authorize (another host,
    here `localhost`) with client_id and state; the provider answers its login page (the
    double's `login_status`, 200 or 403) in HTML."""

    def serve(self, request: IncomingRequest) -> None:
        double = self.server.double  # type: ignore[attr-defined]
        if request.path == "/oauth2/start":
            login = f"{double.url.replace('127.0.0.1', 'localhost')}/authorize"
            location = f"{login}?client_id=autoscaler&state={OAUTH_STATE}"
            self.send_bytes(302, b"", "text/html", {"Location": location})
        elif request.path == "/authorize":
            page = b"<!DOCTYPE html><html><body><form>Sign in with SSO</form></body></html>"
            self.send_bytes(double.login_status, page, "text/html; charset=utf-8")
        else:
            rd = self.path.replace("/", "%2F").replace("?", "%3F")
            self.send_bytes(302, b"", "text/html", {"Location": f"/oauth2/start?rd={rd}"})


OAUTH_STATE = "st-Hq4Rk9Xz2Vm7Lp3"


@pytest.mark.parametrize(
    ("login_status", "said"),
    [
        (200, "response is not JSON but text/html after a redirect to {login}: not "),
        (403, "HTTP 403 from {url}/prometheus after a redirect to {login} (check "),
    ],
)
def test_a_login_page_after_a_redirect_says_where_the_query_was_sent(
    login_status: int, said: str
) -> None:
    """Prometheus behind an OAuth proxy the daemon has no session for: the query ends on
    the provider's HTML login page. It said only 'response is not JSON' (or an HTTP 403
    'from' metrics.url): now where the redirect led, without its state or the token."""
    with LoopbackDouble(_OAuthProxy) as proxy:
        proxy.login_status = login_status  # type: ignore[attr-defined]
        config = PrometheusMetrics(url=f"{proxy.url}/prometheus", bearer_token_env="PROM_TOKEN")
        with (
            PrometheusSource(config, env={"PROM_TOKEN": "tok-Bv8Nq2Zr5Wk1"}) as source,
            pytest.raises(MetricsError) as caught,
        ):
            now = datetime.now(UTC)
            source.demand("sum(rate(x[5m]))", now - MINUTE, now, MINUTE)
    login = f"{proxy.url.replace('127.0.0.1', 'localhost')}/authorize"
    assert caught.value.kind == "bad_response"
    assert said.format(url=proxy.url, login=login) in caught.value.reason
    assert OAUTH_STATE not in str(caught.value) and "tok-Bv8Nq2Zr5Wk1" not in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        pytest.param(
            {"basic_auth": {"username": "u", "password": "p"}}, "never written", id="inline-pw"
        ),
        pytest.param({"headers": {"Authorization": "Bearer x"}}, "credential", id="auth-header"),
        pytest.param({"headers": {"bad name": "x"}}, "not an HTTP header", id="header-name"),
        pytest.param({"url": "https://mimir.example/prometheus?org=a"}, "query", id="url-query"),
        pytest.param({"url": "https://mimir.example/prometheus#a"}, "fragment", id="url-fragment"),
        pytest.param({"headers": {"X-A": "a\r\nX-B: b"}}, "one line", id="header-injection"),
        pytest.param({"headers": {"X-Scope-OrgID": "租户"}}, "Latin-1", id="header-not-latin-1"),
        pytest.param({"headers": {"X-A": " lead"}}, "starting with a space", id="header-space"),
        pytest.param({"headers": {"X-A": "a\x00b"}}, "printable", id="header-control"),
        pytest.param(
            {"bearer_token_env": "T", "basic_auth": {"username": "u", "password_env": "P"}},
            "at most one",
            id="two-authorizations",
        ),
        pytest.param(
            {"basic_auth": {"username": "u", "password_env": "P", "password_file": "f"}},
            "exactly one",
            id="two-password-sources",
        ),
    ],
)
def test_config_refuses_inline_secrets_and_unclear_auth(
    settings: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValidationError, match=needle):
        PrometheusMetrics.model_validate(settings)


def test_credentials_never_show_in_their_repr() -> None:
    config = PrometheusMetrics(basic_auth={"username": "u", "password_env": "P"})
    credentials = query_credentials(config, {"P": PASSWORD})
    assert credentials.basic_auth == ("u", PASSWORD)
    assert PASSWORD not in repr(credentials)


def test_validate_names_the_line_of_an_unset_password_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROM_PASSWORD_UNSET", raising=False)
    path = tmp_path / "autoscaler.yaml"
    path.write_text(
        textwrap.dedent("""\
        metrics:
          kind: prometheus
          url: https://mimir.example.com/prometheus
          headers: {X-Scope-OrgID: tenant-a}
          basic_auth:
            username: autoscaler
            password_env: PROM_PASSWORD_UNSET
        pools:
          - name: p
            backend: {kind: simulated}
            demand: {query: up}
            capacity: {per_node_rps: 1}
            max_nodes: 2
        """)
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        f"{path}:7: metrics.basic_auth.password_env: environment variable PROM_PASSWORD_UNSET"
        in result.output
    )
    monkeypatch.setenv("PROM_PASSWORD_UNSET", "set-now")
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0


def test_validate_names_the_line_of_a_ca_file_that_is_not_there(tmp_path: Path) -> None:
    """requests opens ca_file at each query: a missing one failed every tick (an OSError,
    "tick failed") while validate and the start said nothing."""
    path = tmp_path / "autoscaler.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        metrics:
          kind: prometheus
          url: https://mimir.example.com/prometheus
          ca_file: {tmp_path / "no-such-ca.pem"}
        pools:
          - name: p
            backend: {{kind: simulated}}
            demand: {{query: up}}
            capacity: {{per_node_rps: 1}}
            max_nodes: 2
        """)
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: metrics.ca_file: {tmp_path / 'no-such-ca.pem'} cannot be read" in (
        result.output
    )
    (tmp_path / "no-such-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0
