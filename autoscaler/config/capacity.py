"""Per-node capacity from a capacity profile, the YAML file gpu_bench writes.

The daemon needs one number from it: requests/s a node serves at the latency
target. Anything else in the profile (sweep points, GPU model) is for people.
"""

from __future__ import annotations

import math
from pathlib import Path

from autoscaler.config.loader import ConfigError, Problem, read_yaml
from autoscaler.config.schema import Capacity


def read_per_node_rps(path: Path) -> float:
    """`per_node_rps` from a profile: a positive, finite number, or a located ConfigError."""
    document = read_yaml(path)
    assert document is not None
    if document.problems:
        raise ConfigError(document.problems)
    if not isinstance(document.data, dict):
        got = "an empty file" if document.data is None else type(document.data).__name__
        raise ConfigError(
            [Problem(path, document.line_of(()) or 1, "", f"expected a mapping, got {got}")]
        )
    if "per_node_rps" not in document.data:
        raise ConfigError(
            [
                Problem(
                    path,
                    document.line_of(()),
                    "per_node_rps",
                    "required; missing (requests/s one node serves at the latency target)",
                )
            ]
        )
    value = document.data["per_node_rps"]
    line = document.line_of(("per_node_rps",))
    valid = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
    if not valid:
        raise ConfigError(
            [Problem(path, line, "per_node_rps", f"expected a positive number, got {value!r}")]
        )
    return float(value)


def per_node_rps_of(capacity: Capacity) -> float:
    """The pool's per-node rate: the number in the config, or the one in its profile."""
    if capacity.per_node_rps is not None:
        return capacity.per_node_rps
    assert capacity.profile is not None  # Capacity requires exactly one of the two
    return read_per_node_rps(capacity.profile)
