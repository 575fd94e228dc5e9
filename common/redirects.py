"""Redirects a client must not follow: its credentials would go with them.

`requests` drops only the Authorization header on a redirect to another host; a token in
a header of its own (Nomad's X-Nomad-Token) goes along to wherever the redirect points,
and a PUT or DELETE follows redirects unless told not to. An API that answers itself
(Nomad) never redirects: a 3xx is someone else's answer (a proxy's login page, a moved
address), never followed and never taken for the API's.
"""

from __future__ import annotations

import requests


class RedirectRefused(requests.RequestException):
    """A 3xx answer from an API that does not redirect."""


def refuse_redirects(session: requests.Session) -> None:
    """Every 3xx answer to `session` raises RedirectRefused, before requests follows it."""
    session.hooks["response"].append(_refuse)


def _refuse(response: requests.Response, *args: object, **kwargs: object) -> None:
    if 300 <= response.status_code < 400:
        response.close()
        raise RedirectRefused(f"HTTP {response.status_code}: a redirect, not followed")
