"""The two files the daemon reads, each turned into a model or "FILE:LINE: FIELD: ..." errors.

The parts are rooms of their own: YAML with line marks (yaml_reader.py), pydantic's
errors put back on those lines (locate_errors.py), the error type (problems.py).
People edit these files by hand at 3 a.m.; a traceback or an ignored key is no answer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from autoscaler.config.fleets import shared_fleets
from autoscaler.config.locate_errors import parse_document
from autoscaler.config.paths import resolve_paths
from autoscaler.config.pool_dir import duplicate_main_names, duplicate_names, read_pool_dir
from autoscaler.config.problems import ConfigError, unique_problems
from autoscaler.config.schema import Config
from autoscaler.config.yaml_reader import YamlDocument, read_yaml
from autoscaler.overrides import OverridesFile
from common.secrets import remember_environment

MAIN_FILE = "autoscaler.yaml"  # the main config when --config names a folder
OVERRIDES_MAX_BYTES = 256 * 1024
"""The largest overrides file read (thousands of overrides; a few kB in practice): it is
re-read inside a tick whenever it changes, and YAML takes ~2 s for this much."""


def main_file(path: Path) -> Path:
    """The config file `path` names: itself, or a folder's autoscaler.yaml."""
    return path / MAIN_FILE if path.is_dir() and (path / MAIN_FILE).is_file() else path


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the daemon's config; relative paths become relative to its folder.

    `path` is the config file, or a folder holding `autoscaler.yaml`; `${VAR}` in values
    is expanded from `env` (the process environment by default); `pool_dir` adds one pool
    per file (autoscaler.config.pool_dir).
    """
    env = os.environ if env is None else env
    remember_environment(env)  # a secret expanded into a wrong key is quoted by its error
    path = main_file(path)
    document = read_yaml(path, env=env)
    assert document is not None
    problems = duplicate_main_names(document)
    dir_pools, dir_problems = read_pool_dir(document, env)
    main_pools = document.data.get("pools") if isinstance(document.data, dict) else None
    main_count = len(main_pools) if isinstance(main_pools, list) else 0
    if dir_pools:
        main_pools = document.data.get("pools") or []
        names = [p.get("name") for p in main_pools if isinstance(p, dict)]
        dir_problems += duplicate_names(document, names, dir_pools)
        if isinstance(main_pools, list):
            document.data["pools"] = [*main_pools, *(pool for _, pool in dir_pools)]
    try:
        config = parse_document(document, Config)
    except ConfigError as exc:
        problems += [p for p in exc.problems if not p.message.startswith("pool names must be")]
        raise ConfigError(unique_problems([*problems, *dir_problems])) from None
    config = resolve_paths(config, path.parent)  # a kubeconfig named from two folders
    problems += shared_fleets(config.pools, document, main_count, [p for p, _ in dir_pools])
    if problems or dir_problems:
        raise ConfigError([*problems, *dir_problems])
    return config


def load_overrides(path: Path) -> OverridesFile:
    """A missing overrides file means no overrides; an unreadable or broken one is an error."""
    overrides, _ = read_overrides_document(path)
    return overrides


def read_overrides_document(path: Path) -> tuple[OverridesFile, YamlDocument | None]:
    """The overrides plus their line marks, for checks that span files (validate)."""
    document = read_yaml(path, missing_ok=True, max_bytes=OVERRIDES_MAX_BYTES)
    if document is None or (document.data is None and not document.problems):
        return OverridesFile(), document
    return parse_document(document, OverridesFile), document
