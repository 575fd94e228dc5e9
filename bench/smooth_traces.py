"""Synthetic smooth traffic: the class of trace a forecast should serve cheaply.

Issue 15's unseen traces included a large website and a city's demand for rides: smooth,
clock-driven traffic of many requests a minute, where the untuned policy was 0.00 % late,
buying safety nobody asked for. None of the real traces beside the project is of that
class (nasa_jul95 is Poisson-noisy at a few requests a node a minute, the others bursty
or sparse), so `backtest_untuned.py --smooth` scores two generated ones. They are
synthetic and fixed (seeded), not fitted to any policy: a daily cycle with quieter
weekends, and a commuter's day with a morning and an evening peak, each under a slow
random drift of its level and a day-to-day level noise, with Poisson counts per minute.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

SEED = 20261206
"""Fixed, so that runs compare."""
START = "2024-03-04"  # a Monday
DRIFT_PER_MINUTE = 0.004
"""The log level's random walk step, mean-reverting over about 8 hours."""
DRIFT_MEMORY = 0.998
DAY_NOISE = 0.05
"""The log level of each day, drawn apart (a busier or a quieter day)."""

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Relative rate at each minute, from its hour of the day (float) and its weekday (0-6)."""


def website(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """A day peaking at noon, about 3 x its night low; weekends at three quarters."""
    day = np.clip(0.5 + 0.5 * np.sin((hour - 6.0) / 24.0 * 2.0 * np.pi), 0.0, 1.0)
    return (0.35 + 0.65 * day**1.5) * np.where(weekday >= 5, 0.75, 1.0)


def commute(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Rides: a morning and an evening peak and a lunch bump over a quiet night, steep
    ramps (several x within two hours); weekends at four fifths."""
    peaks = (
        np.exp(-(((hour - 8.5) / 1.5) ** 2))
        + 0.9 * np.exp(-(((hour - 18.0) / 2.0) ** 2))
        + 0.4 * np.exp(-(((hour - 13.0) / 2.5) ** 2))
    )
    return (0.15 + peaks) * np.where(weekday >= 5, 0.8, 1.0)


TRACES: dict[str, tuple[int, float, Shape]] = {
    "synthetic_website": (28, 3000.0, website),
    "synthetic_commute": (35, 400.0, commute),
}
"""Name: days, requests a minute at the shape's 1, shape."""


def smooth_counts(days: int, scale: float, shape: Shape, seed: int = SEED) -> pd.Series:
    """Requests each minute, on a UTC minute grid starting at START."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=days * 1440, freq="1min", tz="UTC")
    hour = (times.hour + times.minute / 60.0).to_numpy()
    steps = rng.normal(0.0, DRIFT_PER_MINUTE, len(times))
    drift = lfilter([1.0], [1.0, -DRIFT_MEMORY], steps)  # an AR(1) walk of the log level
    daily = rng.normal(0.0, DAY_NOISE, days).repeat(1440)
    rate = scale * shape(hour, times.day_of_week.to_numpy()) * np.exp(drift + daily)
    return pd.Series(rng.poisson(rate), index=times, name="requests")


def write_counts(counts: pd.Series, path: Path) -> Path:
    """Requests per minute as a trace file (timestamp,requests), as the backtest reads it."""
    frame = pd.DataFrame(
        {"timestamp": counts.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "requests": counts}
    )
    frame.to_csv(path, index=False)
    return path


def write_smooth_traces(folder: Path) -> list[Path]:
    """Each of TRACES as `<name>.csv` (timestamp,requests) in `folder`."""
    return [
        write_counts(smooth_counts(days, scale, shape), folder / f"{name}.csv")
        for name, (days, scale, shape) in TRACES.items()
    ]
