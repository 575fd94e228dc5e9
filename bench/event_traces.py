"""Synthetic calendar-driven traffic: scheduled events, and a week off.

Issue 15's unseen traces included 87 days of event-driven sports traffic. None of the
real traces beside the project is of that class (the social API's surges come at any
time; servegen's and nasa's days follow the clock), so `backtest_untuned.py --events`
scores two generated traces where the calendar, not the hour, sets the traffic. They are
synthetic and fixed (seeded), not fitted to any policy; both use bench/smooth_traces.py's
drift and day noise, with Poisson counts per minute:

- synthetic_sports: an evening-peaking day with a season of matches on top. Matches fall
  on some weekend afternoons and evenings and some midweek evenings, not every week
  alike; each brings a crowd that builds over the hour before kick-off, holds for two
  hours with short surges (goals), and drains over an hour after. Most matches bring 2-4
  x the ordinary evening, a few derbies more; two international breaks have none; the
  season ends with a final bigger than any match before it.
- synthetic_office: office hours (a steep start at 09:00, a lunch dip, about 10 x the
  night), quiet weekends, and a week off (Christmas) in the fifth week, after which the
  Monday morning comes back at full strength.

In both, a week or two without the events is followed by them: what a week's replay of
the recent past cannot show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from smooth_traces import (  # run from bench/: its folder is on sys.path
    DAY_NOISE,
    DRIFT_MEMORY,
    DRIFT_PER_MINUTE,
    write_counts,
)

SEED = 20261207
"""Fixed, so that runs compare."""
START = "2024-08-05"  # a Monday
DAYS = 87
SCALE = 600.0
"""Requests a minute at the ordinary day's peak."""
SLOTS = ((5, 13.0), (5, 17.5), (6, 14.0), (6, 16.5), (1, 19.75), (2, 19.75))
"""(weekday, kick-off hour): the slots a match may take."""
SLOT_TAKEN = 0.6
BREAKS = ((27, 41), (62, 69))
"""Days (from START) with no matches: international breaks."""
FINAL_LIFT = 7.0
"""The last match of the season brings this many x the ordinary evening."""


def ordinary_day(hour: np.ndarray) -> np.ndarray:
    """Quiet before dawn, busiest in the evening (about 3 x the night low)."""
    return 0.3 + 0.7 * np.exp(-(((hour - 20.0) / 4.5) ** 2))


def match_lift(minutes_from_kickoff: np.ndarray) -> np.ndarray:
    """The crowd a match brings, as a share of its peak: building over the hour before
    kick-off, held for the two hours of play, drained over the hour after."""
    t = minutes_from_kickoff
    building = np.clip((t + 60.0) / 60.0, 0.0, 1.0) ** 2
    draining = np.clip(1.0 - (t - 120.0) / 60.0, 0.0, 1.0)
    return np.where(t < 0, building, np.where(t <= 120.0, 1.0, draining)) * (t > -60.0)


def event_counts(seed: int = SEED) -> pd.Series:
    """Requests each minute, on a UTC minute grid starting at START."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=DAYS * 1440, freq="1min", tz="UTC")
    minute = np.arange(len(times), dtype=float)
    hour = (times.hour + times.minute / 60.0).to_numpy()
    drift = lfilter([1.0], [1.0, -DRIFT_MEMORY], rng.normal(0.0, DRIFT_PER_MINUTE, len(times)))
    daily = rng.normal(0.0, DAY_NOISE, DAYS).repeat(1440)
    ordinary = ordinary_day(hour)
    extra = np.zeros(len(times))
    kickoffs = _kickoffs(rng)
    for number, kickoff in enumerate(kickoffs):
        last = number == len(kickoffs) - 1
        size = FINAL_LIFT if last else float(np.clip(rng.lognormal(np.log(2.5), 0.35), 1.5, 5.5))
        extra += size * match_lift(minute - kickoff)
        for goal in rng.uniform(0.0, 120.0, rng.poisson(2.5)):  # surges of a few minutes
            surge = np.clip(1.0 - np.abs(minute - kickoff - goal) / 4.0, 0.0, 1.0)
            extra += 0.6 * size * surge
    rate = SCALE * (ordinary + extra * 0.7) * np.exp(drift + daily)
    return pd.Series(rng.poisson(rate), index=times, name="requests")


def _kickoffs(rng: np.random.Generator) -> list[float]:
    """The season's kick-offs, in minutes from START: slots taken at random outside the
    breaks, and the final on the last Sunday."""
    found = []
    for day in range(DAYS):
        if any(first <= day <= last for first, last in BREAKS):
            continue
        weekday = (day + pd.Timestamp(START).day_of_week) % 7
        for slot_day, hour in SLOTS:
            if slot_day == weekday and rng.random() < SLOT_TAKEN:
                found.append(day * 1440.0 + hour * 60.0)
    last_sunday = max(d for d in range(DAYS - 1) if (d + pd.Timestamp(START).day_of_week) % 7 == 6)
    final = last_sunday * 1440.0 + 19.0 * 60.0
    return [k for k in found if k < final - 1440.0] + [final]


OFFICE_START = "2024-11-25"  # a Monday
OFFICE_DAYS = 49
OFFICE_SCALE = 800.0
"""Requests a minute at the office day's top."""
WEEK_OFF = (28, 35)
"""Days (from OFFICE_START) of the week off: weekend traffic all week."""


def office_counts(seed: int = SEED) -> pd.Series:
    """Requests each minute of office traffic, on a UTC minute grid from OFFICE_START."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(OFFICE_START, periods=OFFICE_DAYS * 1440, freq="1min", tz="UTC")
    hour = (times.hour + times.minute / 60.0).to_numpy()
    day = np.arange(len(times)) // 1440
    open_hours = 1.0 / (1.0 + np.exp(-(hour - 8.7) * 3.0)) / (1.0 + np.exp((hour - 17.5) * 2.0))
    lunch = 1.0 - 0.25 * np.exp(-(((hour - 12.5) / 0.7) ** 2))
    working = (times.day_of_week.to_numpy() < 5) & ~((day >= WEEK_OFF[0]) & (day < WEEK_OFF[1]))
    shape = 0.08 + np.where(working, open_hours * lunch, 0.05 * open_hours)
    drift = lfilter([1.0], [1.0, -DRIFT_MEMORY], rng.normal(0.0, DRIFT_PER_MINUTE, len(times)))
    daily = rng.normal(0.0, DAY_NOISE, OFFICE_DAYS).repeat(1440)
    rate = OFFICE_SCALE * shape * np.exp(drift + daily)
    return pd.Series(rng.poisson(rate), index=times, name="requests")


def write_event_traces(folder: Path) -> list[Path]:
    """`synthetic_sports.csv` and `synthetic_office.csv` (timestamp,requests) in `folder`."""
    return [
        write_counts(event_counts(), folder / "synthetic_sports.csv"),
        write_counts(office_counts(), folder / "synthetic_office.csv"),
    ]
