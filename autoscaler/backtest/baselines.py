"""The baselines the project's policy is compared with, each tuned fairly.

Every baseline turns the trace into a node count per minute using only the past, as
known then (Replay.known; except the oracle and the static fleet, which are bounds,
not policies). Each has
a few knobs (target utilization or headroom, a minimum node floor, ...); all
settings on a fixed grid are scored, the same grid for every trace, and the
cheapest one that meets the service target is reported (or, when none does, the
one with the fewest late requests). Counts per minute turn into cost and service
through autoscaler.backtest.queue, the same for every policy.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from autoscaler.backtest.queue import Score, ready_nodes, score_fleet
from autoscaler.policy import nodes_for_each

UTILIZATIONS = tuple(round(0.3 + 0.025 * step, 3) for step in range(29))
"""0.3 to 1.0 in steps of 0.025: one node in 40 at typical fleet sizes, so no policy's
result hinges on where a coarse grid happens to fall (the project's policy uses it too)."""
HEADROOMS = tuple(
    sorted(
        {1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0}
        | {round(1 / u, 3) for u in UTILIZATIONS}
    )
)
"""Round headrooms plus the reciprocal of every utilization above: no coarser than theirs."""
FLOORS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
HPA_STABILIZATION_MINUTES = 5
LINEAR_TICK_MINUTES = 20
LINEAR_WINDOW_MINUTES = 60
LINEAR_QUANTILE = 0.9
LEVEL_WINDOW_MINUTES = 60
DAY, WEEK = 1440, 10080


@dataclass(frozen=True)
class Replay:
    """The trace and the simulation's frame, shared by every policy of one backtest.

    Arrays cover the whole trace; policies decide from `sim_start` on (the first
    minutes only settle their memory) and are scored from `score_start` on.
    """

    rps: np.ndarray
    """Requests per second each minute, a coarse row's spread over its minutes: scored."""
    known: np.ndarray
    """`rps` as a tick deciding at each minute knows it (replay.as_known; the same for a
    minute trace): what every policy decides from, so none sees a row before it ends."""
    per_node_rps: float
    boot_minutes: int
    tick_minutes: int
    latency_target_s: float
    service_target: float
    sim_start: int
    score_start: int
    initial_nodes: int
    max_staleness: timedelta = timedelta(minutes=5)
    """metrics.max_staleness: the project's policy holds once the newest sample it knows
    is older, as the daemon's tick does (a minute without one alone does not hold it)."""
    queue: np.ndarray | None = None
    """Messages waiting at each minute, when the trace has a `queue_depth` column: the
    policy replays it as a queue-depth signal (the baselines see demand only)."""

    @property
    def arrivals(self) -> np.ndarray:
        return np.nan_to_num(self.rps, nan=0.0) * 60.0

    @property
    def horizon_minutes(self) -> int:
        return self.boot_minutes + self.tick_minutes

    def score(
        self, desired: np.ndarray, ready: np.ndarray | None = None
    ) -> tuple[Score, np.ndarray]:
        """Score counts set over [sim_start, end); `ready` defaults to the boot-delay model."""
        if ready is None:
            ready = ready_nodes(desired, self.boot_minutes, self.initial_nodes)
        score = score_fleet(
            self.arrivals[self.sim_start :],
            desired,
            ready,
            self.per_node_rps,
            self.latency_target_s,
            self.score_start - self.sim_start,
            previous_count=self.initial_nodes,
        )
        return score, ready


@dataclass(frozen=True)
class PolicyResult:
    name: str
    description: str
    knobs: dict[str, Any]
    score: Score
    meets_target: bool
    desired: np.ndarray = field(repr=False)
    ready: np.ndarray = field(repr=False)
    settings_tried: int = 1


def cheapest_meeting_target(
    candidates: Iterable[tuple[dict[str, Any], Score, np.ndarray, np.ndarray]],
    service_target: float,
) -> tuple[dict[str, Any], Score, np.ndarray, np.ndarray, bool, int]:
    """The cheapest candidate within the service target; else the least late one."""
    best = None
    tried = 0
    for candidate in candidates:
        tried += 1
        if best is None or _better(candidate[1], best[1], service_target):
            best = candidate
    if best is None:
        raise ValueError("no candidate settings to choose from")
    knobs, score, desired, ready = best
    return knobs, score, desired, ready, score.meets(service_target), tried


def _better(new: Score, old: Score, target: float) -> bool:
    if new.meets(target) != old.meets(target):
        return new.meets(target)
    if new.meets(target):
        return (new.node_hours, new.late_share) < (old.node_hours, old.late_share)
    return (new.late_share, new.node_hours) < (old.late_share, old.node_hours)


def node_counts(demand_rps: np.ndarray, per_node_rps: float) -> np.ndarray:
    """Nodes each minute's demand needs at full use (bench/headroom_bounds.py sizes with it too)."""
    return nodes_for_each(demand_rps, per_node_rps)


def _floors(replay: Replay, most: int) -> tuple[int, ...]:
    return tuple(f for f in FLOORS if f <= max(most, 1))


def _sweep(
    replay: Replay,
    name: str,
    description: str,
    grid: Iterable[dict[str, Any]],
    counts: Callable[..., np.ndarray],
) -> PolicyResult:
    def scored() -> Iterable[tuple[dict[str, Any], Score, np.ndarray, np.ndarray]]:
        for knobs in grid:
            desired = counts(**knobs)
            score, ready = replay.score(desired)
            yield knobs, score, desired, ready

    knobs, score, desired, ready, meets, tried = cheapest_meeting_target(
        scored(), replay.service_target
    )
    return PolicyResult(name, description, knobs, score, meets, desired, ready, tried)


def oracle(replay: Replay) -> PolicyResult:
    """Exactly the nodes each minute needs, ready at once: never late. No cost floor: a fleet
    that spends the late budget can cost less (report.least_node_hours)."""
    desired = node_counts(replay.rps[replay.sim_start :], replay.per_node_rps)
    score, ready = replay.score(desired, ready=desired)
    return PolicyResult(
        "oracle",
        "exact need each minute, no boot delay (never late)",
        {},
        score,
        True,
        desired,
        ready,
    )


def static_fleet(replay: Replay) -> PolicyResult:
    """The smallest constant fleet that meets the target (hindsight: a bound, not a policy)."""
    minutes = len(replay.rps) - replay.sim_start
    peak = int(node_counts(replay.rps[replay.score_start :], replay.per_node_rps).max(initial=0))

    def at(count: int) -> tuple[Score, np.ndarray]:
        desired = np.full(minutes, count, dtype=np.int64)
        return replay.score(desired, ready=desired)[0], desired

    low, high = 0, max(peak, 1)
    tried = 0
    while low < high:  # lateness only falls as the constant fleet grows
        middle = (low + high) // 2
        tried += 1
        if at(middle)[0].meets(replay.service_target):
            high = middle
        else:
            low = middle + 1
    score, desired = at(low)
    return PolicyResult(
        "static",
        "constant fleet, smallest that meets the target (hindsight)",
        {"nodes": low},
        score,
        score.meets(replay.service_target),
        desired,
        desired,
        tried + 1,
    )


def _rolling_max(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return values
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return sliding_window_view(padded, window).max(axis=1)


def reactive_counts(
    last_rps: np.ndarray, per_node_rps: float, utilization: float, floor: int
) -> np.ndarray:
    """The HPA's count each minute from the demand of the minute before (`last_rps`): nodes
    at the target utilization, at least `floor`, down only to the highest of the last 5
    minutes. The backtest's `hpa` baseline and the daily digest's reactive fleet."""
    recommended = np.maximum(node_counts(last_rps, per_node_rps * utilization), floor)
    return _rolling_max(recommended, HPA_STABILIZATION_MINUTES)


def hpa(replay: Replay) -> PolicyResult:
    """Reactive target tracking like the Kubernetes HPA: every minute, nodes for the last
    minute's demand at a target utilization; up at once, down to the highest
    recommendation of the last 5 minutes (its scale-down stabilization)."""
    last = known_before(replay)
    peak = int(node_counts(replay.rps, replay.per_node_rps).max(initial=1))

    def counts(utilization: float, floor: int) -> np.ndarray:
        return reactive_counts(last, replay.per_node_rps, utilization, floor)

    return _sweep(
        replay,
        "hpa",
        "reactive target tracking, 1-min tick, 5-min scale-down stabilization",
        _utilization_floor_grid(replay, peak),
        counts,
    )


def known_before(replay: Replay) -> np.ndarray:
    """The demand each minute from sim_start decides on: the minute before's, as known then."""
    return replay.known[replay.sim_start - 1 : -1]


def _utilization_floor_grid(replay: Replay, most: int) -> list[dict[str, Any]]:
    """Every target utilization with every floor up to `most` nodes."""
    floors = _floors(replay, most)
    return [{"utilization": u, "floor": f} for u, f in itertools.product(UTILIZATIONS, floors)]


def linear_peaks(replay: Replay) -> np.ndarray:
    """The seed's forecast every 20 minutes: a line fitted to the last hour, extrapolated
    over the horizon, plus the 0.9 normal quantile of the residuals (the same arithmetic
    as predictors.linear.LinearTrendPredictor, in numpy for speed). One value per minute,
    held between its ticks."""
    z = max(NormalDist().inv_cdf(LINEAR_QUANTILE), 0.0)
    steps = np.arange(1, replay.horizon_minutes + 1, dtype=float) * 60.0
    minutes = len(replay.rps) - replay.sim_start
    peaks = np.empty(minutes)
    for offset in range(0, minutes, LINEAR_TICK_MINUTES):
        now = replay.sim_start + offset
        recent = replay.known[max(0, now - LINEAR_WINDOW_MINUTES) : now]
        recent = recent[np.isfinite(recent)]
        peaks[offset : offset + LINEAR_TICK_MINUTES] = _line_peak(recent, steps, z)
    return peaks


def _line_peak(recent: np.ndarray, steps: np.ndarray, z: float) -> float:
    if len(recent) == 0:
        return 0.0
    x = (np.arange(len(recent), dtype=float) - (len(recent) - 1)) * 60.0
    if len(recent) == 1:
        slope, intercept = 0.0, float(recent[0])
    else:
        slope, intercept = np.polyfit(x, recent, 1)
    spread = float(np.std(recent - (intercept + slope * x))) if len(recent) > 2 else 0.0
    point = np.clip(intercept + slope * steps, 0.0, None)
    return float(np.max(point)) + z * spread


def linear(replay: Replay) -> PolicyResult:
    peaks = linear_peaks(replay)
    most = int(node_counts(peaks, replay.per_node_rps).max(initial=1))

    def counts(utilization: float, floor: int) -> np.ndarray:
        return np.maximum(node_counts(peaks, replay.per_node_rps * utilization), floor)

    return _sweep(
        replay,
        "linear-20m",
        "the seed's linear regression on the last hour, every 20 min",
        _utilization_floor_grid(replay, most),
        counts,
    )


def seasonal_naive_peaks(replay: Replay, season: int) -> np.ndarray:
    """Per minute from sim_start: the highest demand over the coming horizon as it was one
    season ago, scaled by the recent hour's level against the same hour then. A week
    falls back on the day while history is short; with not even a day, zero (the
    reactive floor alone)."""
    rps = np.nan_to_num(replay.known, nan=0.0)
    horizon = replay.horizon_minutes
    cumulative = np.concatenate([[0.0], np.cumsum(rps)])
    ahead = sliding_window_view(np.concatenate([rps, np.zeros(horizon - 1)]), horizon).max(axis=1)
    now = np.arange(replay.sim_start, len(rps))
    lag = np.where(now - season - LEVEL_WINDOW_MINUTES >= 0, season, DAY)
    then = now - lag
    known = then - LEVEL_WINDOW_MINUTES >= 0
    then = np.clip(then, LEVEL_WINDOW_MINUTES, None)
    since = np.clip(now - LEVEL_WINDOW_MINUTES, 0, None)
    recent = cumulative[now] - cumulative[since]
    before = cumulative[then] - cumulative[then - LEVEL_WINDOW_MINUTES]
    slack = replay.per_node_rps * LEVEL_WINDOW_MINUTES  # a node's worth: no wild ratios near 0
    level = (recent + slack) / (before + slack)
    return np.where(known, ahead[then] * level, 0.0)


def seasonal_naive(replay: Replay) -> PolicyResult:
    """Predictive scaling the way the clouds do it: the coming minutes as they were a day
    (or a week) ago, scaled to the recent level, times a headroom, over a reactive floor."""
    last = np.nan_to_num(known_before(replay), nan=0.0)
    seasons = {"day": DAY, "week": WEEK}
    peaks = {name: seasonal_naive_peaks(replay, lag) for name, lag in seasons.items()}
    most = int(node_counts(np.maximum(peaks["day"], last), replay.per_node_rps).max(initial=1))

    def counts(season: str, headroom: float, floor: int) -> np.ndarray:
        need = np.maximum(peaks[season], last) * headroom
        recommended = np.maximum(node_counts(need, replay.per_node_rps), floor)
        return _rolling_max(recommended, HPA_STABILIZATION_MINUTES)

    grid = [
        {"season": s, "headroom": h, "floor": f}
        for s, h, f in itertools.product(seasons, HEADROOMS, _floors(replay, most))
    ]
    return _sweep(
        replay,
        "seasonal-naive",
        "a day or week ago scaled to the recent level, × headroom, reactive floor",
        grid,
        counts,
    )


BASELINES: dict[str, Callable[[Replay], PolicyResult]] = {
    "oracle": oracle,
    "static": static_fleet,
    "hpa": hpa,
    "linear-20m": linear,
    "seasonal-naive": seasonal_naive,
}
