"""A config directory: one file per pool beside the main config, like nomad-autoscaler's
policy directory. Teams own their pool's file; the main file keeps the global settings.

`pool_dir: pools.d` in the main config reads every `*.yaml`/`*.yml` there (sorted by
name, hidden files skipped) as one pool each; a file without `name` takes its file
name. Each file is checked on its own, so an error names that file and its line;
relative paths in it are relative to its own folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from autoscaler.config.locate_errors import parse_document
from autoscaler.config.paths import resolve_path, resolve_paths
from autoscaler.config.problems import ConfigError, Problem, field_name
from autoscaler.config.schema import Pool
from autoscaler.config.yaml_reader import YamlDocument, read_yaml

POOL_FILE_SUFFIXES = (".yaml", ".yml")


def pool_files(folder: Path) -> list[Path]:
    """Every pool file's path, a link to nowhere or a folder among them: skipped, its pool
    left the config unsaid and its fleet unscaled; read, it is an error naming it."""
    return sorted(
        p for p in folder.iterdir() if p.suffix in POOL_FILE_SUFFIXES and not p.name.startswith(".")
    )


def read_pool_dir(
    main: YamlDocument, env: Mapping[str, str]
) -> tuple[list[tuple[Path, Pool]], list[Problem]]:
    """The pools of the main config's `pool_dir` with their files, and every problem found
    in those files."""
    data = main.data if isinstance(main.data, dict) else {}
    setting = data.get("pool_dir")
    if setting is None:
        return [], []
    line = main.line_of(("pool_dir",))
    if not isinstance(setting, str) or not setting.strip():
        return [], [Problem(main.path, line, "pool_dir", "expected a folder path")]
    folder = resolve_path(Path(setting), main.path.parent)
    try:
        files = pool_files(folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return [], [Problem(main.path, line, "pool_dir", f"cannot list {folder}: {reason}")]
    if not files:
        return [], [Problem(main.path, line, "pool_dir", f"no pool files (*.yaml) in {folder}")]
    pools: list[tuple[Path, Pool]] = []
    problems: list[Problem] = []
    for path in files:
        try:
            pools.append((path, _read_pool(path, env)))
        except ConfigError as exc:
            problems.extend(exc.problems)
    return pools, problems


def _read_pool(path: Path, env: Mapping[str, str]) -> Pool:
    document = read_yaml(path, env=env)
    assert document is not None
    if isinstance(document.data, dict) and "name" not in document.data:
        document.data["name"] = path.stem
    pool = parse_document(document, Pool)
    return resolve_paths(pool, path.parent)


def duplicate_names(
    main: YamlDocument, main_pools: list[str], pools: list[tuple[Path, Pool]]
) -> list[Problem]:
    """A pool name in a pool file that the main file or an earlier pool file already uses."""
    seen = {
        name: f"{main.path}:{main.line_of(('pools', i, 'name'))}"
        for i, name in enumerate(main_pools)
    }
    problems = []
    for path, pool in pools:
        if pool.name in seen:
            document = read_yaml(path)
            line = document.line_of(("name",)) if document else None
            problems.append(
                Problem(
                    path,
                    line,
                    field_name(("name",)),
                    f"pool name {pool.name!r} is already used ({seen[pool.name]}); "
                    "pool names must be unique",
                )
            )
        else:
            seen[pool.name] = str(path)
    return problems


def duplicate_main_names(document: YamlDocument) -> list[Problem]:
    """Point at the second pool with a name, rather than at the whole file."""
    pools = document.data.get("pools") if isinstance(document.data, dict) else None
    if not isinstance(pools, list):
        return []
    seen: dict[str, int] = {}
    problems = []
    for i, pool in enumerate(pools):
        name = pool.get("name") if isinstance(pool, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            first = document.line_of(("pools", seen[name], "name"))
            problems.append(
                Problem(
                    document.path,
                    document.line_of(("pools", i, "name")),
                    field_name(("pools", i, "name")),
                    f"pool name {name!r} is already used by pools[{seen[name]}] (line {first}); "
                    "pool names must be unique",
                )
            )
        else:
            seen[name] = i
    return problems
