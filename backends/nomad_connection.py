"""Where and as whom to reach Nomad, and the requests session every Nomad call shares.

Its own room because the job and cluster backends, the node calls and the leader's
variable lock all reach Nomad the same way: the pool's settings (NomadAccess) with the
Nomad CLI's environment filling the gaps (NOMAD_ADDR, the ACL token from `token_file`,
else `token_env`, NOMAD_CACERT / NOMAD_CAPATH, NOMAD_CLIENT_CERT / NOMAD_CLIENT_KEY,
NOMAD_SKIP_VERIFY, NOMAD_REGION), resolved once into a NomadConnection, and one session
for python-nomad's endpoint classes (the token sent by the session's auth, redirects
refused, bodies read within the call's deadline). One place for the token and TLS rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from pydantic import Field

from backends.nomad_names import NomadNamespace
from backends.nomad_token import NomadToken, NomadTokenAuth, nomad_token
from backends.settings import TlsApiCalls
from common.http_body import read_in_time
from common.http_environment import read_environment_once, verify_from_environment
from common.redirects import refuse_redirects
from common.secrets import remember_url
from common.settings import ApiUrl, EnvName
from common.transport import http_url_problem, plain_http_finding

DEFAULT_ADDRESS = "http://127.0.0.1:4646"
AUTOSCALER_NAME = "gpu-autoscaler"


class NomadAccess(TlsApiCalls):
    """Where and as whom to reach Nomad (the Nomad CLI's environment fills the gaps)."""

    address: ApiUrl | None = Field(default=None, description="defaults to $NOMAD_ADDR")
    region: str | None = None
    namespace: NomadNamespace = "default"
    token_env: EnvName = "NOMAD_TOKEN"
    token_file: Path | None = Field(
        default=None, description="read instead of token_env, and again when Nomad forgets it"
    )

    def plain_findings(self, where: str, env: Mapping[str, str]) -> list[str]:
        return nomad_address_findings(self.address, where, env)


def nomad_address_findings(address: str | None, where: str, env: Mapping[str, str]) -> list[str]:
    """The address (else $NOMAD_ADDR, as the Nomad CLI reads it) and $NOMAD_SKIP_VERIFY."""
    source = "address" if address else "$NOMAD_ADDR"
    found = plain_http_finding(address or env.get("NOMAD_ADDR"), f"{where}: {source}")
    if nomad_skip_verify(env):
        found.append(f"{where}: $NOMAD_SKIP_VERIFY turns TLS verification off")
    return found


def nomad_skip_verify(env: Mapping[str, str]) -> bool:
    """$NOMAD_SKIP_VERIFY as the Nomad CLI reads it: a true-ish word turns TLS checks off."""
    return env.get("NOMAD_SKIP_VERIFY", "").strip().lower() in ("1", "true", "t", "yes", "y", "on")


@dataclass(frozen=True)
class NomadConnection:
    """Where and how to reach Nomad, resolved once from config and environment."""

    address: str
    namespace: str
    region: str | None
    timeout_s: float
    verify: bool | str
    cert: tuple[str, str] | tuple[()]
    credential: NomadToken = field(repr=False)

    @property
    def token(self) -> str | None:
        """The token in use now (a token_file's is replaced when Nomad forgets it)."""
        return self.credential.value


def nomad_connection(config: NomadAccess, env: Mapping[str, str]) -> NomadConnection:
    """Resolve address, token and TLS the way the Nomad CLI reads its environment."""
    address = (config.address or env.get("NOMAD_ADDR") or DEFAULT_ADDRESS).rstrip("/")
    problem = None if config.address else http_url_problem(address)
    if problem is not None:  # the setting is checked as it loads; the environment only here
        raise ValueError(f"address: not set, and $NOMAD_ADDR {problem}")
    verify: bool | str
    if not config.verify_tls or nomad_skip_verify(env):
        verify = False
    else:
        verify = env.get("NOMAD_CACERT") or env.get("NOMAD_CAPATH") or True
    client_cert, client_key = env.get("NOMAD_CLIENT_CERT"), env.get("NOMAD_CLIENT_KEY")
    cert: tuple[str, str] | tuple[()] = (
        (client_cert, client_key) if client_cert and client_key else ()
    )
    return NomadConnection(
        address=address,
        namespace=config.namespace,
        region=config.region or env.get("NOMAD_REGION") or None,
        timeout_s=config.timeout.total_seconds(),
        verify=verify,
        cert=cert,
        credential=_remembered(nomad_token(config.token_env, config.token_file, env), address),
    )


def requester_settings(
    connection: NomadConnection, session: requests.Session | None = None
) -> dict[str, Any]:
    """Keyword arguments for any python-nomad endpoint class (nomad.api.Job, .Node, ...).

    The endpoint classes are built directly rather than through nomad.Nomad,
    which falls back to os.environ's NOMAD_TOKEN/NOMAD_ADDR/NOMAD_NAMESPACE when
    a value is empty: here every value comes from the pool's config and env.
    """
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = AUTOSCALER_NAME
        read_environment_once(session, connection.address)
        refuse_redirects(session)  # the token would follow one (a PUT's: the lock's)
        session.hooks["response"].append(read_in_time)  # a drip ends with its deadline
    # The token in use at each request (beside any ~/.netrc login the session took).
    session.auth = NomadTokenAuth(connection.credential, session.auth)
    return {
        "address": connection.address,
        "namespace": connection.namespace,
        "region": connection.region,
        "token": None,  # sent by the session's auth, which follows a token_file's changes
        "timeout": connection.timeout_s,
        "verify": verify_from_environment(connection.verify),  # given per request
        "cert": connection.cert,
        "session": session,
    }


def _remembered(token: NomadToken, address: str) -> NomadToken:
    """Note any password in the address as a secret, as it is read (the token is noted)."""
    remember_url(address)
    return token
