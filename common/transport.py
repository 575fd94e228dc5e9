"""The plain-http rule every connection's insecure-transport check uses.

Plain http to loopback is fine; to any other host it would carry credentials in clear.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"  # an RFC 9110 token
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e\x80-\xff][\t\x20-\x7e\x80-\xff]*)?")
"""What requests and http.client send: Latin-1, no control character, no leading space."""


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot be an HTTP API's address (no http(s) scheme, no host, a port out of
    range), or None: `requests` refuses such a URL at every call, never at the start."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a ValueError where the port is not one
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return (
            "must start with https:// (or http://) and a host, such as https://host.internal:8443"
        )
    if not parts.hostname:
        return "has no host after the scheme"
    return None


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


def proxy_for(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy `requests` would send a request for `url` through (its environment rules:
    <scheme>_proxy, then all_proxy, either case; no_proxy bypasses), or None."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = parts.scheme.lower()
    proxy = None
    for name in (f"{scheme}_proxy", "all_proxy"):
        proxy = env.get(name) or env.get(name.upper())
        if proxy:
            break
    if not proxy or _bypassed(parts.hostname or "", env.get("no_proxy") or env.get("NO_PROXY")):
        return None
    return proxy


def proxy_finding(url: str | None, what: str, env: Mapping[str, str]) -> list[str]:
    """Plain http relayed by a plain-http proxy elsewhere: its credentials cross in clear.
    (An https URL is tunnelled through the proxy with CONNECT: TLS end to end.)"""
    if not url or urlsplit(url if "://" in url else f"http://{url}").scheme.lower() != "http":
        return []
    proxy = proxy_for(url, env)
    if proxy is None or not plain_http_elsewhere(proxy):
        return []
    return [
        f"{what} {scheme_and_host(url)} would go through the plain-http proxy "
        f"{scheme_and_host(proxy)} (from the environment), which sees its credentials"
    ]


def _bypassed(host: str, no_proxy: str | None) -> bool:
    host = host.lower()
    for entry in (e.strip().lower() for e in (no_proxy or "").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name = entry.split(":")[0].lstrip(".")
        if host == name or host.endswith("." + name):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
