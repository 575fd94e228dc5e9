"""Retry-After as RFC 9110 writes it: delay-seconds or an HTTP-date; anything else ignored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.retry_after import retry_after_header, retry_after_seconds

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("1", 1.0),
        (" 120 ", 120.0),
        ("2.5", 2.5),
        (b"7", 7.0),
        ("3600", 3600.0),
        # The three HTTP-date forms RFC 9110 (section 5.6.7) says a recipient reads.
        ("Mon, 02 Mar 2026 12:00:30 GMT", 30.0),
        ("Monday, 02-Mar-26 12:01:00 GMT", 60.0),
        ("Mon Mar  2 12:00:05 2026", 5.0),
        ("Mon, 02 Mar 2026 11:00:00 GMT", 0.0),  # already past: retry now
    ],
)
def test_seconds_and_dates(value: object, seconds: float) -> None:
    assert retry_after_seconds(value, NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [None, "", " ", "-5", "-0.5", "soon", "1e3", "inf", "nan", "0x10", "12 s", "5,5", 7, "Mon, 99"],
)
def test_garbled_or_negative_is_no_request(value: object) -> None:
    assert retry_after_seconds(value, NOW) is None


def test_the_header_in_any_case_of_its_name() -> None:
    assert retry_after_header({"retry-after": "3"}) == "3"
    assert retry_after_header({"Content-Type": "text/plain", "Retry-After": "4"}) == "4"
    assert retry_after_header({"Content-Type": "text/plain"}) is None
    assert retry_after_header(None) is None


def test_a_header_kept_as_a_list_of_values_is_read_from_its_first() -> None:
    """slack-sdk keeps a response's headers as lists of values: Slack's Retry-After is read
    with the same rule as the backends' (before, Slack's sender parsed it on its own)."""
    assert retry_after_header({"Retry-After": ["7", "9"]}) == "7"
    assert retry_after_header({"retry-after": []}) is None
