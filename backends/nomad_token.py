"""The Nomad ACL token: from a variable (`token_env`, fixed for the life of the process) or
from a file (`token_file`) that an agent rewrites, read again when Nomad forgets the token.

Teams issue Nomad tokens from Vault's Nomad secrets engine with a TTL; vault-agent writes
each new one to a file, and Vault deletes the old one from Nomad when its lease ends. Nomad
then answers every request made with it HTTP 403 with the plain-text body "ACL token not
found" (command/agent/http.go maps structs.ErrTokenNotFound to 403; "ACL token expired" is
its answer for a token past its own ExpirationTTL). On such an answer the file is read
again and, where it now holds another token, the request is sent once more with that one:
in the requests session itself (as requests' digest auth answers a 401), so every Nomad
call (jobs, nodes, the leader lock's variable) is covered. No token is ever logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from requests.auth import AuthBase

from common.http_body import read_in_time
from common.secrets import remember
from common.small_files import CREDENTIAL_MAX_BYTES, read_small_text

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Nomad-Token"
FORGOTTEN = ("ACL token not found", "ACL token expired")
"""Nomad's 403 bodies for a token it does not know (any more): worth the file's new one."""


class NomadToken:
    """The token in use and where it came from; a file's is read again on request."""

    def __init__(self, value: str | None, *, env_name: str, file: Path | None = None) -> None:
        self.value, self.env_name, self.file = value, env_name, file
        self._lock = threading.Lock()
        remember(value)

    def __repr__(self) -> str:  # never the value, even in a traceback's locals
        return f"NomadToken(from {self.source})"

    @property
    def source(self) -> str:
        """Where the token comes from, in a user's words: `$NOMAD_TOKEN`, `token_file /p`."""
        return f"token_file {self.file}" if self.file is not None else f"${self.env_name}"

    def read_again(self) -> bool:
        """True where the file now holds a token other than the one in use, now used."""
        if self.file is None:
            return False
        with self._lock:
            try:
                token = read_token_file(self.file)
            except ValueError:
                return False  # mid-write or removed: Nomad's refusal stands
            if token == self.value:
                return False
            remember(token)
            self.value = token
        log.info("Nomad no longer knows the ACL token; using the one now in %s", self.source)
        return True


def read_token_file(path: Path) -> str:
    """The token in `path`, stripped; ValueError (naming the setting and the file, never
    the content) where it cannot be read, is empty, or cannot go in an HTTP header."""
    try:
        token = read_small_text(path, CREDENTIAL_MAX_BYTES).strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise ValueError(f"token_file: {path} cannot be read ({reason})") from None
    if not token:
        raise ValueError(f"token_file: {path} is empty; expected a Nomad ACL token")
    if not token.isprintable() or not token.isascii() or " " in token:
        raise ValueError(
            f"token_file: {path} holds more than one token (a second line, a space or a "
            "control character): a Nomad ACL token is one word"
        )
    return token


def nomad_token(env_name: str, file: Path | None, env: Mapping[str, str]) -> NomadToken:
    """The token from `file` where one is named (read now: an unreadable one stops a start),
    else from `env[env_name]` (None where unset: Nomad without ACLs needs none)."""
    if file is not None:
        return NomadToken(read_token_file(file), env_name=env_name, file=file)
    return NomadToken(env.get(env_name) or None, env_name=env_name)


class NomadTokenAuth(AuthBase):
    """Puts the token in use on each request; where Nomad answers that it does not know
    that token and the file now holds another, sends the request once more with it."""

    def __init__(self, token: NomadToken, inner: Any = None) -> None:
        self.token, self.inner = token, inner  # `inner`: a login the session had (~/.netrc)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.inner is not None:
            request.prepare_auth(self.inner)
        if self.token.value:
            request.headers[TOKEN_HEADER] = self.token.value
        request.register_hook("response", self._answer_forgotten_token)
        return request

    def _answer_forgotten_token(self, response: requests.Response, **send: Any) -> Any:
        if response.status_code == 403:  # its text is read: within the deadline, as the
            read_in_time(response)  # session's hooks (run after an auth's) read a body
        if not is_forgotten_token(response):
            return response
        sent = response.request.headers.get(TOKEN_HEADER)
        if sent == self.token.value and not self.token.read_again():
            return response  # else another call already moved on to a newer token
        response.content  # noqa: B018  # read the answer through, so the connection is reused
        response.close()
        again = response.request.copy()
        again.headers[TOKEN_HEADER] = self.token.value or ""
        answer = response.connection.send(again, **send)  # type: ignore[attr-defined]
        answer.history.append(response)
        answer.request = again
        return answer


def is_forgotten_token(response: requests.Response) -> bool:
    """Nomad's 403 for a token it does not know (any more)."""
    if response.status_code != 403:
        return False
    try:
        text = response.text.strip()
    except Exception:
        return False
    return text.endswith(FORGOTTEN)
