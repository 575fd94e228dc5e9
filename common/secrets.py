"""Every secret this process knows, and redaction by value where output leaves it.

Secrets are remembered where they are read (a token from the environment or a file,
a password in a URL), and `redact` replaces each of them wherever it appears, so no
message has to remember to hide its own. Logging gets it for every record and its
traceback (`install_log_redaction`); Slack, the decision log, the state file and the
CLI call `redact`, `redact_data` or `redacted_json` at their one exit. `shorten` redacts
before it cuts, so a cut never leaves a piece of a token behind. Credentials spelled in
the text itself (`Bearer x`, `user:password@`) are hidden by pattern even when never
remembered.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from pythonjsonlogger.json import JsonFormatter

REDACTED = "[redacted]"
MIN_LENGTH = 6  # a shorter value would hide ordinary words; no real credential is this short
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|ACCESS_KEY", re.I)
_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)(://[^/\s:@'\"]+):[^@\s/'\"]+@"), rf"\1:{REDACTED}@"),
    (
        re.compile(
            r"(?i)(x-nomad-token|x-api-key|authorization)(['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"
        ),
        rf"\1\2{REDACTED}",
    ),
)

_WORDS = ("bearer", "basic", "token", "://", "x-api-key", "authorization")
_ANY_PATTERN = re.compile("(?i)" + "|".join(re.escape(word) for word in _WORDS))
"""What every pattern above needs in the text: one search rules them all out (most text)."""

PIECE = 8
"""A run of this many characters of a secret is a leak too: a server that cuts its error
short, or echoes a token's first 20 characters, leaves a piece no whole-value search finds."""
_BLOCK = PIECE // 2
"""Every run of PIECE characters of a secret holds one of its BLOCK-character blocks taken
at every BLOCK-th character: searching for those finds each piece."""
_NOT_PIECED = ("/", "~", ".")
"""A value that is a file's path (systemd's $CREDENTIALS_DIRECTORY, a key file's variable)
is hidden whole only: its pieces are the pieces of every other path. A value with spaces
(an Authorization header as sent, `Bearer <token>`) is pieced word by word, or every text
saying "Bearer to..." would lose its start."""

_lock = threading.Lock()
_known: set[str] = set()
_by_length: list[str] = []
_blocks: dict[str, tuple[tuple[str, int], ...]] = {}
"""Block -> (secret, where the block starts in it), for the pieces search."""
_SCAN_BELOW = 200
_any_block: re.Pattern[str] | None = None
"""One search for every block: most text holds none, and one regex scan is ~10x quicker
than a find per block."""


def remember(*values: str | None) -> None:
    """Add secrets to redact from now on (empty and very short values are ignored)."""
    fresh = {v.strip() for v in values if v and len(v.strip()) >= MIN_LENGTH} - _known
    if not fresh:
        return
    global _by_length, _blocks, _any_block
    with _lock:
        _known.update(fresh)
        _by_length = sorted(_known, key=len, reverse=True)
        blocks: dict[str, list[tuple[str, int]]] = {}
        for secret in {word for value in _known for word in value.split()}:
            if len(secret) > PIECE and not secret.startswith(_NOT_PIECED):
                for at in range(0, len(secret) - _BLOCK + 1, _BLOCK):
                    blocks.setdefault(secret[at : at + _BLOCK], []).append((secret, at))
        _blocks = {block: tuple(places) for block, places in blocks.items()}
        _any_block = re.compile("|".join(map(re.escape, _blocks))) if _blocks else None


def remember_url(url: str | None) -> None:
    """The password (as written and decoded) of a URL with user:password@, and the
    Basic credentials a client sends for it."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        username, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        remember(password)
        remember_basic_auth(unquote(username or ""), unquote(password))


def remember_basic_auth(username: str, password: str | None) -> None:
    """The password, and `username:password` in base64 as an Authorization: Basic header
    carries it (with and without its padding): a server that echoes the header's value
    back without the word Basic would otherwise show the password to anyone who decodes
    it. Encoded both ways a client sends it: Latin-1 (requests, given a str) and UTF-8
    (the metrics source, as RFC 7617 says)."""
    if not password:
        return
    remember(password)
    pair = f"{username}:{password}"
    for charset in ("latin-1", "utf-8"):
        try:
            encoded = base64.b64encode(pair.encode(charset)).decode("ascii")
        except UnicodeEncodeError:
            continue
        remember(encoded, encoded.rstrip("="))


def remember_environment(env: Mapping[str, str]) -> None:
    """Values of variables named like credentials, and passwords in URL-valued variables
    (NOMAD_ADDR, HTTP_PROXY): what this process may send somewhere."""
    for name, value in env.items():
        if _SECRET_NAME.search(name):
            remember(value)
        if "://" in value:
            remember_url(value)


def redact(text: str) -> str:
    """The text with every remembered secret, and credentials by pattern, replaced."""
    for secret in _by_length:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _blocks and len(text) >= PIECE and _may_hold_a_piece(text):
        text = _without_pieces(text, _blocks)
    if not _holds_a_pattern_word(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _may_hold_a_piece(text: str) -> bool:
    """Whether any block is in `text`: one regex scan for a short text (most log lines and
    values), a find per block for a long one (the regex tries every block at every
    character; find skips ahead)."""
    any_block = _any_block
    if len(text) < _SCAN_BELOW and any_block is not None:
        return any_block.search(text) is not None
    return any(block in text for block in _blocks)


def _without_pieces(text: str, blocks: dict[str, tuple[tuple[str, int], ...]]) -> str:
    """`text` with every run of PIECE or more characters of a secret replaced."""
    spans: list[tuple[int, int]] = []
    for block, places in blocks.items():
        at = text.find(block)
        while at >= 0:
            spans += [span for s, where in places if (span := _piece(text, at, s, where))]
            at = text.find(block, at + 1)
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        text = text[:start] + REDACTED + text[end:]
    return text


def _piece(text: str, at: int, secret: str, where: int) -> tuple[int, int] | None:
    """The span around text[at:at+BLOCK] that runs along `secret` from `where`, if it is
    PIECE characters or more."""
    before = 0
    while before < min(at, where) and text[at - before - 1] == secret[where - before - 1]:
        before += 1
    after = _BLOCK
    limit = min(len(text) - at, len(secret) - where)
    while after < limit and text[at + after] == secret[where + after]:
        after += 1
    return (at - before, at + after) if before + after >= PIECE else None


def redact_data(value: Any) -> Any:
    """Every string in plain data (dicts, lists, tuples) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(v) for v in value)
    return value


def redacted_json(value: Any, **dumps_args: Any) -> str:
    """`json.dumps(redact_data(value), **dumps_args)` of plain data (dicts, lists, strings,
    numbers), without walking it when its text holds nothing to redact: no remembered
    secret (as written or as JSON escapes it) and no word any pattern needs. A keyed
    mapping's key can only add a false alarm, which takes the walk. Walking every string
    of a thousand pools' state each tick cost ~30 ms; one search of the text, ~1 ms."""
    text = json.dumps(value, **dumps_args)
    ascii_only = dumps_args.get("ensure_ascii", True)
    if "\\u" in text or _holds_a_pattern_word(text):  # \u: an escape may hide a letter
        return json.dumps(redact_data(value), **dumps_args)
    for secret in _by_length:
        if secret in text or json.dumps(secret, ensure_ascii=ascii_only)[1:-1] in text:
            return json.dumps(redact_data(value), **dumps_args)
    if _blocks and _may_hold_a_piece(text) and _without_pieces(text, _blocks) != text:
        return json.dumps(redact_data(value), **dumps_args)  # a piece of one
    return text


def _holds_a_pattern_word(text: str) -> bool:
    """Whether `text` holds a word of _WORDS as _ANY_PATTERN finds them. In ASCII text
    (nearly all) lowered and searched as plain strings, ~6x faster than the case-blind
    search, which also matches some letters beyond ASCII ("ſ" for "s")."""
    if text.isascii():
        lowered = text.lower()
        return any(word in lowered for word in _WORDS)
    return _ANY_PATTERN.search(text) is not None


def shorten(text: str, limit: int, tail: str = "…") -> str:
    """At most `limit` characters, redacted first: a cut must not keep half a token. A
    server's text cut mid-character (JSON's lone "\\ud83d") is kept as that escape: no
    log, file or test report can write the character itself (UTF-8 has no form for it)."""
    text = redact(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: max(0, limit - len(tail))] + tail


def known() -> Iterable[str]:
    return tuple(_by_length)


# ---- logging ---------------------------------------------------------------------


_installed = False


def install_log_redaction() -> None:
    """Redact every log record as it is made, whoever logs it and whichever handler
    writes it (the message with its arguments, and the traceback's text)."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class RedactingJsonFormatter(JsonFormatter):
    """JSON log lines with their extra fields redacted too (a decision's `errors` may quote
    a server): the record factory above redacts the message and traceback only, since
    extras are set on a record after it is made."""

    def jsonify_log_record(self, log_data: Any) -> str:
        return redacted_json(
            log_data,
            default=self.json_default,
            cls=self.json_encoder,
            indent=self.json_indent,
            ensure_ascii=self.json_ensure_ascii,
        )
