"""The plain-http rule every connection's insecure-transport check uses.

Plain http to loopback is fine; to any other host it would carry credentials in clear.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def plain_http_elsewhere(url: str) -> bool:
    """Plain http to a host other than this machine: tokens would cross the network in clear."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def plain_http_finding(url: str | None, what: str) -> list[str]:
    """The finding for `what` when `url` is plain http to another host, else none."""
    if url and plain_http_elsewhere(url):
        return [f"{what} {scheme_and_host(url)} is plain http"]
    return []


def scheme_and_host(url: str) -> str:
    """The part of a URL that is safe to print (no userinfo, path or query)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return f"{parts.scheme}://{parts.hostname or ''}"
