"""What a config mistake is: a file, a line, a field and what is expected there.

Its own room because every reader of a config file (YAML, pool files, overrides,
cross-file checks) reports through it, and it depends on none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.secrets import redact

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        """FILE:LINE: FIELD: MESSAGE, with every known secret redacted: a value expanded
        from `${SLACK_BOT_TOKEN}` into the wrong key is quoted back in the message."""
        where = f"{self.file}:{self.line}" if self.line is not None else f"{self.file}"
        message = redact(self.message)  # not the field: "headers.X-Api-Key: ..." is no secret
        return f"{where}: {self.field}: {message}" if self.field else f"{where}: {message}"


class ConfigError(Exception):
    """One or more problems in a file; str() lists them all, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def field_name(loc: Loc) -> str:
    """('pools', 0, 'capacity', 'x') -> 'pools[0].capacity.x'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def unique_problems(problems: list[Problem]) -> list[Problem]:
    """Without repeats, in file order."""
    return sorted(dict.fromkeys(problems), key=lambda p: (str(p.file), p.line or 0))
