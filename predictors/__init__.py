"""Forecasters behind one small interface (see predictors.base)."""

from __future__ import annotations

from typing import Any

from predictors.base import Forecast, Predictor
from predictors.linear import LinearTrendPredictor

PREDICTORS: dict[str, type] = {"linear": LinearTrendPredictor}


def make_predictor(kind: str, params: dict[str, Any] | None = None) -> Predictor:
    """Build a fresh predictor of `kind`; durations in `params` may be timedeltas."""
    try:
        cls = PREDICTORS[kind]
    except KeyError:
        raise ValueError(f"unknown predictor {kind!r}; known: {', '.join(PREDICTORS)}") from None
    return cls(**(params or {}))


__all__ = ["PREDICTORS", "Forecast", "Predictor", "make_predictor"]
