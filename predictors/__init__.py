"""Forecasters behind one small interface (see predictors.base)."""

from __future__ import annotations

import inspect
from typing import Any

from common.durations import parse_duration
from predictors.base import Forecast, Predictor
from predictors.linear import LinearTrendPredictor
from predictors.seasonal import SeasonalPredictor

PREDICTORS: dict[str, type] = {"linear": LinearTrendPredictor, "seasonal": SeasonalPredictor}


def make_predictor(kind: str, params: dict[str, Any] | None = None) -> Predictor:
    """Build a fresh predictor of `kind`.

    Durations in `params` may be timedeltas or strings such as "14d" (as in YAML):
    a parameter annotated as a timedelta gets its string parsed here.
    """
    try:
        cls = PREDICTORS[kind]
    except KeyError:
        raise ValueError(f"unknown predictor {kind!r}; known: {', '.join(PREDICTORS)}") from None
    try:
        return cls(**_with_durations(cls, params or {}))
    except TypeError as exc:  # an unknown or misspelt parameter name
        raise ValueError(f"predictor {kind!r}: {exc}") from None


def _with_durations(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    signature = inspect.signature(cls)
    parsed = dict(params)
    for name, value in params.items():
        parameter = signature.parameters.get(name)
        is_duration = parameter is not None and "timedelta" in str(parameter.annotation)
        if is_duration and isinstance(value, str | int | float) and not isinstance(value, bool):
            parsed[name] = parse_duration(value)
    return parsed


__all__ = ["PREDICTORS", "Forecast", "Predictor", "make_predictor"]
