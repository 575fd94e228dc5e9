"""Redaction: the quick checks in front of the patterns and of the walk never let one through."""

from __future__ import annotations

import base64
import io
import json
import logging

from hypothesis import example, given
from hypothesis import strategies as st

from common.secrets import (
    _PATTERNS,
    PIECE,
    REDACTED,
    RedactingJsonFormatter,
    redact,
    redact_data,
    redacted_json,
    remember,
    remember_basic_auth,
    remember_url,
)

PIECES = (
    "Bearer ",
    "basic\t",
    "TOKEN ",
    "token=",
    "https://",
    "user:pa55word@host",
    "x-api-key: ",
    "X-Nomad-Token='",
    "Authorization=",
    "abcdefgh12345678",
    " ",
    "/",
    "@",
    ":",
    "ordinary words",
    "é",
    "ſ",  # the case-blind search reads this as "s", "ı" as "i", the Kelvin sign as "k"
    "ı",
    "\u212a",
    "BA\u017fIC ",
    "to\u212aen ",
)
EXOTIC = ("BA\u017fIC abcdefgh12345678", "to\u212aen abcdefgh12345678")
"""Credentials a case-blind search finds only through a letter beyond ASCII."""


def by_every_pattern(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
@example(EXOTIC[0])
@example(EXOTIC[1])
def test_redact_hides_what_every_pattern_hides(text: str) -> None:
    assert redact(text) == by_every_pattern(text)


def test_credentials_in_text_are_hidden_and_plain_text_kept() -> None:
    assert "abcdefgh12345678" not in redact("Authorization: Bearer abcdefgh12345678")
    assert redact("http://u:pa55word@prom:9090/") == f"http://u:{REDACTED}@prom:9090/"
    assert redact("forecast needs 12 nodes") == "forecast needs 12 nodes"


# Remembered for this module's tests: each holds a character JSON escapes, so its text in
# a JSON document differs from its value.
ESCAPED_SECRETS = ('qu"ote-secret', "back\\slash-secret", "nön-ascii-sécret", "new\nline-secret")
remember(*ESCAPED_SECRETS)
VALUES = st.sampled_from((*ESCAPED_SECRETS, *PIECES, "plain", ""))
TEXTS = st.lists(VALUES, max_size=4).map("".join)
PLAIN_DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=12,
)


@given(PLAIN_DATA, st.booleans())
@example({"reason": EXOTIC[0]}, True)
@example([EXOTIC[1]], False)
def test_redacted_json_is_the_text_of_the_redacted_data(value: object, ascii_only: bool) -> None:
    """Whether it walks the data or not, the text is the redacted data's: no secret, as
    written or as JSON escapes it, and no credential by pattern gets through."""
    expected = json.dumps(redact_data(value), ensure_ascii=ascii_only, sort_keys=True)
    assert redacted_json(value, ensure_ascii=ascii_only, sort_keys=True) == expected


def test_redacted_json_hides_a_secret_that_json_escapes() -> None:
    text = redacted_json({"errors": {"metrics": 'answer echoed qu"ote-secret'}})
    assert "ote-secret" not in text
    assert json.loads(text) == {"errors": {"metrics": f"answer echoed {REDACTED}"}}


def test_a_json_log_lines_extra_fields_are_redacted_too() -> None:
    """What the daemon logs for a decision (its `decision` extra, errors included) goes
    through the same redaction as its message."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.secrets.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        errors = {"metrics": 'HTTP 500: echoed qu"ote-secret', "backend": "Bearer abcdefgh12345678"}
        logger.warning("pool=%s", "ocr", extra={"decision": {"pool": "ocr", "errors": errors}})
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["decision"]["errors"] == {
        "metrics": f"HTTP 500: echoed {REDACTED}",
        "backend": f"Bearer {REDACTED}",
    }
    assert line["message"] == "pool=ocr"


def test_basic_credentials_are_hidden_as_the_header_carries_them() -> None:
    """A server may echo the Authorization header's value without the word Basic: the
    base64 of user:password, padded or not, is the password written another way."""
    remember_basic_auth("ops", "hdr-pw-3f9a1c")
    remember_url("https://svc:url-pw-7e2b@nomad.example:4646")
    for user, password in (("ops", "hdr-pw-3f9a1c"), ("svc", "url-pw-7e2b")):
        sent = base64.b64encode(f"{user}:{password}".encode()).decode()
        assert redact(f"got {sent} and {sent.rstrip('=')}") == f"got {REDACTED} and {REDACTED}"
        assert redact(f"pw {password}") == f"pw {REDACTED}"
    remember_basic_auth("wäch", "Grüße-Tq8Wz3")  # the metrics source sends these in UTF-8
    for charset in ("latin-1", "utf-8"):
        sent = base64.b64encode("wäch:Grüße-Tq8Wz3".encode(charset)).decode()
        assert redact(f"got {sent}") == f"got {REDACTED}", charset


def test_a_piece_of_a_secret_is_hidden_and_shorter_runs_and_paths_kept() -> None:
    """A server may echo a token cut short: any run of PIECE characters of one is hidden,
    wherever it starts; fewer characters are ordinary text, and a path-valued secret (a
    credentials folder) is hidden whole, not in pieces of every other path."""
    token = "piece-tok-Qx7Zr2Wm9Kp4Lt8Vn3Jd"
    remember(token, "/run/credentials/piece.service")
    for piece in (token[:PIECE], token[3 : 3 + PIECE + 5], token[-PIECE:], token[:20]):
        assert redact(f"echo <{piece}>") == f"echo <{REDACTED}>", piece
    assert redact(f"{token[:9]} and {token[-9:]}") == f"{REDACTED} and {REDACTED}"
    short = token[: PIECE - 1]
    assert redact(f"only {short}") == f"only {short}"
    assert redact("/run/credentials/other.service") == "/run/credentials/other.service"
    assert redact("/run/credentials/piece.service/key") == f"{REDACTED}/key"
    remember("Bearer spaced-tok-Vb6Nc1Xz4Qa9Ue")  # a header as sent: pieced word by word
    assert redact("Bearer toward the end") == "Bearer toward the end"
    assert redact("echo spaced-tok-Vb") == f"echo {REDACTED}"


def test_redacted_json_hides_a_piece_of_a_secret_in_plain_ascii_text() -> None:
    """Its quick path (no whole secret, no pattern word) must not let a piece through."""
    remember("json-piece-Hq3Zw8Rt5Yk2Pm7Gs")
    assert json.loads(redacted_json({"e": "echo Hq3Zw8Rt5Yk!"})) == {"e": f"echo {REDACTED}!"}
    assert redacted_json({"n": 1234567, "e": "Hq3Zw8R"}) == '{"n": 1234567, "e": "Hq3Zw8R"}'


def test_a_lone_surrogate_in_a_servers_text_is_kept_as_its_escape() -> None:
    """JSON's "\\ud83d" (a string cut mid-character) decodes to a character UTF-8 cannot
    write: the log line, the state file or pytest-xdist's report carrying it failed."""
    from common.secrets import shorten

    shown = shorten("query cut at \ud83d", 200)
    assert shown == "query cut at \\ud83d"
    assert shown.encode("utf-8")
