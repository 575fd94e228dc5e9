"""The band above the point forecast: calibrated on the forecaster's replayed errors.

A band is an error quantile per lead, in units of a scale that grows with the forecast,
(point + c)**p, and follows two things the errors depend on:
- the hour of the day at the target, since the noise of traffic relative to its level is
  not the same at night as at noon (one factor per local hour, learned from all the
  replayed errors, not only from their tail, so that it is steady);
- the volatility of the last hour, where that buys less on the replay (volatility
  clusters: a jumpy hour tends to be followed by another).
The tail quantile stays one figure per lead. It is request-weighted (a minute with more
requests counts more, since the target is a share of late requests). Every p in
SCALE_POWERS meets the target on the replay; the one kept buys the least capacity there.
The band is then narrowed to what the latency target allows: small overshoots queue
within it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCALE_POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Scale laws the band may take (error size growing as forecast**power)."""
BAND_SEARCH_STEPS = 16
"""Bisection steps for a lead's band: 2**-16 of the error quantile, far below a node."""
HOURS = 24
HOURLY_PRIOR = 60.0
"""Replayed errors' weight of the overall spread in each hour's factor: an hour seen
seldom (a short history) keeps a factor near 1 instead of one from a handful of errors."""
HOURLY_LIMITS = (0.5, 2.0)
"""The hour-of-day factor stays within these: the clock shapes the band, never makes it."""
VOLATILITY_LIMITS = (0.5, 2.0)
"""The same for the recent-volatility factor."""
ELASTICITIES = (0.25, 0.5, 0.75, 1.0)
"""How far the band may follow recent volatility: a factor (volatility / median)**e, each
e tried on the replay after the scale law; kept only where it buys less capacity there."""


@dataclass(frozen=True)
class Band:
    power: float
    band: np.ndarray  # (leads,)
    cost: float
    """Capacity the band buys on the replay (point + band, recency-weighted): what candidate
    points and scale laws are compared by."""
    hourly: np.ndarray | None = None
    """(24,): the scale's factor at each local hour of the target; None: the same at all."""
    elasticity: float = 0.0
    """How the scale follows recent volatility: a factor (volatility / its median)**this;
    0: it does not."""


def band_scale(
    point: np.ndarray,
    offset: float,
    power: float,
    hourly: np.ndarray | None,
    hours: np.ndarray | None,
) -> np.ndarray:
    """What the band is in units of: (point + offset)**power, times the target hour's factor."""
    scale = (point + offset) ** power
    if hourly is None or hours is None:
        return scale
    return scale * hourly[hours]


def volatility_factor(log_ratio: np.ndarray | float, elasticity: float) -> np.ndarray:
    """The scale's factor for recent volatility at log(volatility / its median)."""
    return np.clip(np.exp(elasticity * np.asarray(log_ratio, dtype=float)), *VOLATILITY_LIMITS)


def volatility_log_ratio(volatility: np.ndarray | float, median: float) -> np.ndarray:
    """log(volatility / median); 0 (no factor) where the volatility is unknown or none at
    all (a sparse source's hour of zeros), the same in the replay and in the forecast."""
    volatility = np.asarray(volatility, dtype=float)
    if median <= 0:
        return np.zeros_like(volatility)
    known = np.isfinite(volatility) & (volatility > 0)
    return np.where(known, np.log(np.where(known, volatility, median) / median), 0.0)


def cheapest_band(
    point: np.ndarray,
    error: np.ndarray,
    seen: np.ndarray,
    recency: np.ndarray,
    offset: float,
    service_target: float,
    latency_slack: float = 0.0,
    hours: np.ndarray | None = None,
    volatility: np.ndarray | None = None,
) -> Band:
    """The scale law and per-lead band that meet the target on the replay at least capacity.

    Every power in SCALE_POWERS meets the target by construction (a request-weighted
    quantile per lead); they differ in where the headroom goes: 0 spreads it evenly, 1
    puts it at the peaks. The cheapest is the one that buys the fewest node-seconds
    for the same late share, which is what the fleet pays for. Its band is then narrowed
    to what the latency target allows (small overshoots queue within it). `hours`: the
    local hour of each target, (origins, leads); given, the scale follows the hour too.
    `volatility`: log(recent volatility / its median) at each origin; given, the scale
    follows it by the elasticity in ELASTICITIES that buys the least, if any does (after
    the scale law is chosen, so that volatility explains only what the law leaves)."""
    search = BandSearch.of(point, error, seen, recency, offset, service_target, hours)
    return search.band(latency_slack, volatility)


class BandSearch:
    """The scale laws tried for one point on its replay, each tried once."""

    def __init__(
        self,
        point: np.ndarray,
        error: np.ndarray,
        offset: float,
        replay: _Replay,
        by_hour: HourlySpread | None,
        hours: np.ndarray | None,
    ) -> None:
        self.point, self.error, self.offset = point, error, offset
        self.replay, self.by_hour, self.hours = replay, by_hour, hours
        self._tried: dict[float, _Trial] = {}

    @classmethod
    def of(
        cls,
        point: np.ndarray,
        error: np.ndarray,
        seen: np.ndarray,
        recency: np.ndarray,
        offset: float,
        service_target: float,
        hours: np.ndarray | None,
    ) -> BandSearch:
        """The search for `point` on its replay (and the hour's spread, given `hours`)."""
        replay = _Replay(error, seen, recency, service_target)
        by_hour = None if hours is None else HourlySpread(hours, replay.weight, np.isfinite(error))
        return cls(point, error, offset, replay, by_hour, hours)

    @property
    def point_cost(self) -> float:
        """What the point alone buys on the replay (a trial's cost is the band's on top)."""
        return float(np.sum(self.replay.weight * self.point))

    def trial(self, power: float) -> _Trial:
        if power not in self._tried:
            scale = band_scale(self.point, self.offset, power, None, None)
            hourly = None if self.by_hour is None else self.by_hour.factors(self.error / scale)
            if hourly is not None:
                scale = scale * hourly[self.hours]
            self._tried[power] = self.replay.trial(scale, power, hourly)
        return self._tried[power]

    def band(self, latency_slack: float, volatility: np.ndarray | None) -> Band:
        """The cheapest scale law (then elasticity, given `volatility`), narrowed."""
        best: _Trial | None = None
        for power in SCALE_POWERS:
            trial = self.trial(power)
            if best is None or trial.cost < best.cost:
                best = trial
        assert best is not None
        replay, point = self.replay, self.point
        if volatility is not None:
            plain = best
            for elasticity in ELASTICITIES:
                scale = plain.scale * volatility_factor(volatility, elasticity)[:, None]
                trial = replay.trial(scale, plain.power, plain.hourly, elasticity)
                if trial.cost < best.cost:
                    best = trial
        band, scale = best.band, best.scale
        if latency_slack > 0.0:
            band = _narrowed_band(
                point, scale, replay.demand, replay.requests, band, replay.target, latency_slack
            )
        band = np.maximum.accumulate(np.maximum(band, 0.0))
        cost = float(np.sum(replay.weight * (point + band * scale)))
        return Band(best.power, band, cost, best.hourly, best.elasticity)

    def day_costs(
        self, band: Band, days: np.ndarray, latency_slack: float, volatility: np.ndarray | None
    ) -> np.ndarray:
        """Per replayed day (`days`: each origin's day), what the point costs on the whole
        replay with its band widened by the least factor keeping that day within the target."""
        replay, point = self.replay, self.point
        scale = band_scale(point, self.offset, band.power, band.hourly, self.hours)
        if volatility is not None and band.elasticity > 0:
            scale = scale * volatility_factor(volatility, band.elasticity)[:, None]
        width = band.band[None, :] * scale
        day = np.broadcast_to(days[:, None], point.shape).ravel()
        budget = replay.target * np.bincount(day, replay.requests.ravel())
        low, high = np.zeros(len(budget)), np.full(len(budget), 64.0)
        flat_point, flat_width = point.ravel(), width.ravel()
        demand, requests = replay.demand.ravel(), replay.requests.ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            for step in range(BAND_SEARCH_STEPS):
                if step % 2 == 0:  # as _narrowed_band: drop what is on time at `low` already
                    can_be_late = demand > (flat_point + low[day] * flat_width) * (
                        1.0 + latency_slack
                    )
                    day, flat_point, flat_width = (
                        day[can_be_late],
                        flat_point[can_be_late],
                        flat_width[can_be_late],
                    )
                    demand, requests = demand[can_be_late], requests[can_be_late]
                middle = 0.5 * (low + high)
                capacity = flat_point + middle[day] * flat_width
                late = requests * _late_share(capacity, demand, latency_slack)
                meets = np.bincount(day, late, minlength=len(budget)) <= budget
                high, low = np.where(meets, middle, high), np.where(meets, low, middle)
        return float(np.sum(replay.weight * point)) + high * float(np.sum(replay.weight * width))


@dataclass(frozen=True)
class _Trial:
    """One scale tried on the replay: its band (the error quantile) and what that buys."""

    scale: np.ndarray
    band: np.ndarray
    cost: float
    power: float
    hourly: np.ndarray | None
    elasticity: float


class _Replay:
    """The replayed forecasts a band is learned from, with their request weights."""

    def __init__(
        self, error: np.ndarray, seen: np.ndarray, recency: np.ndarray, service_target: float
    ) -> None:
        self.target = service_target
        self.quantile = 1 - service_target
        self.demand = np.where(np.isfinite(seen), seen, 0.0)
        self.requests = self.demand * recency[:, None]
        self.weight = np.where(np.isfinite(seen), 1.0, 0.0) * recency[:, None]
        # What a trial's quantile reads, the same whatever the scale (which is positive):
        # per lead, only the errors above 0 that carry weight. A band is never below 0, so
        # a quantile at or under 0 reads as 0 whichever it is; a weightless error is never
        # the quantile, and the zeros of a sparse series tie by the hundred, the
        # partition's slowest case. The rest still weighs in each lead's total.
        weights = _quantile_weights(~np.isfinite(error), self.requests).T
        carries = weights > 0.0
        kept = max(1, int(carries.sum(axis=1).max()))
        rows = np.argsort(~carries, axis=1, kind="stable")[:, :kept]
        carried = np.take_along_axis(weights, rows, axis=1)
        self._total = carried.sum(axis=1)  # summed as ever: the same total to the last bit
        above = carried > 0.0
        above &= np.take_along_axis(error.T, rows, axis=1) > 0.0
        kept = max(1, int(above.sum(axis=1).max()))
        first = np.argsort(~above, axis=1, kind="stable")[:, :kept]
        rows = np.take_along_axis(rows, first, axis=1)
        self._quantile_weights = np.take_along_axis(carried, first, axis=1)
        self._padding = np.flatnonzero(~np.take_along_axis(above, first, axis=1))
        self._quantile_weights.reshape(-1)[self._padding] = 0.0
        # (leads, kept) positions in the flat (origins, leads) replay: a trial gathers its
        # scale there and divides the errors gathered once (the same quotients, fewer made).
        self._at = rows * error.shape[1] + np.arange(error.shape[1])[:, None]
        self._errors = np.take(error, self._at)

    def trial(
        self,
        scale: np.ndarray,
        power: float,
        hourly: np.ndarray | None,
        elasticity: float = 0.0,
    ) -> _Trial:
        values = self._errors / np.take(scale, self._at)
        values.reshape(-1)[self._padding] = -np.inf
        band = _column_quantiles(values, self._quantile_weights, self.quantile, self._total)
        cost = float(np.sum(self.weight * np.maximum(band, 0.0) * scale))
        return _Trial(scale, band, cost, power, hourly, elasticity)


class HourlySpread:
    """(24,) factors: the RMS of the scaled errors at each local hour over their RMS at all
    hours.

    RMS, so that bursts that recur at an hour (a nightly batch job) widen that hour. Each
    hour pools its neighbours (weights 1, 2, 1, round the clock) and HOURLY_PRIOR errors'
    worth of the overall spread, then the factor is kept within HOURLY_LIMITS. Built once
    per replay: which errors count and each hour's pooled weight are the same whatever
    the errors' scale, and the band tries several."""

    def __init__(self, hours: np.ndarray, weight: np.ndarray, finite: np.ndarray) -> None:
        self.seen = finite & (weight > 0)
        self.mass = np.where(self.seen, weight, 0.0)
        self.hours = hours.ravel()
        self.total = float(self.mass.sum())
        by_hour = np.bincount(self.hours, self.mass.ravel(), minlength=HOURS)
        self.pooled_mass = _with_neighbours(by_hour)
        counted = np.count_nonzero(self.mass)
        # That many errors' weight of the overall spread joins each hour.
        self.prior = HOURLY_PRIOR * self.total / counted if counted else 0.0

    def factors(self, normalized: np.ndarray) -> np.ndarray:
        """The factors for errors `normalized` (in units of the scale tried)."""
        squares = np.where(self.seen, normalized, 0.0) ** 2 * self.mass
        overall = float(squares.sum() / self.total) if self.total > 0 else 0.0
        if overall <= 0.0:
            return np.ones(HOURS)
        pooled = _with_neighbours(np.bincount(self.hours, squares.ravel(), minlength=HOURS))
        spread = (pooled + self.prior * overall) / (self.pooled_mass + self.prior)
        return np.clip(np.sqrt(spread / overall), *HOURLY_LIMITS)


def _with_neighbours(by_hour: np.ndarray) -> np.ndarray:
    """Each hour's sum with its neighbours', weighted 1, 2, 1 round the clock."""
    round_the_clock = np.concatenate((by_hour[-1:], by_hour, by_hour[:1]))
    return np.convolve(round_the_clock, [1.0, 2.0, 1.0], "valid")


def _late_fraction(capacity: np.ndarray, demand: np.ndarray, latency_slack: float) -> np.ndarray:
    """The share of a step's requests that wait longer than the latency target."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _late_share(capacity, demand, latency_slack)


def _late_share(capacity: np.ndarray, demand: np.ndarray, latency_slack: float) -> np.ndarray:
    """_late_fraction for a caller that already ignores the division's warnings (minimum
    and maximum, not clip: the same values, without clip's overhead in a bisection)."""
    over = demand - capacity
    share = np.minimum(np.maximum(1.0 - latency_slack * capacity / over, 0.0), 1.0)
    return np.where(over > 0, share, 0.0)


def _narrowed_band(
    point: np.ndarray,
    scale: np.ndarray,
    demand: np.ndarray,
    requests: np.ndarray,
    quantile: np.ndarray,
    service_target: float,
    latency_slack: float,
) -> np.ndarray:
    """Per lead, the narrowest band (in units of scale) whose replayed late share is within
    the target, found by bisection below the error quantile (which meets it: at most the
    target's share of requests is above it, and only those can be late).

    Only demand above (point + band * scale) * (1 + slack) can be late, and the band only
    grows from `low`: every other step the search drops the entries that cannot be late at
    any band left to try (at first, about half of them; later, most). They would add
    exactly 0 to the late share, so when they are dropped does not change the band."""
    budget = service_target * requests.sum(axis=0)
    lead = np.broadcast_to(np.arange(len(quantile)), point.shape).ravel()
    point, scale, demand, requests = (x.ravel() for x in (point, scale, demand, requests))
    low, high = np.zeros_like(quantile), np.maximum(quantile, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # once, not per step
        for step in range(BAND_SEARCH_STEPS):
            if step % 2 == 0:
                can_be_late = demand > (point + low[lead] * scale) * (1.0 + latency_slack)
                lead, point, scale = lead[can_be_late], point[can_be_late], scale[can_be_late]
                demand, requests = demand[can_be_late], requests[can_be_late]
            middle = 0.5 * (low + high)
            late = requests * _late_share(point + middle[lead] * scale, demand, latency_slack)
            meets = np.bincount(lead, late, minlength=len(quantile)) <= budget
            high, low = np.where(meets, middle, high), np.where(meets, low, middle)
    return high


def _quantile_weights(missing: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weights for _column_quantiles: none on missing values; a column without any weight
    counts its values alike."""
    weights = np.where(missing, 0.0, weights)
    no_weight = weights.sum(axis=0) <= 0.0
    weights[:, no_weight] = (~missing[:, no_weight]).astype(float)
    return weights


def _column_quantiles(
    columns: np.ndarray, weights: np.ndarray, q: float, total: np.ndarray | None = None
) -> np.ndarray:
    """The weighted q-quantile of each row of `columns` (-inf: missing, with no weight).
    `total`: each row's whole weight, where `columns` holds only the values above all the
    others (which weigh the rest): a quantile among those others reads as 0.

    Only the top of each row can hold a high quantile, so the rows are partitioned and
    only their largest `k` values sorted, `k` doubling until what lies below them weighs
    less than q of the total (the band is refitted many times: a full sort of every
    row was most of a refit's cost)."""
    rows = columns.shape[1]
    total = weights.sum(axis=1) if total is None else total
    reach = q * total
    k = min(rows, math.ceil(2.0 * (1.0 - q) * rows) + 16)
    row = np.arange(len(columns))[:, None]  # fancy indexing: take_along_axis's own cost
    while True:
        top = np.argpartition(columns, rows - k, axis=1)[:, rows - k :]
        top_weights = weights[row, top]
        below = total - top_weights.sum(axis=1)
        if k == rows or np.all((below < reach) | (total <= 0.0)):
            break
        k = min(rows, 2 * k)
    top_values = columns[row, top]
    ordered = np.argsort(top_values, axis=1)
    top_values = top_values[row, ordered]
    top_weights = top_weights[row, ordered]
    cumulative = below[:, None] + np.cumsum(top_weights, axis=1)
    position = np.minimum((cumulative < reach[:, None]).sum(axis=1), k - 1)
    result = top_values[row[:, 0], position]
    return np.where((total > 0) & np.isfinite(result) & (below < reach), result, 0.0)
