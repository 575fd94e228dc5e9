"""Relative paths in a config made relative to the file they were written in.

Its own room because it walks any model generically, and pool files use it too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

PATH_LISTS = frozenset({"kubeconfig"})  # fields that may hold several paths, like $KUBECONFIG
M = TypeVar("M", bound=BaseModel)


def resolve_paths(config: M, base: Path) -> M:
    """Make every relative path in the config relative to the config file's folder.

    Walks every model, so a Path field added later is covered too. `~` is the home
    folder, and a kubeconfig may list several files, as $KUBECONFIG does.
    """
    return _with_paths_resolved(config, base)


def _with_paths_resolved(model: M, base: Path) -> M:
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path):
            resolve = _resolve_path_list if name in PATH_LISTS else resolve_path
            resolved: Any = resolve(value, base)
        elif isinstance(value, BaseModel):
            resolved = _with_paths_resolved(value, base)
        elif isinstance(value, list):
            resolved = [
                _with_paths_resolved(item, base) if isinstance(item, BaseModel) else item
                for item in value
            ]
        else:
            continue
        if resolved != value:
            updates[name] = resolved
    return model.model_copy(update=updates) if updates else model


def _resolve_path_list(paths: Path, base: Path) -> Path:
    parts = [str(resolve_path(Path(p), base)) for p in str(paths).split(os.pathsep) if p]
    return Path(os.pathsep.join(parts))


def resolve_path(path: Path, base: Path) -> Path:
    """`~/x` under the home folder, `x` under `base`; an absolute path as it is."""
    if str(path).startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:  # no home folder known: leave it for whoever opens it
            return path
    return path if path.is_absolute() else base / path
