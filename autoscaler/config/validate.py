"""Checks that span files: the config, its overrides file and its capacity profiles.

Each file is first read on its own (autoscaler.config.loader); here they are held against
each other, so that an override for a pool that does not exist, or a profile path
that points nowhere, is found by `autoscaler validate` and not at 3 a.m. by a tick.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from autoscaler.config.loader import load_config, main_file, read_overrides_document
from autoscaler.config.problems import ConfigError, Problem, field_name
from autoscaler.config.schema import Config
from autoscaler.config.yaml_reader import YamlDocument
from autoscaler.overrides import OverridesFile
from autoscaler.runtime import build_runtime


def unknown_override_pools(
    config: Config,
    overrides: OverridesFile,
    document: YamlDocument | None,
    path: Path,
    now: datetime,
) -> list[Problem]:
    """An override must name a pool of the config; a typo would silently do nothing. One
    expired does nothing anyway: left for a pool since removed, it made every `systemctl
    reload` (which validates first) fail."""
    pools = [p.name for p in config.pools]
    problems = []
    for name, override in overrides.overrides.items():
        if name not in pools and not override.is_expired(now):
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


def validate_files(
    config_path: Path, env: Mapping[str, str] = os.environ
) -> tuple[Config | None, list[Problem]]:
    """The config (None if it does not load) and every problem found across its files.

    After the schema, the config goes through the daemon's own start (build_runtime, as a
    dry run: nothing is written or taken), so whatever stops `run` stops `validate`.
    """
    config_path = main_file(config_path)
    try:
        config = load_config(config_path, env)
    except ConfigError as exc:
        return None, exc.problems
    problems: list[Problem] = []
    try:
        build_runtime(config, source=config_path, dry_run=True, env=env)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if config.overrides_file is not None:
        try:
            overrides, document = read_overrides_document(config.overrides_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            problems.extend(
                unknown_override_pools(
                    config, overrides, document, config.overrides_file, datetime.now(UTC)
                )
            )
    return config, problems
