"""backends.nomad_connection: the pool's settings and the Nomad CLI's environment resolved
into one connection, and the session python-nomad's endpoints share; through the real
python-nomad client against the Nomad API double where a call is made."""

from __future__ import annotations

from typing import Any

import pytest

from backends.base import BackendError
from backends.nomad_connection import nomad_connection, requester_settings
from backends.nomad_job import NomadJobBackend
from tests.backends.test_nomad_job import GROUP, JOB, job, make_backend
from tests.doubles.nomad_api import NomadApiDouble, nomad_api

__all__ = ["job", "nomad_api"]  # the fixtures, used by name below


# ---- connection settings (pure) -----------------------------------------------------


def config(**overrides: Any) -> NomadJobBackend:
    return NomadJobBackend(kind="nomad_job", job=JOB, group=GROUP, **overrides)


def test_address_from_config_then_environment_then_default() -> None:
    assert nomad_connection(config(), {}).address == "http://127.0.0.1:4646"
    env = {"NOMAD_ADDR": "https://nomad.internal:4646/"}
    assert nomad_connection(config(), env).address == "https://nomad.internal:4646"
    assert nomad_connection(config(address="http://a:1"), env).address == "http://a:1"


def test_tls_settings_follow_the_nomad_cli_variables() -> None:
    assert nomad_connection(config(), {}).verify is True
    env = {
        "NOMAD_CACERT": "/etc/nomad/ca.pem",
        "NOMAD_CLIENT_CERT": "/etc/nomad/cli.pem",
        "NOMAD_CLIENT_KEY": "/etc/nomad/cli-key.pem",
    }
    connection = nomad_connection(config(), env)
    assert connection.verify == "/etc/nomad/ca.pem"
    assert connection.cert == ("/etc/nomad/cli.pem", "/etc/nomad/cli-key.pem")
    assert nomad_connection(config(), {"NOMAD_CLIENT_CERT": "/c.pem"}).cert == ()
    assert nomad_connection(config(), {**env, "NOMAD_SKIP_VERIFY": "true"}).verify is False
    assert nomad_connection(config(verify_tls=False), env).verify is False


def test_connection_settings_hide_the_token() -> None:
    connection = nomad_connection(config(timeout="3s", region="eu"), {"NOMAD_TOKEN": "abc-secret"})
    assert connection.token == "abc-secret"
    assert "abc-secret" not in repr(connection)
    assert (connection.timeout_s, connection.region) == (3.0, "eu")
    assert nomad_connection(config(), {"NOMAD_TOKEN": ""}).token is None


# ---- the environment ------------------------------------------------------------------


@pytest.mark.parametrize("bypassed", [False, True])
def test_the_environments_proxy_carries_the_calls_unless_no_proxy_bypasses_it(
    nomad_api: NomadApiDouble, job, monkeypatch: pytest.MonkeyPatch, bypassed: bool
) -> None:
    """requests' environment rules, read once when the backend is made (not on every
    call): the double stands as the proxy and is asked for Nomad's absolute URL; with
    NO_PROXY naming the host, the call goes there directly (a name that does not resolve:
    unreachable)."""
    for name in ("http_proxy", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", nomad_api.url)
    if bypassed:
        monkeypatch.setenv("NO_PROXY", "nomad.invalid")
    backend = make_backend(nomad_api, address="http://nomad.invalid:4646", retries=0)
    monkeypatch.delenv("HTTP_PROXY")  # read when made: still the proxy
    if bypassed:
        with pytest.raises(BackendError):
            backend.read()
    else:
        assert backend.read().desired == 3
    hosts = {request.headers.get("host") for request in nomad_api.requests}
    assert hosts == (set() if bypassed else {"nomad.invalid:4646"})


def test_the_environment_is_read_when_the_backend_is_made_not_per_call(
    nomad_api: NomadApiDouble, job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy variables, the CA bundle and ~/.netrc were looked up by requests on each
    call (~0.4 ms, every pool every tick); now once. REQUESTS_CA_BUNDLE still counts where
    verification is on and no Nomad CA is given, as requests reads it."""
    import requests

    looked_up: list[str] = []
    real = requests.utils.get_environ_proxies
    monkeypatch.setattr(
        requests.utils,
        "get_environ_proxies",
        lambda url, no_proxy=None: looked_up.append(url) or real(url, no_proxy),
    )
    backend = make_backend(nomad_api)
    for _ in range(3):
        assert backend.read().desired == 3
    assert looked_up == [nomad_api.url]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/private-ca.pem")
    https = nomad_connection(
        NomadJobBackend(kind="nomad_job", job=JOB, group=GROUP), {"NOMAD_ADDR": "https://n:4646"}
    )
    assert requester_settings(https)["verify"] == "/etc/private-ca.pem"
    own_ca = nomad_connection(
        NomadJobBackend(kind="nomad_job", job=JOB, group=GROUP), {"NOMAD_CACERT": "/etc/ca.pem"}
    )
    assert requester_settings(own_ca)["verify"] == "/etc/ca.pem"


@pytest.mark.parametrize("nomad_addr", ["nomad.internal:4646", "ftp://nomad.internal", "https://"])
def test_a_nomad_addr_that_is_no_api_address_is_refused_at_the_start(nomad_addr: str) -> None:
    """A pool without `address` reads $NOMAD_ADDR only as the daemon starts; one that is
    no http(s) URL with a host failed every tick's request, so it is refused there (and so
    by `validate`), naming the variable; an `address` in the config wins over it."""
    backend = NomadJobBackend(kind="nomad_job", job="ocr-workers", group="gpu")
    with pytest.raises(ValueError, match=r"\$NOMAD_ADDR (must start with https://|has no host)"):
        nomad_connection(backend, {"NOMAD_ADDR": nomad_addr})
    configured = backend.model_copy(update={"address": "https://nomad.internal:4646"})
    assert nomad_connection(configured, {"NOMAD_ADDR": nomad_addr}).address.startswith("https")
