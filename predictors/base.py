"""The predictor interface: fit on demand history, forecast a horizon.

Modelled on scikit-learn estimators: the constructor takes parameters only,
`fit` learns, `forecast` answers; no I/O and no clock of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Calibration:
    """What a calibration that wraps a predictor made of its band, for the daemon's /metrics
    (autoscaler.calibration: the loop-calibrated margin and the portfolio member)."""

    margin: float
    """The multiple of the followed member's band the fleet is sized for."""
    member: str
    """The portfolio member followed: forecast, reactive, recent_peak or static."""
    service_target: float
    budget_spent: float | None = None
    """The late share the loop had over its kept ticks, as a share of the target; None
    before the first calibration."""
    notes: tuple[str, ...] = ()
    """What the calibration did, in words (the budget used, the margin's move, the policy
    followed and why): said in the decision's reasons."""
    floor: float | None = None
    """The narrowest margin the last calibration could choose: under `margin: widen`, 1
    while the budget is being spent, under it only as far as an unspent budget earned."""


@dataclass(frozen=True)
class Forecast:
    """Demand (req/s) at each future step, with an upper quantile that sizes the fleet."""

    times: pd.DatetimeIndex
    point: np.ndarray
    upper: np.ndarray
    model: str
    notes: tuple[str, ...] = field(default=())
    little_history: str | None = None
    """Set while the model has less history than it needs to be as sure as its band says:
    what it has and what it needs (the daemon puts it in the decision's reasons)."""
    calibration: Calibration | None = None
    """Set by a calibrating wrapper (margin: loop); None for a band as the model made it."""

    def peak_upper(self) -> float:
        return float(np.max(self.upper)) if len(self.upper) else float("nan")

    def peak_point(self) -> float:
        return float(np.max(self.point)) if len(self.point) else float("nan")


class Predictor(Protocol):
    """Anything that learns from a demand series and forecasts past the boot time."""

    name: str

    def fit(self, history: pd.Series) -> Predictor:
        """Learn from `history`: req/s indexed by a UTC DatetimeIndex at a fixed step."""
        ...

    def forecast(self, horizon: timedelta) -> Forecast:
        """Forecast every step from just after the last observation up to `horizon`."""
        ...


def future_index(history: pd.Series, horizon: timedelta) -> pd.DatetimeIndex:
    """The timestamps a forecast covers: one per history step, up to the horizon."""
    step = infer_step(history)
    steps = max(1, int(np.ceil(horizon / step)))
    return pd.date_range(history.index[-1] + step, periods=steps, freq=step)


def infer_step(history: pd.Series) -> pd.Timedelta:
    if len(history) < 2:
        return pd.Timedelta(minutes=1)
    # In nanoseconds whatever the index's own unit (ns, us), which varies with pandas and input.
    times_ns = pd.DatetimeIndex(history.index).as_unit("ns").asi8
    steps = np.diff(times_ns)
    if np.all(steps == steps[0]):  # a regular grid, the usual case: no median to sort for
        return pd.Timedelta(int(steps[0]), unit="ns")
    return pd.Timedelta(int(np.median(steps)), unit="ns")
