"""Which point forecast the band sits on: the one that buys the least on the replay, or,
in a close call, the one that foresees a day the cheapest misses.

A band is learned for each candidate point (bands.BandSearch) and the cheapest is taken:
whichever it is, its band meets the target on the replay. But the replay's cost is the
week's: a point that misses one day (a weekly batch's onset) writes that day off against
the week's budget, and the closed loop then pays for it with a week of wide margins,
which no replayed cost shows. So where one day stands out of the pick's others, a point
that costs about as much and foresees that day is taken instead (recurring_day).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from predictors.bands import Band, BandSearch

DAILY_TOLERANCE = 0.05
"""Points whose bands cost within this share of the pick's may replace it where they
foresee a day it misses (point_band's `days`)."""
QUICK_POWER = 0.5
"""The scale law a quick fit judges its candidate points by (the middle of SCALE_POWERS)."""


def point_band(
    points: tuple[np.ndarray, ...],
    seen: np.ndarray,
    recency: np.ndarray,
    offset: float,
    service_target: float,
    latency_slack: float = 0.0,
    hours: np.ndarray | None = None,
    volatility: np.ndarray | None = None,
    quick: bool = False,
    days: np.ndarray | None = None,
    alternatives: Callable[[], tuple[np.ndarray, ...]] | None = None,
) -> tuple[int, Band]:
    """Which of `points` buys the least capacity on the replay (its index, the first on a
    tie), with its band: cheapest_band of each. `quick` (a quick fit): the point judged by
    one trial each at QUICK_POWER (with the hour's factors), and cheapest_band of that one
    alone. Whichever point it picks, its band meets the target on the replay: a close call
    decided wrongly costs a little capacity, never late requests (about half the cost).

    `days` (each origin's replayed day) given, a full fit also asks whether one day
    stands out of the pick's others (recurring_day): the band writes such a day off
    against the week's budget, and the loop then pays for it with a week of wide margins,
    which no replayed cost shows. Only then are `alternatives` built (indexes after
    `points`'), and a point within DAILY_TOLERANCE of the pick, or cheaper, replaces it
    where it foresees that day."""
    searches = [
        BandSearch.of(point, seen - point, seen, recency, offset, service_target, hours)
        for point in points
    ]
    if quick:
        costs = [search.point_cost + search.trial(QUICK_POWER).cost for search in searches]
        chosen = int(np.argmin(costs))
        return chosen, searches[chosen].band(latency_slack, volatility)
    bands = [search.band(latency_slack, volatility) for search in searches]
    chosen = int(np.argmin([band.cost for band in bands]))
    if days is None or len(np.unique(days)) <= 2:
        return chosen, bands[chosen]
    by_day = {chosen: searches[chosen].day_costs(bands[chosen], days, latency_slack, volatility)}
    if not stands_out(by_day[chosen]):  # no day to foresee: recurring_day keeps the pick
        return chosen, bands[chosen]
    for point in alternatives() if alternatives is not None else ():
        searches.append(
            BandSearch.of(point, seen - point, seen, recency, offset, service_target, hours)
        )
        bands.append(searches[-1].band(latency_slack, volatility))
    costs = np.array([band.cost for band in bands])
    close = np.flatnonzero(costs <= costs[chosen] * (1.0 + DAILY_TOLERANCE))
    for i in close:
        if i not in by_day:
            by_day[i] = searches[i].day_costs(bands[i], days, latency_slack, volatility)
    taken = recurring_day([by_day[i] for i in close], int(np.flatnonzero(close == chosen)[0]))
    return int(close[taken]), bands[int(close[taken])]


def stands_out(day_costs: np.ndarray) -> bool:
    """Whether the costliest day exceeds the median of the others by more than their
    spread (max - min): what recurring_day asks of the pick before it looks elsewhere."""
    others = np.delete(day_costs, day_costs.argmax())
    return float(day_costs.max() - np.median(others)) > float(np.ptp(others))


def recurring_day(by_day: list[np.ndarray], chosen: int) -> int:
    """Which point to take (an index into `by_day`): the one whose worst day costs least,
    where that day stands out of `chosen`'s ordinary days and not, or half as far, out
    of its own (by more than the spread, max - min, of either's other days); else `chosen`.

    `by_day`: per point, what the replay would cost with its band widened to keep each
    day within the target. A day one point foresees and another misses (a weekly batch)
    stands out for the one only; a one-off burst every point misses stands out for all,
    and a point cheaper on every day has no day to foresee: the pick by cost stays."""
    worst = np.array([costs.max() for costs in by_day])
    others = [np.delete(costs, costs.argmax()) for costs in by_day]
    spread = max(float(np.ptp(days)) for days in others)
    excess = worst - np.array([np.median(days) for days in others])
    best = int(np.argmin(worst))
    foresees = excess[chosen] - excess[best] > spread and excess[best] < excess[chosen] / 2
    return best if foresees else chosen
