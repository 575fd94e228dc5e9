"""Forecasters behind one small interface (see predictors.base).

Each predictor's parameters are its constructor's keyword arguments; their types,
defaults and bounds (an `Annotated[..., Field(...)]`) are read from the signature into
a pydantic model, so a config is checked against the same rules the constructor keeps,
with no second copy of the defaults.
"""

from __future__ import annotations

import functools
import inspect
import typing
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, create_model

from common.durations import parse_duration
from predictors.base import Calibration, Forecast, Predictor
from predictors.linear import LinearTrendPredictor
from predictors.seasonal import SeasonalPredictor

PREDICTORS: dict[str, type] = {"linear": LinearTrendPredictor, "seasonal": SeasonalPredictor}


def check_kind(kind: str) -> str:
    """The kind if a predictor of that name is registered, else a ValueError listing them."""
    if kind not in PREDICTORS:
        raise ValueError(f"unknown predictor {kind!r}; known: {', '.join(PREDICTORS)}")
    return kind


def make_predictor(kind: str, params: dict[str, Any] | None = None) -> Predictor:
    """Build a fresh predictor of `kind`; a ValueError says which parameter is wrong.

    Durations in `params` may be timedeltas or strings such as "14d" (as in YAML).
    """
    cls = PREDICTORS[check_kind(kind)]
    checked = check_params(kind, params or {})
    try:
        return cls(**checked)
    except (ValueError, TypeError, LookupError, ArithmeticError) as exc:
        raise ValueError(f"params: {exc}") from None


def check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the constructor takes them, or a ValueError naming each bad one."""
    model = params_model(PREDICTORS[check_kind(kind)])
    try:
        parsed = model.model_validate(params)
    except ValidationError as exc:
        raise ValueError("; ".join(_problem(kind, e) for e in exc.errors())) from None
    return {name: getattr(parsed, name) for name in parsed.model_fields_set}


@functools.cache
def params_model(cls: type) -> type[BaseModel]:
    """The pydantic model of a predictor class's keyword arguments (unknown names refused)."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        hint = hints.get(name, Any)
        if _base(hint) is timedelta:
            hint = Annotated[hint, BeforeValidator(parse_duration)]
        elif _base(hint) in (int, float):
            hint = Annotated[hint, BeforeValidator(_not_a_boolean)]
        fields[name] = (hint, parameter.default)
    config = ConfigDict(extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True)
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def _not_a_boolean(value: Any) -> Any:
    """YAML reads yes, on and true as True, which pydantic would take as 1 (and no as 0):
    `latency_target_s: yes` was a 1 s target, `weekly_harmonics: no` none, as the
    config's own numbers refuse (common.settings.Strict)."""
    if isinstance(value, bool):
        raise ValueError(
            "expected a number, not a boolean (YAML reads yes, no, on, off, true and false "
            "as booleans)"
        )
    return value


def _base(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _problem(kind: str, error: Any) -> str:
    name = ".".join(str(part) for part in error["loc"]) or "params"
    if error["type"] == "extra_forbidden":
        known = ", ".join(params_model(PREDICTORS[kind]).model_fields)
        return f"params.{name}: unknown parameter of the {kind} predictor; known: {known}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"params.{name}: {message} (got {error.get('input')!r})"


__all__ = [
    "PREDICTORS",
    "Calibration",
    "Forecast",
    "Predictor",
    "check_kind",
    "check_params",
    "make_predictor",
]
