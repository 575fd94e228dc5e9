"""The seed's predictor: a linear regression on the recent request rate.

Kept as the reference the stronger forecasters must beat. It fits demand against
time over the recent window and extrapolates the line to the horizon; the upper
band adds a normal quantile of the residual spread.
"""

from __future__ import annotations

from datetime import timedelta
from statistics import NormalDist
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.linear_model import LinearRegression

from predictors.base import Forecast, future_index


class LinearTrendPredictor:
    name = "linear"

    def __init__(
        self,
        window: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(minutes=60),
        quantile: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.9,
    ) -> None:
        self.window = window
        self.quantile = quantile

    def fit(self, history: pd.Series) -> LinearTrendPredictor:
        clean = history[np.isfinite(history.to_numpy(dtype=float))]
        if clean.empty:
            raise ValueError("linear predictor needs at least one observation")
        if not clean.index.is_monotonic_increasing:  # its newest would be any sample's
            raise ValueError("history timestamps must increase")
        recent = clean[clean.index > clean.index[-1] - pd.Timedelta(self.window)]
        self._t0 = recent.index[-1]
        self._history = recent
        x = _seconds_since(recent.index, self._t0)
        self._model = LinearRegression().fit(x, recent.to_numpy(dtype=float))
        residuals = recent.to_numpy(dtype=float) - self._model.predict(x)
        self._spread = float(np.std(residuals)) if len(recent) > 2 else 0.0
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        times = future_index(self._history, horizon)
        point = np.clip(self._model.predict(_seconds_since(times, self._t0)), 0.0, None)
        z = NormalDist().inv_cdf(self.quantile)
        upper = point + max(z, 0.0) * self._spread
        return Forecast(times=times, point=point, upper=upper, model=self.name)


def _seconds_since(index: pd.DatetimeIndex, t0: pd.Timestamp) -> np.ndarray:
    return ((index - t0).total_seconds().to_numpy(dtype=float)).reshape(-1, 1)
