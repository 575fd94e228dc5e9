"""Know when forecasting does not pay: a small portfolio of policies behind one interface.

Where traffic follows the clock the seasonal forecast buys the least capacity at the
service target; where it follows nothing (bursts, events) its band is wide and a plain
reactive fleet, or one held at the recent peak, is cheaper. Each member here is a way
to turn what a tick saw into the band the fleet is sized for (the `upper` of a
Forecast), so that all of them run through the same size/decide code and the same
loop calibration (autoscaler.calibration):

- forecast: the predictor's upper band (the seasonal model's, as it made it);
- reactive: the demand seen now, held over the horizon: target tracking, like the
  Kubernetes HPA, whose headroom is the calibrated margin;
- recent_peak: the highest demand of the last RECENT_PEAK_WINDOW: a fleet held at
  the recent peak (times the margin), for traffic whose bursts come at any time;
- static: one level held from a recalibration to the next, the kept window's peak
  demand times the margin: a static fleet, sized anew every recalibration. Where bursts
  come at any time and far above the usual level, a fleet that follows demand (the other
  members) pays for the burst after it has come and is late while its nodes boot; a
  static fleet has the burst's capacity already (measured, issue 15: on a month of a
  social API, followed from the first day, 0.69 % late at 1.03 x the static fleet tuned
  in hindsight, against 1.23 x for the other members).

Every recalibration replays each member over the kept ticks at the margin that meets
the pool's target, and the pool follows the one whose replay buys the fewest node
ticks; it moves to another only when that one is at least SWITCH_GAIN cheaper
(hysteresis: a near tie does not flip the fleet's behaviour every few hours). Members
are compared only once the kept ticks fill the whole window (a week): on a few days
the replay of a member not followed is a noisy and flattering measure (measured, issue
15: on servegen_msmall the pool left the forecast for the last day's peak on two days
of ticks and was 5.6 % late that day; 1.767 % over the run against 0.628 % now). Until
then the pool follows the forecast, or the member a restart resumed. A member whose
replay had a day over the target at any comparison of the last DISTRUST_WINDOWS
windows does not take over either: one calm week does not outweigh the weeks before it
(measured, issue 15: on a season of scheduled events with breaks of two weeks, the pool
left the forecast for the demand now in a break, and the first events after it were
late, 1.045-1.144 % over four seeded seasons; with the memory 0.743-0.935 %). A pool can
pin one member (`predictor.policy`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

MEMBERS = ("forecast", "reactive", "recent_peak", "static")
RECENT_PEAK_WINDOW = timedelta(hours=24)
SWITCH_GAIN = 0.05
"""A member replaces the one followed only when its replay is this much cheaper."""
DISTRUST_WINDOWS = 4
"""A member with a day over the target at a comparison may take over only this many
replay windows later (four weeks at the default window)."""


def members_of(policy: str) -> tuple[str, ...]:
    """The members a pool's `predictor.policy` lets it follow."""
    return MEMBERS if policy == "auto" else (policy,)


def recent_peaks(times: Sequence[datetime], demand: np.ndarray) -> np.ndarray:
    """At each tick, the highest demand seen over the RECENT_PEAK_WINDOW up to and with it
    (missing samples skipped; NaN while none is known)."""
    series = pd.Series(np.asarray(demand, dtype=float), index=pd.DatetimeIndex(times))
    window = f"{int(RECENT_PEAK_WINDOW.total_seconds())}s"
    return series.rolling(window, min_periods=1).max().to_numpy()


class RecentPeak:
    """The highest demand of the last RECENT_PEAK_WINDOW as a falling queue: a sample
    drops those it is at least as high as, so the head is the peak (each tick adds one
    and lets the expired go, not a scan of a day of ticks). Missing is not a peak."""

    def __init__(self) -> None:
        self._queue: deque[tuple[datetime, float]] = deque()

    def add(self, at: datetime, demand: float) -> None:
        if math.isfinite(demand):  # missing is not a peak, nor zero
            while self._queue and self._queue[-1][1] <= demand:
                self._queue.pop()
            self._queue.append((at, demand))
        while self._queue and self._queue[0][0] <= at - RECENT_PEAK_WINDOW:
            self._queue.popleft()

    def clear(self) -> None:
        self._queue.clear()

    def refill(self, times: pd.DatetimeIndex, demand: np.ndarray) -> None:
        """Start over from a run of samples (a restart's kept ticks), as if each had been
        added in turn: a sample stays only if it is higher than every later one, and
        within the window of the newest."""
        self._queue.clear()
        finite = np.isfinite(demand)
        times, demand = times[finite], demand[finite]
        if not len(demand):
            return
        later = np.maximum.accumulate(demand[::-1])[::-1]  # the highest from each on
        stays = np.append(demand[:-1] > later[1:], True) & (times > times[-1] - RECENT_PEAK_WINDOW)
        for at, level in zip(times[stays], demand[stays], strict=True):
            self._queue.append((at.to_pydatetime(), float(level)))

    @property
    def peak(self) -> float:
        return self._queue[0][1] if self._queue else float("nan")


def window_peak(demand: np.ndarray) -> float:
    """The highest demand of the kept window (missing samples skipped; NaN if none is
    known): the level the static member holds, times its margin."""
    known = np.asarray(demand, dtype=float)
    known = known[np.isfinite(known)]
    return float(known.max()) if len(known) else float("nan")


def member_peaks(
    member: str, peak: np.ndarray, arrival: np.ndarray, demand: np.ndarray, recent: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The peaks of the band a member would have handed the sizing at each kept tick (over
    the horizon, and from the arrival of new nodes on), from the forecast's peaks, the
    demand seen and the recent peaks; where the tick had no forecast, none (a hold)."""
    if member == "forecast":
        return peak, arrival
    if member == "static":
        level: np.ndarray | float = window_peak(demand)
    else:
        level = np.asarray(demand if member == "reactive" else recent, dtype=float)
    flat = np.where(np.isfinite(peak), level, np.nan)
    return flat, flat


def member_upper_now(
    member: str,
    forecast_upper: np.ndarray,
    demand_now: float,
    peak_now: float,
    held_level: float = float("nan"),
) -> np.ndarray:
    """The band a member hands the sizing at this tick (the margin not yet applied);
    `held_level`: the static member's, the window's peak at the last recalibration."""
    if member == "forecast":
        return forecast_upper
    levels = {"reactive": demand_now, "recent_peak": peak_now, "static": held_level}
    return np.full(len(forecast_upper), levels[member], dtype=float)


@dataclass(frozen=True)
class Trial:
    """One member replayed at the margin that meets the target on the kept ticks."""

    member: str
    margin: float
    late: float
    """The replay's worst day's late share at that margin."""
    node_ticks: float
    """Nodes summed over the replay's ticks: what the member would have cost."""
    meets: bool
    outlier: bool = False
    """The worst replayed day is let through: the window's budget absorbs it (loop_replay)."""


def choose(
    trials: Sequence[Trial],
    following: str | None,
    distrusted: Mapping[str, datetime] | None = None,
) -> tuple[Trial, str]:
    """The member to follow, and why: the cheapest that meets the target, unless the one
    followed now meets it too and costs at most SWITCH_GAIN more; with none meeting it,
    the least late. A member not followed now takes over only where its replay keeps
    every day within the target: a day let through as the window's outlier is a burst
    it did not cover, and betting the budget on such bursts is left to the member in
    use, whose spend the error-budget feedback watches (measured, issue 15: servegen's
    fortnight played twice; after a calm week the pool took the reactive member on its
    outlier margin and the fortnight's surge came back, 9.9 % late that day and 1.008 %
    over four weeks; with this rule 0.564 %, and its stress variants meet too). Nor does
    a `distrusted` one: its replay had such a day at a recent comparison (the mapping
    holds the members barred now, each with the time it may take over again). Where the
    followed member misses and every other clean one is barred, a barred one that is
    clean now is still preferred to one with a day over now."""
    if not trials:
        raise ValueError("no member to choose from")
    distrusted = distrusted or {}
    meeting = [t for t in trials if t.meets and _may_lead(t, following, distrusted)]
    meeting = meeting or [t for t in trials if t.meets and not t.outlier]  # barred, clean now
    meeting = meeting or [t for t in trials if t.meets]  # none clean: the outlier's is kept
    if not meeting:
        least = min(trials, key=lambda t: (t.late, t.node_ticks))
        return least, f"no member meets the target on the replay: {least.member} is least late"
    cheapest = min(meeting, key=lambda t: t.node_ticks)
    current = next((t for t in meeting if t.member == following), None)
    chosen = (
        current
        if current is not None and current.node_ticks <= cheapest.node_ticks * (1 + SWITCH_GAIN)
        else cheapest
    )
    return chosen, _compared(chosen, trials, meeting, distrusted)


def _may_lead(trial: Trial, following: str | None, distrusted: Mapping[str, datetime]) -> bool:
    """Whether a member that meets the target may be followed: the one followed now, or
    one that kept every day within it, now and at the recent comparisons."""
    return trial.member == following or not (trial.outlier or trial.member in distrusted)


def _note(trial: Trial, meeting: Sequence[Trial], distrusted: Mapping[str, datetime]) -> str:
    if not trial.meets:
        return " (misses)"
    if trial in meeting:
        return ""
    if trial.outlier or trial.member not in distrusted:
        return " (a day over the target)"
    again = distrusted[trial.member]
    return f" (a day over the target lately: may take over from {again:%Y-%m-%d %H:%M %Z})"


def _compared(
    chosen: Trial,
    trials: Sequence[Trial],
    meeting: Sequence[Trial],
    distrusted: Mapping[str, datetime],
) -> str:
    if len(trials) == 1:
        return f"policy {chosen.member} (pinned)"
    if chosen.node_ticks <= 0:
        return f"policy {chosen.member}: cheapest on the replay that meets the target"
    others = ", ".join(
        f"{t.member} {t.node_ticks / chosen.node_ticks:.2f}x" + _note(t, meeting, distrusted)
        for t in trials
        if t is not chosen
    )
    return f"policy {chosen.member}: cheapest on the replay that meets the target ({others})"
