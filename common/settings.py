"""The base of every settings model: unknown keys are errors, values are frozen."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, model_validator
from pydantic_core import ErrorDetails

from common.secrets import remember
from common.transport import http_url_problem

NUMBERS = (int, float)
MAX_NODES = 1_000_000
"""The most nodes a setting may name (a pool's bounds, a schedule's, an override's, a
simulated fleet's start): far above any fleet, and far below what breaks a fleet's API
(Kubernetes' replicas are 32-bit) or a count kept as a 64-bit integer."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")
"""Text pydantic reads as a number of seconds since 1970 where a datetime belongs."""


class Strict(BaseModel):
    """A typo in a config key is an error rather than a silently ignored setting; an
    infinite or NaN number is one too (an infinite per-node capacity reads as 0 nodes),
    and so is a boolean where a number belongs: YAML reads `yes`, `on` and `true` as
    True, which pydantic would take as 1 (`max_nodes: yes` a fleet of at most one node,
    `target_utilization: on` full use)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        """A check of the input, not a field validator: pydantic allows none on the `kind`
        keys its tagged unions are told apart by. The message starts with the key, which
        puts the config error at its line (autoscaler.config.locate_errors)."""
        if not isinstance(data, dict):
            return data
        for key, value in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if (
                isinstance(value, bool)
                and field
                and _takes_a_number_not_a_boolean(field.annotation)
            ):
                raise ValueError(
                    f"{key}: expected a number, got the boolean {str(value).lower()} (YAML "
                    "reads yes, no, on, off, true and false as booleans)"
                )
            if _a_number(value) and field and _takes_a_time(field.annotation):
                # pydantic reads a number as seconds since 1970, and a quoted one too:
                # `expires: 20261127` was an override expired in 1970, ignored and
                # reported as expired
                raise ValueError(
                    f"{key}: expected a date and time with a UTC offset, such as "
                    f"2026-11-27T18:00:00+05:30, got the number {value}"
                )
        return data


def _a_number(value: Any) -> bool:
    """A number, or text that is one (`expires: '20261127'`), as pydantic reads it."""
    return isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER_TEXT.fullmatch(value) is not None
    )


def _takes_a_time(annotation: Any) -> bool:
    """datetime (or pydantic's AwareDatetime), alone or in a union (`datetime | None`)."""
    if annotation is datetime or annotation is AwareDatetime:
        return True
    return any(_takes_a_time(option) for option in get_args(annotation))


def _takes_a_number_not_a_boolean(annotation: Any) -> bool:
    """int or float, alone or in a union (`int | None`), and no bool beside them."""
    if annotation in NUMBERS:
        return True
    options = get_args(annotation)
    return bool not in options and any(_takes_a_number_not_a_boolean(o) for o in options)


def _variable_name(value: str) -> str:
    """A `*_env` setting names a variable; a value that cannot be a name is the secret
    itself (pasted, or `${VAR}` expanded): remembered, so no error shows it."""
    if not _ENV_NAME.fullmatch(value):
        remember(value)
        raise ValueError(
            "expected the name of an environment variable (letters, digits and _, such as "
            "SLACK_BOT_TOKEN), not its value: the secret goes in that variable"
        )
    return value


EnvName = Annotated[str, AfterValidator(_variable_name)]
"""The name of the environment variable a secret is read from (`token_env`)."""


def _http_url(value: str) -> str:
    problem = http_url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _promql(value: str) -> str:
    if not value.strip():  # Prometheus answers 400 "no expression found" at every tick
        raise ValueError("is empty: give a PromQL expression")
    return value


def _named(value: str) -> str:
    if not value.strip():  # the API answers "not found" at every tick
        raise ValueError("is empty: give its name (a blank one is looked up in vain at every tick)")
    return value


PromQL = Annotated[str, AfterValidator(_promql)]
"""A PromQL expression; a blank one (an unset `${VAR:-}`) is refused, not sent every tick."""

Name = Annotated[str, AfterValidator(_named)]
"""What a fleet or a channel is found by (a Nomad job, an Auto Scaling group): a blank one
(`${VAR}` set empty) is refused, not looked up in vain every tick."""

ApiUrl = Annotated[str, AfterValidator(_http_url)]
"""An HTTP API's address: http:// or https:// and a host (Prometheus, Nomad, Slack)."""


def validation_problem(error: ErrorDetails, names: Mapping[str, str] | None = None) -> str:
    """One pydantic error as people read it, "field: message", without pydantic's "Value
    error, " prefix; `names` spells a field as the user gave it (a command-line flag)."""
    where = ".".join(str(part) for part in error["loc"])
    where = (names or {}).get(where, where)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
