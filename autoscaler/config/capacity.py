"""Per-node capacity from a capacity profile, the YAML file gpu_bench writes.

The daemon needs one number from it: requests/s a node serves at the latency
target. Anything else in the profile (sweep points, GPU model) is for people.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

from autoscaler.config.problems import ConfigError, Problem
from autoscaler.config.schema import Capacity, Pool
from autoscaler.config.yaml_reader import YamlDocument, read_yaml
from common.durations import parse_duration


def read_per_node_rps(path: Path) -> float:
    """`per_node_rps` from a profile: a positive, finite number, or a located ConfigError.
    The file is read once: gpu-bench saving a new profile between two reads would check
    one version's rate against the other's figures."""
    document = _read_profile(path)
    value = _field(document, "per_node_rps", "requests/s one node serves at the latency target")
    if not _finite(value) or value <= 0:
        raise _bad(document, "per_node_rps", value, "a positive number")
    _check_node_rate(document, float(value))
    return float(value)


def _check_node_rate(document: YamlDocument, per_node_rps: float) -> None:
    """per_node_rps = per_gpu_rps * gpus_per_node, where the profile has both (gpu-bench
    writes both; a hand-written profile may give per_node_rps alone). A file cut short in
    that number (`per_node_rps: 12` of 1240.0) or a gpus_per_node edited alone sized the
    fleet on a wrong rate without a word; so did one edited to what is no number (`'4'`,
    `true`), which skipped this check."""
    per_gpu, gpus = document.data.get("per_gpu_rps"), document.data.get("gpus_per_node")
    for field, value in (("per_gpu_rps", per_gpu), ("gpus_per_node", gpus)):
        if value is not None and not (_finite(value) and value > 0):  # `gpus_per_node: '4'`
            raise _bad(document, field, value, "a positive number, or no such line")
    if per_gpu is None or gpus is None:
        return
    expected = per_gpu * gpus
    if abs(per_node_rps - expected) > 1e-6 * max(1.0, abs(expected)):
        raise _bad(
            document, "per_node_rps", per_node_rps, f"per_gpu_rps * gpus_per_node ({expected:g})"
        )


def read_startup_s(path: Path) -> float:
    """`startup_p90_s` from a profile (worker start to first good answer), or ConfigError."""
    document = _read_profile(path)
    value = _field(document, "startup_p90_s", "written by gpu-bench run since it measures it")
    if not _finite(value) or value < 0 or not _a_duration(value):
        raise _bad(document, "startup_p90_s", value, "a number of seconds (100 years at most)")
    return float(value)


def _a_duration(seconds: float) -> bool:
    """Whether a span of this many seconds can be added to a boot time (1e20 cannot)."""
    try:
        parse_duration(seconds)
    except ValueError:
        return False
    return True


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bad(document: YamlDocument, field: str, value: object, expected: str) -> ConfigError:
    at = document.line_of((field,))
    return ConfigError([Problem(document.path, at, field, f"expected {expected}, got {value!r}")])


def _read_profile(path: Path) -> YamlDocument:
    """A profile's mapping, as written, or a located ConfigError."""
    document = read_yaml(path)
    assert document is not None
    if document.problems:
        raise ConfigError(document.problems)
    if not isinstance(document.data, dict):
        got = "an empty file" if document.data is None else type(document.data).__name__
        raise ConfigError(
            [Problem(path, document.line_of(()) or 1, "", f"expected a mapping, got {got}")]
        )
    return document


def _field(document: YamlDocument, field: str, why: str) -> Any:
    """A field of a profile's mapping, as written; a located ConfigError when it is absent."""
    if document.data.get(field) is None:
        problem = Problem(document.path, document.line_of(()), field, f"required; missing ({why})")
        raise ConfigError([problem])
    return document.data[field]


def per_node_rps_of(capacity: Capacity) -> float:
    """The pool's per-node rate: the number in the config, or the one in its profile."""
    if capacity.per_node_rps is not None:
        return capacity.per_node_rps
    assert capacity.profile is not None  # Capacity requires exactly one of the two
    return read_per_node_rps(capacity.profile)


def boot_time_of(pool: Pool) -> timedelta:
    """The pool's boot time: its own, plus the profile's start-up time when it asks for it."""
    capacity = pool.capacity
    if not capacity.startup_in_boot_time or capacity.profile is None:
        return pool.boot_time
    return pool.boot_time + timedelta(seconds=read_startup_s(capacity.profile))
