"""Synthetic batch traffic: a smooth daily cycle with a batch that recurs at a set time.

A weekly batch (Mondays 06:00-08:00 at 10 x) is the class the forecaster's point choice
was changed for (predictors/point_choice.py, issue 15): the held last sample writes the
batch's onset off against the week's budget, and the loop then pays for that day with a
week of wide margins. `backtest_untuned.py --batches` scores three generated traces:
that one, a daily batch (02:00-02:20 at 5 x) and the plain cycle under them. Fixed
(seeded) and not fitted to any policy: 28 days from a Monday, Poisson minute counts
around 40 x (2.5 - 1.5 cos(2 pi (hour - 3) / 24)) requests a minute.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from smooth_traces import write_counts

SEED = 15
"""Fixed, so that runs compare (docs/untuned-policy.md's figures are of this seed)."""
START = "2025-06-02"  # a Monday
DAYS = 28

Batch = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""The rate's factor at each minute, from its hour of the day (float) and weekday (0-6)."""


def monday_batch(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    return np.where((weekday == 0) & (hour >= 6.0) & (hour < 8.0), 10.0, 1.0)


def nightly_batch(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    return np.where((hour >= 2.0) & (hour < 2.0 + 20 / 60), 5.0, 1.0)


def no_batch(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    return np.ones_like(hour)


TRACES: dict[str, Batch] = {
    "synthetic_monday_batch": monday_batch,
    "synthetic_nightly_batch": nightly_batch,
    "synthetic_cycle": no_batch,
}


def batch_counts(batch: Batch, seed: int = SEED) -> pd.Series:
    """Requests each minute, on a UTC minute grid starting at START."""
    times = pd.date_range(START, periods=DAYS * 1440, freq="1min", tz="UTC")
    hour = (times.hour + times.minute / 60.0).to_numpy()
    level = 2.5 - 1.5 * np.cos(2.0 * np.pi * (hour - 3.0) / 24.0)
    rate = 40.0 * level * batch(hour, times.day_of_week.to_numpy())
    return pd.Series(np.random.default_rng(seed).poisson(rate), index=times, name="requests")


def write_batch_traces(folder: Path) -> list[Path]:
    """Each of TRACES as `<name>.csv` (timestamp,requests) in `folder`."""
    return [
        write_counts(batch_counts(batch), folder / f"{name}.csv") for name, batch in TRACES.items()
    ]
