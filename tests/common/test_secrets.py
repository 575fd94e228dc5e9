"""Redaction by pattern: the quick check in front of the patterns never lets one through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common.secrets import _PATTERNS, REDACTED, redact

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
)


def by_every_pattern(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_redact_hides_what_every_pattern_hides(text: str) -> None:
    assert redact(text) == by_every_pattern(text)


def test_credentials_in_text_are_hidden_and_plain_text_kept() -> None:
    assert "abcdefgh12345678" not in redact("Authorization: Bearer abcdefgh12345678")
    assert redact("http://u:pa55word@prom:9090/") == f"http://u:{REDACTED}@prom:9090/"
    assert redact("forecast needs 12 nodes") == "forecast needs 12 nodes"
