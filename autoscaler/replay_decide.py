"""decide() over a replayed run of ticks, on plain integers: the loop calibration's inner loop.

Why a second copy of decide()'s rules: the loop calibration (autoscaler/calibration.py)
replays a pool's decisions over a window of ticks (10^4 at one a minute) once per margin
it tries, a dozen margins every refit, for each portfolio member: some 10^5 decide()
calls per calibration, each building an Observation, a Decision, reason strings and a
Memory whose stabilization window is filtered again. Here the same rules run over plain
integers, compiled by numba (`replay_loop`: some 50 x faster again than the same loop in
Python), with the window's highest recommendation kept by a monotonic queue, for
exactly what the replay observes: the forecast's, the demand's and the arrival's node
counts (or missing data), the schedules' floor and ceiling, and the pool's Limits. No
overrides, signals, manual changes or reasons.

decide() stays the one authority: tests/autoscaler/test_replay_decide.py checks on
thousands of random runs that the counts here are exactly decide()'s, and a run this
does not model (time not moving forward, mixed time zones) is replayed by decide()
itself (`decide_each`).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from operator import attrgetter

import numpy as np
import pandas as pd

from autoscaler.policy import (
    Limits,
    Memory,
    Observation,
    allowance,
    decide,
    scale_up_limits,
)
from autoscaler.schedules import ScheduleBounds

_MICROSECOND = timedelta(microseconds=1)
log = logging.getLogger(__name__)
_CEILING, _FLOOR, _ZONE = attrgetter("ceiling"), attrgetter("floor"), attrgetter("tzinfo")


@dataclass(frozen=True)
class ReplayedTicks:
    """What each replayed tick observes: node counts for the forecast's whole horizon,
    the demand seen now and the forecast from when new nodes would be ready (spare
    included), valid where `ok`; where not, data is missing and the tick holds."""

    times: Sequence[datetime]
    forecast_nodes: np.ndarray
    demand_nodes: np.ndarray
    arrival_nodes: np.ndarray
    ok: np.ndarray
    schedules: Sequence[ScheduleBounds]
    spare_nodes: int = 0
    bounds: RunBounds | None = None
    """run_bounds(times, schedules, limits) when already known (the same ticks replayed at
    another margin); None: computed here."""


@dataclass(frozen=True)
class RunBounds:
    """What a replay of a run needs that no count changes: each tick's bounds as a clamp,
    the target then max(min(t, ceiling), floor), and whether the fast replay models the
    run's times (`_modelled`)."""

    ceilings: np.ndarray
    floors: np.ndarray
    modelled: bool
    stamps: np.ndarray
    """Each tick's time in microseconds, as decide() subtracts times of one zone (wall
    clock: Python ignores a shared tzinfo in `at - t`); empty when not modelled."""


def run_bounds(
    times: Sequence[datetime], schedules: Sequence[ScheduleBounds], limits: Limits
) -> RunBounds:
    """policy.apply_bounds as a clamp per tick: schedule ceilings, then floors, then
    min_nodes, last max_nodes: so max_nodes caps both, and the floor is the higher of the
    schedule's and min_nodes (floors beat ceilings)."""
    top, low = limits.max_nodes, limits.min_nodes
    ceilings = [top if c is None else min(c, top) for c in map(_CEILING, schedules)]
    floors = [min(low if f is None else max(f, low), top) for f in map(_FLOOR, schedules)]
    as_array = partial(np.array, dtype=np.int64)
    modelled = _modelled(times)
    stamps = _wall_microseconds(times) if modelled else np.empty(0, dtype=np.int64)
    return RunBounds(as_array(ceilings), as_array(floors), modelled, stamps)


def _wall_microseconds(times: Sequence[datetime]) -> np.ndarray:
    """Microseconds of each time's wall clock in its (one) zone: what `at - t` measures."""
    if isinstance(times, pd.DatetimeIndex):  # the kept ticks' times: vectorised
        if times.tz is None or isinstance(times.tz, timezone):
            return times.as_unit("us").asi8
        return times.tz_localize(None).as_unit("us").asi8
    zone = times[0].tzinfo if len(times) else None
    if zone is None or isinstance(zone, timezone):  # naive, or a fixed offset such as UTC
        return pd.DatetimeIndex(times).as_unit("us").asi8  # the same differences, fast
    naive = [t.replace(tzinfo=None) for t in times]  # a zone with DST: exact, slower
    return np.array(naive, dtype="datetime64[us]").view(np.int64)


def replay_decide(ticks: ReplayedTicks, limits: Limits, current: int) -> np.ndarray:
    """The count decide() sets at each tick, starting from `current` nodes."""
    bounds = ticks.bounds or run_bounds(ticks.times, ticks.schedules, limits)
    if not bounds.modelled:
        return decide_each(ticks, limits, current)
    return _replay(ticks, bounds, limits, current)


def decide_each(ticks: ReplayedTicks, limits: Limits, current: int) -> np.ndarray:
    """decide() itself, one tick at a time: the authority the fast replay must equal."""
    memory = Memory()
    desired = np.empty(len(ticks.times), dtype=np.int64)
    for i in range(len(ticks.times)):
        decision, memory = decide(observation_at(ticks, i, current), limits, memory)
        current = desired[i] = decision.desired
    return desired


def observation_at(ticks: ReplayedTicks, i: int, current: int) -> Observation:
    """What decide() sees at replayed tick i with the fleet at `current`."""
    good = bool(ticks.ok[i])
    return Observation(
        at=ticks.times[i],
        current=current,
        forecast_nodes=int(ticks.forecast_nodes[i]) if good else None,
        missing_reason=None if good else "missing in the replay",
        schedule=ticks.schedules[i],
        demand_nodes=int(ticks.demand_nodes[i]) if good else None,
        arrival_nodes=int(ticks.arrival_nodes[i]) if good else None,
        spare_nodes=ticks.spare_nodes,
    )


def _modelled(times: Sequence[datetime]) -> bool:
    """Times strictly forward in one time zone (one tzinfo object, so that every `at - t`
    is computed one way): then `at - t` grows along the run, as the deque and the
    coverage check need, and decide() never drops a recommendation as from the future."""
    if isinstance(times, pd.DatetimeIndex):  # one zone; in order if rising and unique
        return times.is_monotonic_increasing and times.is_unique
    in_order = all(map(operator.lt, times, itertools.islice(times, 1, None)))
    return in_order and len(set(map(id, map(_ZONE, times)))) <= 1


def _clamps(ticks: ReplayedTicks, bounds: RunBounds) -> tuple[np.ndarray, np.ndarray]:
    """The target of every tick as a clamp of the count `current` before it: a pair (high,
    low) per tick such that the target is max(min(current, high), low).

    policy._base_target on a good tick is max(min(current, kept), wanted) (a count the
    rules fix has wanted == kept; scaling down under an arrival forecast keeps the
    horizon); on a missing one, current. The bounds then clamp it to [floor, ceiling]:
    max(min(max(min(c, k), w), C), F) == max(min(c, min(k, C)), max(min(w, C), F)), min
    distributing over max; with no data, k and w drop out: max(min(c, C), F)."""
    forecast = np.asarray(ticks.forecast_nodes, dtype=np.int64)
    demand = np.asarray(ticks.demand_nodes, dtype=np.int64)
    arrival = np.asarray(ticks.arrival_nodes, dtype=np.int64)
    reactive = demand > forecast
    fixed = np.where(reactive, demand, forecast)
    settled = reactive | (arrival >= forecast)
    wanted = np.where(settled, fixed, np.maximum(demand, arrival))
    kept = np.where(settled, fixed, forecast)
    good = np.asarray(ticks.ok, dtype=bool)
    high = np.where(good, np.minimum(kept, bounds.ceilings), bounds.ceilings)
    low = np.where(
        good, np.maximum(np.minimum(wanted, bounds.ceilings), bounds.floors), bounds.floors
    )
    return high.astype(np.int64), low.astype(np.int64)


def _replay(ticks: ReplayedTicks, bounds: RunBounds, limits: Limits, current: int) -> np.ndarray:
    """The fast replay: decide()'s branches in its order, compiled (numba), state in locals."""
    highs, lows = _clamps(ticks, bounds)
    step_up, percent_up = scale_up_limits(limits)
    loop, allowed = _compiled()
    return loop(
        bounds.stamps,
        np.asarray(ticks.ok, dtype=np.bool_),
        highs,
        lows,
        current,
        limits.max_nodes,
        limits.max_step_down,
        _microseconds(limits.stabilization),
        _microseconds(limits.cooldown),
        step_up,
        percent_up,
        allowed,
    )


def _microseconds(span: timedelta) -> int:
    return span // _MICROSECOND


def compile_replay() -> bool:
    """Compile the replay now rather than at its first use (a fit worker does this once,
    between ticks: the compile would otherwise stretch the tick of its first
    recalibration by ~0.7-0.9 s). False where it runs as plain Python."""
    return _compiled()[0] is not replay_loop


@functools.cache
def _compiled() -> tuple[Callable[..., np.ndarray], Callable[[int, int, float], int]]:
    """The replay loop and policy.allowance compiled on first use (about a second, once
    per process), so that importing the daemon or running the CLI does not pay for numba.
    Where no code may be compiled (systemd's MemoryDenyWriteExecute=, SELinux: numba's
    import refuses), the same loop runs as plain Python: the same counts, slower."""
    try:
        import numba

        loop, allowed = numba.njit(nogil=True)(replay_loop), numba.njit(allowance)
        one = np.zeros(1, dtype=np.int64)
        loop(one, np.ones(1, dtype=np.bool_), one, one, 0, 1, 1, 0, 0, -1, math.nan, allowed)
    except Exception as exc:  # ImportError, OSError from llvmlite, a compile error
        log.warning(
            "the loop calibration's replay runs as plain Python, several times slower: "
            "numba cannot compile here (%s)",
            exc,
        )
        return replay_loop, allowance
    return loop, allowed


def replay_loop(
    stamps: np.ndarray,
    ok: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    current: int,
    top: int,
    step_down: int,
    stabilization: int,
    cooldown: int,
    step_up: int,
    percent_up: float,
    allowed_up: Callable[[int, int, float], int],
) -> np.ndarray:
    """decide()'s count at each tick on plain numbers (times in microseconds, wall clock as
    decide() subtracts them; step_up -1 and percent_up NaN: no such limit; `allowed_up`:
    policy.allowance, compiled with it), the window's recommendations a monotonic queue
    in two arrays. Plain Python that numba compiles
    (`_compiled`); called as it is, it runs the same rules slowly."""
    n = len(stamps)
    desired = np.empty(n, dtype=np.int64)
    window_at = np.empty(n, dtype=np.int64)  # recommendations, falling counts: [head, tail)
    window_count = np.empty(n, dtype=np.int64)
    head = tail = 0
    since = last_action = 0
    has_since = has_action = False  # a first recommendation since data was last missing; an action
    for i in range(n):
        at, high, low = stamps[i], highs[i], lows[i]
        target = high if current > high else current  # max(min(current, high), low)
        if target < low:
            target = low
        if ok[i]:
            while tail > head and window_count[tail - 1] <= target:
                tail -= 1
            window_at[tail], window_count[tail] = at, target
            tail += 1
            if not has_since:
                since, has_since = at, True
        else:
            head = tail = 0
            has_since = False
        if target > current:
            allowed = allowed_up(current, step_up, percent_up)
            new = target if allowed < 0 or target - current <= allowed else current + allowed
        elif target == current:
            new = current
        elif current > top:
            new = top
        elif not ok[i] or (has_action and 0 <= at - last_action < cooldown):
            new = current  # never scale down on missing data, nor inside the cooldown
        elif not has_since or at - since < stabilization:
            new = current  # the window is not yet covered by good data
        else:
            while tail > head and at - window_at[head] >= stabilization:
                head += 1
            stable = window_count[head] if tail > head else target
            new = current if stable >= current else max(stable, current - step_down)
        if new != current:
            last_action, has_action = at, True
        desired[i] = new
        current = new
    return desired
