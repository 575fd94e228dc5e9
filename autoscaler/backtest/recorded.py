"""A forecast recorded once and played back: a knob sweep replays the same pool many
times with one forecaster, whose answers do not depend on the knob, so it is fitted on
the first run only (tuning.py) and the others read its answers in order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pandas as pd

from predictors import Forecast, Predictor


class RecordingPredictor:
    """Passes through to a real predictor and keeps every forecast, for replays."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.name = inner.name
        self.records: list[Forecast | Exception] = []

    def fit(self, history: pd.Series) -> RecordingPredictor:
        try:
            self.inner.fit(history)
        except (ValueError, ArithmeticError) as exc:
            self.records.append(exc)
            raise
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        try:
            result = self.inner.forecast(horizon)
        except (ValueError, ArithmeticError) as exc:
            self.records.append(exc)
            raise
        self.records.append(result)
        return result


class PlaybackPredictor:
    """Gives back recorded forecasts in order: the same answers, without refitting."""

    def __init__(self, name: str, records: Sequence[Forecast | Exception]) -> None:
        self.name = name
        self.records = records
        self.position = 0

    def fit(self, history: pd.Series) -> PlaybackPredictor:
        record = self.records[self.position]
        if isinstance(record, Exception):
            self.position += 1
            raise record
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        record = self.records[self.position]
        self.position += 1
        assert isinstance(record, Forecast)
        return record
