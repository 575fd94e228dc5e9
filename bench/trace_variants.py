"""Stress variants of a real trace: traffic that changes in ways its own history never showed.

A policy calibrated on the last week meets its target on that week's kind of traffic; a
user's traffic also steps up after a launch, grows for a season, moves its day to another
time zone, has a Black Friday, or runs campaigns at hours no schedule knows. Each variant
below is one such change laid over a real trace (its minute-level noise stays real), so
the untuned policy can be scored on it (`backtest_untuned.py --variants NAME`). The
changes are generic and fixed here, not fitted to any trace: a variant the policy misses
is a finding, not a reason to retune.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

DAY = 1440
"""Minutes in a day (the traces are one row per minute)."""
CAMPAIGN_SEED = 20261206
"""Where the campaigns' hours come from: fixed, so that runs compare."""


def step_up(counts: np.ndarray) -> np.ndarray:
    """Twice the traffic from the middle of the trace on (a launch, a new customer)."""
    out = counts.copy()
    out[len(out) // 2 :] *= 2.0
    return out


def ramp(counts: np.ndarray) -> np.ndarray:
    """Traffic growing steadily to three times its start by the end (a season)."""
    return counts * np.linspace(1.0, 3.0, len(counts))


def phase_shift(counts: np.ndarray) -> np.ndarray:
    """The day moves 7 hours earlier from the middle on (users in another time zone): the
    second half is the trace from 7 hours later, its last 7 hours repeated to keep the length."""
    cut, shift = len(counts) // 2, 7 * 60
    later = counts[cut + shift :]
    return np.concatenate([counts[:cut], later, later[-shift:]])[: len(counts)]


def spike_day(counts: np.ndarray) -> np.ndarray:
    """One day at four times its traffic, two thirds of the way in (a Black Friday)."""
    out = counts.copy()
    first = (len(out) * 2 // 3) // DAY * DAY
    out[first : first + DAY] *= 4.0
    return out


def campaigns(counts: np.ndarray) -> np.ndarray:
    """From the second week on, a 2-hour campaign at three times the traffic each day, at
    an hour drawn anew each day (what no daily or weekly season can learn)."""
    out = counts.copy()
    hours = np.random.default_rng(CAMPAIGN_SEED).integers(0, 22, size=len(out) // DAY + 1)
    for day in range(7, len(out) // DAY):
        start = day * DAY + int(hours[day]) * 60
        out[start : start + 120] *= 3.0
    return out


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "step2x": step_up,
    "ramp3x": ramp,
    "phase7h": phase_shift,
    "spikeday4x": spike_day,
    "campaigns3x": campaigns,
}


def write_played_twice(source: Path, name: str, folder: Path) -> Path:
    """The trace file `source` followed by itself, its timestamps continued a minute after
    its last, as `{name}_twice.csv` in `folder`: an event that comes round once in the
    trace's span comes round again after a calm stretch longer than the policy's replay
    window (a fortnight's surge, played twice, is four weeks of traffic)."""
    frame = pd.read_csv(source, dtype={"timestamp": str})
    folder.mkdir(parents=True, exist_ok=True)
    stamps = pd.to_datetime(frame["timestamp"], format="ISO8601", utc=True)
    again = stamps.iloc[-1] + pd.Timedelta(minutes=1) + (stamps - stamps.iloc[0])
    twice = pd.DataFrame(
        {
            "timestamp": [*frame["timestamp"], *again.dt.strftime("%Y-%m-%dT%H:%M:%SZ")],
            "requests": [*frame["requests"], *frame["requests"]],
        }
    )
    path = folder / f"{name}_twice.csv"
    twice.to_csv(path, index=False)
    return path


def write_variants(source: Path, name: str, folder: Path) -> list[Path]:
    """Each variant of the trace file `source` (`timestamp,requests`, one row per minute)
    as `{name}_{variant}.csv` in `folder`, its timestamps as they were."""
    frame = pd.read_csv(source, dtype={"timestamp": str})
    folder.mkdir(parents=True, exist_ok=True)
    counts = frame["requests"].to_numpy(dtype=float)
    paths = []
    for variant, change in VARIANTS.items():
        path = folder / f"{name}_{variant}.csv"
        changed = frame.assign(requests=np.round(change(counts), 3))
        changed[["timestamp", "requests"]].to_csv(path, index=False)
        paths.append(path)
    return paths
