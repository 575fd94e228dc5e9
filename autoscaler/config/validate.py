"""Checks that span files: the config, its overrides file and its capacity profiles.

Each file is first read on its own (autoscaler.config.loader); here they are held against
each other, so that an override for a pool that does not exist, or a profile path
that points nowhere, is found by `autoscaler validate` and not at 3 a.m. by a tick.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from autoscaler.config.capacity import read_per_node_rps
from autoscaler.config.loader import (
    ConfigError,
    Problem,
    YamlDocument,
    field_name,
    load_config,
    main_file,
    read_overrides_document,
    read_yaml,
)
from autoscaler.config.pool_dir import pool_file_of
from autoscaler.config.schema import Config, PrometheusMetrics
from autoscaler.metrics_auth import CredentialError, query_credentials
from autoscaler.overrides import OverridesFile


def unknown_override_pools(
    config: Config, overrides: OverridesFile, document: YamlDocument | None, path: Path
) -> list[Problem]:
    """An override must name a pool of the config; a typo would silently do nothing."""
    pools = [p.name for p in config.pools]
    problems = []
    for name in overrides.overrides:
        if name not in pools:
            loc = ("overrides", name)
            line = document.line_of(loc) if document is not None else None
            problems.append(
                Problem(
                    path,
                    line,
                    field_name(loc),
                    f"unknown pool {name!r}; the config has: {', '.join(pools)}",
                )
            )
    return problems


def profile_problems(config: Config, config_path: Path) -> list[Problem]:
    """Every capacity profile the pools name must exist and give a usable per_node_rps."""
    document: YamlDocument | None = None
    problems: list[Problem] = []
    for index, pool in enumerate(config.pools):
        profile = pool.capacity.profile
        if profile is None:
            continue
        if not profile.exists():
            if document is None:
                document = read_yaml(config_path)
            where, loc = _pool_source(config, config_path, document, index, pool.name)
            loc = (*loc, "capacity", "profile")
            source = document if where == config_path else read_yaml(where)
            problems.append(
                Problem(
                    where,
                    source.line_of(loc) if source else None,
                    field_name(loc),
                    f"capacity profile {profile} not found; run gpu-bench to write one, "
                    "or give per_node_rps",
                )
            )
            continue
        try:
            read_per_node_rps(profile)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def _pool_source(
    config: Config, config_path: Path, document: YamlDocument | None, index: int, name: str
) -> tuple[Path, tuple[str | int, ...]]:
    """The file a pool was written in and its place there: the main file's pools[i], or
    its own file in pool_dir (autoscaler.config.pool_dir)."""
    inline = document.data.get("pools") if document and isinstance(document.data, dict) else None
    if config.pool_dir is not None and index >= len(inline or []):
        found = pool_file_of(config.pool_dir, name)
        if found is not None:
            return found, ()
    return config_path, ("pools", index)


def credential_problems(config: Config, config_path: Path, env: Mapping[str, str]) -> list[Problem]:
    """The metrics credentials `run` reads at start: each variable set, each file readable."""
    if not isinstance(config.metrics, PrometheusMetrics):
        return []
    try:
        query_credentials(config.metrics, env)
    except CredentialError as exc:
        document = read_yaml(config_path)
        line = document.line_of(exc.loc) if document else None
        return [Problem(config_path, line, field_name(exc.loc), exc.reason)]
    return []


def validate_files(config_path: Path) -> tuple[Config | None, list[Problem]]:
    """The config (None if it does not load) and every problem found across its files."""
    config_path = main_file(config_path)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return None, exc.problems
    problems = profile_problems(config, config_path)
    problems += credential_problems(config, config_path, os.environ)
    if config.overrides_file is not None:
        try:
            overrides, document = read_overrides_document(config.overrides_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            problems.extend(
                unknown_override_pools(config, overrides, document, config.overrides_file)
            )
    return config, problems
