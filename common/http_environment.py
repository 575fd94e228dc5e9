"""What `requests` reads from the environment for every request, read once per session.

A session that trusts the environment scans it on every request: the proxy variables
and no_proxy, the CA bundle variables, ~/.netrc. That was ~0.4 ms a request: a fifth of
a pool's steady read from Prometheus, and most of a fleet read from Nomad, every pool
every tick. A daemon's environment does not change while it runs, so each session takes
them once, as requests would for its URL, and stops looking.
"""

from __future__ import annotations

import os

import requests


def read_environment_once(session: requests.Session, url: str) -> None:
    """`session` with what requests would take from the environment for `url` set on it,
    and the environment no longer consulted (`verify` given per request needs
    verify_from_environment too)."""
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(url)
    session.verify = verify_from_environment(session.verify)
    if session.auth is None:
        session.auth = requests.utils.get_netrc_auth(url)


def verify_from_environment(verify: bool | str) -> bool | str:
    """What requests makes of `verify` when it trusts the environment: an explicit True
    gives way to REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE; False or a CA path stands."""
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify
