"""pydantic's validation errors mapped back onto the lines of the YAML file.

Its own room because it walks pydantic's error locations and model annotations
(unions, tags, lists) and knows nothing of which file is being read.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from autoscaler.config.problems import ConfigError, Loc, Problem, field_name, unique_problems
from autoscaler.config.yaml_reader import YamlDocument

M = TypeVar("M", bound=BaseModel)


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
        raise ConfigError(unique_problems([*document.problems, *problems])) from None
    if document.problems:
        raise ConfigError(document.problems)
    return parsed


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
        tags = ctx.get("expected_tags") or ", ".join(
            _union_tags(model, tuple(error["loc"]), document.data, key)
        )
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
    target = _unwrap(*_annotation_at(model, error_loc, data))
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _union_tags(model: type[BaseModel], error_loc: Loc, data: Any, key: str) -> list[str]:
    """The values `key` may take in the tagged union at `error_loc` (pydantic names them
    only when the tag is wrong, not when it is missing)."""
    target, _ = _annotation_at(model, error_loc, data)
    while typing.get_origin(target) is typing.Annotated:
        target = typing.get_args(target)[0]
    tags = []
    for member in typing.get_args(target):
        field_info = getattr(member, "model_fields", {}).get(key)
        if field_info is not None:
            tags += [repr(tag) for tag in typing.get_args(field_info.annotation)]
    return tags


def _annotation_at(model: type[BaseModel], error_loc: Loc, data: Any) -> tuple[Any, Any]:
    """The annotation of the value at `error_loc`, and that value in the data."""
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
    return target, node


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
