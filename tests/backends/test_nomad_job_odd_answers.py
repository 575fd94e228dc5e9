"""NomadJobGroup against odd answers, through the real python-nomad client and the double
of the documented Nomad HTTP API (tests/doubles/nomad_api.py), which sends them in place
of its own."""

from __future__ import annotations

import logging

import pytest

from backends.base import BackendError
from tests.backends.test_nomad_job import GROUP, JOB, make_backend
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, nomad_api

__all__ = ["nomad_api"]  # the fixture, used by name below


def pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


@pytest.mark.parametrize("padding", [180, 187, 195])
def test_a_token_echoed_across_the_cut_of_an_error_body_leaves_no_piece(
    nomad_api: NomadApiDouble, caplog: pytest.LogCaptureFixture, padding: int
) -> None:
    """Against the double of the documented Nomad HTTP API, refusing with a body (as a proxy
    in front of it might) that quotes the token after `padding` characters, so that the
    200-character cut of the body falls inside the token. Before, the body was cut first
    and redacted after: the token's first characters (19 and 12 here) no longer
    matched it and reached the error and the log. Now the body is redacted before it is cut."""
    nomad_api.add_job(JOB, {GROUP: 3})
    nomad_api.authorize = lambda headers: f"{'x' * padding} {headers.get('x-nomad-token')}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as caught:
        make_backend(nomad_api).read()
    texts = str(caught.value) + caplog.text
    assert "HTTP 403" in str(caught.value)
    assert [piece for piece in pieces(DOUBLE_ACL_TOKEN) if piece in texts] == []
