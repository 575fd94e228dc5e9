"""Read YAML files into models, turning every mistake into "FILE:LINE: FIELD: what is expected".

YAML is composed (not just loaded) so each value keeps the line it was written on;
pydantic's error locations are then mapped back onto those lines. People edit these
files by hand at 3 a.m.; a traceback or a silently ignored key is not an answer.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autoscaler.config.expand import expand_scalar
from autoscaler.config.schema import Config, resolve_paths
from autoscaler.overrides import OverridesFile

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
MAIN_FILE = "autoscaler.yaml"  # the main config when --config names a folder
MAX_VALUES = 100_000
MAX_DEPTH = 50


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else f"{self.file}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """One or more problems in a file; str() lists them all, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class YamlDocument:
    """Plain data from a YAML file plus the line each mapping entry or list item sits on."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # found while reading: duplicate keys

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest part of `loc` that exists in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None


def field_name(loc: Loc) -> str:
    """('pools', 0, 'capacity', 'x') -> 'pools[0].capacity.x'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# ---- reading YAML with line marks --------------------------------------------------


def read_yaml(
    path: Path, *, missing_ok: bool = False, env: Mapping[str, str] | None = None
) -> YamlDocument | None:
    """Parse one YAML document; None only when `missing_ok` and the file does not exist.
    With `env`, `${VAR}` in values is expanded from it (autoscaler.config.expand)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError([Problem(path, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([Problem(path, None, "", f"cannot read file: {reason}")]) from None
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = f"character {chr(exc.character)!r} is not allowed in YAML"
        raise ConfigError([Problem(path, line, "", message)]) from None
    try:
        node = loader.get_single_node()
        builder = _Builder(path, loader, env)
        data = None if node is None else builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f" at column {mark.column + 1}" if mark else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError([Problem(path, line, "", f"malformed YAML{column}: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(path, None, "", f"malformed YAML: {exc}")]) from None
    except RecursionError:  # PyYAML composes nested values recursively
        message = f"values nested too deeply (more than {MAX_DEPTH} levels are never needed)"
        raise ConfigError([Problem(path, None, "", message)]) from None
    finally:
        loader.dispose()
    return YamlDocument(path, data, builder.lines, builder.problems)


class _Builder:
    """Turns composed nodes into plain data, noting lines and duplicate keys on the way."""

    def __init__(
        self, path: Path, loader: yaml.SafeLoader, env: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.loader = loader
        self.env = env
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self.count = 0

    def build(self, node: yaml.Node, loc: Loc, line: int | None = None) -> Any:
        self.count += 1
        if self.count > MAX_VALUES or len(loc) > MAX_DEPTH:
            # Aliases can repeat a subtree without end (or refer to themselves).
            raise yaml.MarkedYAMLError(
                problem="too many values or too deeply nested (aliases repeating themselves?)",
                problem_mark=node.start_mark,
            )
        self.lines[loc] = line if line is not None else node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        if self.env is not None and isinstance(node, yaml.ScalarNode):
            node, unset = expand_scalar(node, self.env, self.loader)
            for name in unset:
                self.problems.append(
                    Problem(
                        self.path,
                        self.lines[loc],
                        field_name(loc),
                        f"environment variable {name} is not set (${{{name}}}); set it, or "
                        f"give a default: ${{{name}:-value}}",
                    )
                )
        if node.tag in (_INT_TAG, _FLOAT_TAG) and node.style is None and ":" in node.value:
            # YAML 1.1 reads 10:30 as the base-60 number 630; a person meant a time.
            return node.value
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node)
            key_line = key_node.start_mark.line + 1
            if key in first_line:
                self.problems.append(
                    Problem(
                        self.path,
                        key_line,
                        field_name((*loc, key)),
                        f"duplicate key {key!r} (first set on line {first_line[key]}); "
                        "keep only one",
                    )
                )
            else:
                first_line[key] = key_line
        self.loader.flatten_mapping(node)  # resolves "<<: *anchor" merges
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            result[key] = self.build(value_node, (*loc, key), key_node.start_mark.line + 1)
        return result

    def _key(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise yaml.MarkedYAMLError(
                problem="a mapping key must be a plain value", problem_mark=node.start_mark
            )
        return node.value  # the text as written: pool "123" or key "on" stay strings


# ---- validating data against a model ------------------------------------------------


def parse_document(document: YamlDocument, model: type[M]) -> M:
    """Validate the document's data; every pydantic error becomes a located Problem."""
    if not isinstance(document.data, dict):
        got = "an empty file" if document.data is None else type(document.data).__name__
        line = document.line_of(()) or 1
        raise ConfigError([Problem(document.path, line, "", f"expected a mapping, got {got}")])
    try:
        parsed = model.model_validate(document.data)
    except ValidationError as exc:
        problems = [_problem(document, model, error) for error in exc.errors()]
        # A field already reported while reading (an unset ${VAR}) needs no second word.
        known = {(p.line, p.field) for p in document.problems}
        problems = [p for p in problems if (p.line, p.field) not in known]
        raise ConfigError(_unique([*document.problems, *problems])) from None
    if document.problems:
        raise ConfigError(document.problems)
    return parsed


def _unique(problems: list[Problem]) -> list[Problem]:
    """Without repeats, in file order."""
    return sorted(dict.fromkeys(problems), key=lambda p: (str(p.file), p.line or 0))


def _problem(document: YamlDocument, model: type[BaseModel], error: Any) -> Problem:
    loc, missing = _data_loc(document.data, tuple(error["loc"]))
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if kind == "missing":
        where = loc if missing is None else (*loc, missing)
        message = f"missing required key {missing!r}" if missing is not None else "required"
        return Problem(document.path, document.line_of(loc), field_name(where), message)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, tuple(error["loc"])[:-1], document.data)
        expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return Problem(
            document.path,
            document.line_of(loc),
            field_name(loc),
            f"unknown key {loc[-1]!r}{expected}",
        )
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        ctx = error.get("ctx", {})
        key = str(ctx.get("discriminator", "'kind'")).strip("'")
        tags = ctx.get("expected_tags", "")
        got = f"unknown {key} {ctx['tag']!r}" if "tag" in ctx else f"{key} is required"
        return Problem(
            document.path,
            document.line_of((*loc, key)),
            field_name((*loc, key)),
            f"{got}; expected one of: {tags}",
        )
    if isinstance(value, dict | list):
        # A check across several keys; point at the key it names, when it names one.
        named = _named_key(value, message)
        loc = (*loc, *named)
        dotted = field_name(named)
        if named and message.startswith(f"{dotted}: "):  # said once, as the field
            message = message.removeprefix(f"{dotted}: ")
    elif repr(value) not in message:
        message = f"{message} (got {value!r})"
    return Problem(document.path, document.line_of(loc), field_name(loc), message)


_PATH = re.compile(r"[A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*")


def _named_key(value: Any, message: str) -> Loc:
    """The key a cross-key check names, below the checked value: its first word
    ("max_nodes must be..."), or the first dotted path in it ("...: pools[0].backend (x):
    verify_tls: false") as far as it is written, then a key of that block named after it."""
    for found in _PATH.finditer(message):
        text = found.group(0)
        if found.start() > 0 and "." not in text and "[" not in text:
            continue
        loc: list[str | int] = []
        node = value
        for part in re.findall(r"\w+|\[\d+\]", text):
            key: str | int = int(part[1:-1]) if part.startswith("[") else part
            if not _has(node, key):
                break
            node = node[key]
            loc.append(key)
        if not loc:
            continue
        if isinstance(node, dict) and len(loc) == len(re.findall(r"\w+|\[\d+\]", text)):
            after = re.search(r"\b(\w+):", message[found.end() :])
            if after and after.group(1) in node:
                loc.append(after.group(1))
        return tuple(loc)
    return ()


def _data_loc(data: Any, error_loc: Loc) -> tuple[Loc, str | int | None]:
    """Keep the parts of a pydantic loc that exist in the data (dropping union tags).

    Returns that path and, for a key that is absent (a missing field), its name.
    """
    loc: list[str | int] = []
    node = data
    for i, part in enumerate(error_loc):
        if _has(node, part):
            node = node[part]
        elif isinstance(node, dict) and node.get("kind") == part:
            continue  # the tag of a discriminated union, e.g. 'simulated' from kind: simulated
        elif i == len(error_loc) - 1:
            return tuple(loc), part
        else:
            continue
        loc.append(part)
    return tuple(loc), None


def _allowed_keys(model: type[BaseModel], error_loc: Loc, data: Any) -> list[str]:
    """Field names of the model found at `error_loc`, following lists, dicts and tags."""
    target: Any = model
    node = data
    for part in error_loc:
        target = _unwrap(target, node)
        if isinstance(target, type) and issubclass(target, BaseModel):
            info = target.model_fields.get(str(part))
            if info is None:
                continue  # a union tag in the loc; _unwrap already chose the member
            target = info.annotation
        else:
            origin = typing.get_origin(target)
            args = typing.get_args(target)
            if origin is list and args:
                target = args[0]
            elif origin is dict and len(args) == 2:
                target = args[1]
        node = node[part] if _has(node, part) else None
    target = _unwrap(target, node)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _unwrap(target: Any, node: Any) -> Any:
    """Strip Annotated and Optional; pick the member of a `kind` union that the data names."""
    while True:
        origin = typing.get_origin(target)
        if origin is typing.Annotated:
            target = typing.get_args(target)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(target) if a is not type(None)]
            if len(members) == 1:
                target = members[0]
                continue
            kind = node.get("kind") if isinstance(node, dict) else None
            for member in members:
                if isinstance(member, type) and issubclass(member, BaseModel):
                    field_info = member.model_fields.get("kind")
                    if field_info and kind in typing.get_args(field_info.annotation):
                        return member
            return target
        return target


# ---- the two files the daemon reads ---------------------------------------------------


def main_file(path: Path) -> Path:
    """The config file `path` names: itself, or a folder's autoscaler.yaml."""
    return path / MAIN_FILE if path.is_dir() and (path / MAIN_FILE).is_file() else path


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the daemon's config; relative paths become relative to its folder.

    `path` is the config file, or a folder holding `autoscaler.yaml`; `${VAR}` in values
    is expanded from `env` (the process environment by default); `pool_dir` adds one pool
    per file (autoscaler.config.pool_dir).
    """
    # pool_dir reads its files through this module: imported here, not at the top.
    from autoscaler.config.pool_dir import duplicate_main_names, duplicate_names, read_pool_dir

    env = os.environ if env is None else env
    path = main_file(path)
    document = read_yaml(path, env=env)
    assert document is not None
    problems = duplicate_main_names(document)
    dir_pools, dir_problems = read_pool_dir(document, env)
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
        raise ConfigError(_unique([*problems, *dir_problems])) from None
    if problems or dir_problems:
        raise ConfigError([*problems, *dir_problems])
    return resolve_paths(config, path.parent)


def load_overrides(path: Path) -> OverridesFile:
    """A missing overrides file means no overrides; an unreadable or broken one is an error."""
    overrides, _ = read_overrides_document(path)
    return overrides


def read_overrides_document(path: Path) -> tuple[OverridesFile, YamlDocument | None]:
    """The overrides plus their line marks, for checks that span files (validate)."""
    document = read_yaml(path, missing_ok=True)
    if document is None or (document.data is None and not document.problems):
        return OverridesFile(), document
    return parse_document(document, OverridesFile), document
