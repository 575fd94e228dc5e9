"""YAML composed (not just loaded), so each value keeps the line it was written on.

Its own room because it knows PyYAML's nodes and nothing of the models: the line
marks it keeps are what lets every later error name FILE:LINE.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoscaler.config.expand import expand_scalar, expand_text
from autoscaler.config.problems import ConfigError, Loc, Problem, field_name
from common.secrets import remember
from common.small_files import MIB, read_small_text

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
"""What YAML 1.1 reads as an octal number: `max_nodes: 010` is 8, `012` is 10."""
_NUL_MESSAGE = "holds a NUL character (\\0), which no setting can hold; remove it"
MAX_VALUES = 100_000
MAX_DEPTH = 50
MAX_BYTES = 4 * MIB
"""The largest YAML file read: a config of a thousand pools is ~1 MB, and PyYAML (pure
Python, for the line marks) composes about 1 MB a second or slower, before MAX_VALUES
is checked; a log or a dump named by mistake is refused at once instead."""


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


def read_yaml(
    path: Path,
    *,
    missing_ok: bool = False,
    env: Mapping[str, str] | None = None,
    max_bytes: int = MAX_BYTES,
) -> YamlDocument | None:
    """Parse one YAML document; None only when `missing_ok` and the file does not exist.
    With `env`, `${VAR}` in values is expanded from it (autoscaler.config.expand). A FIFO,
    a directory or a file over `max_bytes` is refused without waiting on it or reading it
    whole (common.small_files): the daemon reads these between ticks."""
    try:
        text = read_small_text(path, max_bytes)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError([Problem(path, None, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([_not_utf8(path, exc)]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
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


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> Problem:
    """Where the first byte that is not UTF-8 sits (line and column), not its offset."""
    data = bytes(exc.object)
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    byte = data[exc.start : exc.start + 1].hex()
    return Problem(
        path, line, "", f"byte 0x{byte} at column {column} is not UTF-8; save the file as UTF-8"
    )


_UNCONSTRUCTIBLE = (ValueError, TypeError, AttributeError, KeyError, OverflowError)
"""What PyYAML's constructors raise on a scalar of a type they cannot make: a date past
the month's end or hour 24 (ValueError), `!!timestamp foo` (AttributeError), `!!bool
maybe` (KeyError)."""


def _tag_name(tag: str) -> str:
    """`tag:yaml.org,2002:timestamp` as `a timestamp`, a local tag as written."""
    name = tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org,2002:") else tag
    return f"a{'n' if name[:1] in 'aeiou' else ''} {name}"


def _remember_if_secret(written: str, value: str, env: Mapping[str, str]) -> None:
    """A `*_env` value the environment gave may be the secret itself, put where its
    variable's name belongs. A name the file spells (`${VAR:-NOMAD_TOKEN}`'s default) or
    one naming a variable that is set is a name: remembered, it would be redacted from
    every message naming it ("environment variable [redacted] is not set")."""
    if value == written or value == expand_text(written, {})[0] or value in env:
        return
    remember(value)


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
            expanded, unset = expand_scalar(node, self.env, self.loader)
            if str(loc[-1] if loc else "").endswith("_env"):
                _remember_if_secret(node.value, expanded.value, self.env)
            node = expanded
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
        if node.tag == _INT_TAG and node.style is None and _OCTAL.fullmatch(node.value):
            # ...and 010 as the octal 8 (while 08 is text, read as 8): a person padding a
            # column meant ten. The text as written, for the model to read in decimal.
            return node.value
        try:
            value = self.loader.construct_object(node, deep=True)
        except _UNCONSTRUCTIBLE as exc:
            # A value YAML takes for a date, a number or a boolean but cannot make one of
            # (2027-02-29, 24:00, `!!int abc`): PyYAML raises a bare ValueError without a
            # mark, which would leave the reader as a traceback. Said where it is written.
            self.problems.append(
                Problem(
                    self.path,
                    self.lines[loc],
                    field_name(loc),
                    f"{node.value!r} cannot be read as {_tag_name(node.tag)}: {exc}",
                )
            )
            return node.value
        if isinstance(value, str) and "\x00" in value:
            # "\0" in double quotes: no path, name or query holds one, and a path with it
            # was a ValueError traceback wherever it was opened (validate, run, status)
            self.problems.append(Problem(self.path, self.lines[loc], field_name(loc), _NUL_MESSAGE))
        return value

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
