"""`${VAR}` in config values: one config for several environments (a tenant, a URL).

Only values are expanded, never keys, and only in the daemon's config (the overrides
file is rewritten by `autoscaler override`, which would lose them). `${VAR:-default}`
gives a default, `$$` is a literal `$`, and any other `$` (PromQL, Grafana's
`$__rate_interval`) stays as written. A plain value is typed after expansion, so
`max_nodes: ${MAX_NODES}` is a number. Secrets still come from `*_env` and `*_file`
settings, whose values are read when used and never shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_IMPLICIT_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null", "timestamp")
)


def expand_text(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The text with every `${VAR}` replaced, and the names of those that are unset."""
    unset: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            unset.append(name)
            return match.group(0)
        return value

    return _REFERENCE.sub(substitute, text), unset


def expand_scalar(
    node: yaml.ScalarNode, env: Mapping[str, str], loader: yaml.SafeLoader
) -> tuple[yaml.ScalarNode, list[str]]:
    """The node with its value expanded (and a plain value's type resolved again)."""
    if "$" not in node.value:
        return node, []
    value, unset = expand_text(node.value, env)
    if value == node.value:
        return node, unset
    tag = node.tag
    if node.style is None and tag in _IMPLICIT_TAGS:
        tag = loader.resolve(yaml.ScalarNode, value, (True, False))
    return yaml.ScalarNode(tag, value, node.start_mark, node.end_mark, style=node.style), unset
