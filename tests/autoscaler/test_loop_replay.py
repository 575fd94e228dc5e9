"""The loop's replay and the margin calibrate() chooses on it.

Frames are built by hand: a week of ticks at a steady level with Poisson noise, a band
that is the level itself, and, on one day, a burst or a busier day. Every other day and
the week as a whole stay within the target; the worst day only as far as that needs
(a burst no margin covers, or one the week's budget absorbs, is let through rather
than buying a week of margins for a few minutes).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from autoscaler import loop_replay
from autoscaler.backtest.queue import queue_lateness, ready_nodes
from autoscaler.loop_replay import (
    AIMS,
    MARGINS,
    Frame,
    LoopSettings,
    calibrate,
    lowest_margin,
    overspent_now,
    replay_late,
)
from autoscaler.policy import Limits
from autoscaler.portfolio import Trial
from autoscaler.schedules import ScheduleBounds
from tests.support import whole_late

START = datetime(2026, 11, 2, tzinfo=UTC)
RATE = 0.05
DAYS = 7
TARGET = 0.01


def settings() -> LoopSettings:
    limits = Limits(
        min_nodes=0,
        max_nodes=100_000,
        stabilization=timedelta(minutes=10),
        max_step_down=100_000,
        cooldown=timedelta(0),
    )
    return LoopSettings(
        per_node_rps=RATE,
        utilization=1.0,
        boot_time=timedelta(minutes=10),
        spare_nodes=0,
        limits=limits,
        service_target=TARGET,
        latency_target_s=3.0,
    )


def week(burst: float = 1.0, busy_day: float = 1.0, seed: int = 2) -> Frame:
    """A week of minutes around 40 nodes' worth; on day 3 from 12:00, 4 minutes at
    `burst` times the level, or the whole of day 3 at `busy_day` times it. The band is
    the usual level, so the replay is late where demand is not."""
    minutes = DAYS * 1440
    rng = np.random.default_rng(seed)
    level = np.full(minutes + 1, 40 * RATE)
    actual = level.copy()
    actual[3 * 1440 : 4 * 1440] *= busy_day
    demand = rng.poisson(actual * 60) / 60.0
    start = 3 * 1440 + 720
    if burst != 1.0:
        demand[start : start + 4] = burst * level[0]
    return Frame(
        times=[START + timedelta(minutes=i) for i in range(minutes)],
        demand=demand[:-1],
        served=demand[1:],
        peak=level[:-1],
        arrival=level[:-1],
        schedules=[ScheduleBounds(None, None, ())] * minutes,
        tick_s=60.0,
    )


def test_a_burst_far_beyond_every_other_day_is_let_through() -> None:
    frame, loop = week(burst=25.0), settings()
    trial = calibrate(frame, TARGET, loop, "forecast")
    assert trial.meets and trial.outlier
    assert replay_late(frame, trial.margin, loop) > TARGET  # the burst's day, let through
    assert trial.margin < 1.5  # a few minutes' burst does not buy a week of 25 x margins
    assert replay_late(frame, 2 * trial.margin, loop) > TARGET  # twice as wide: still late


def test_a_busier_day_is_covered_as_far_as_the_weeks_budget_needs() -> None:
    """A whole day a quarter busier than the band: the margin keeps the week within the
    target (narrower than what keeps that day within it, wider than the other days need)."""
    frame, loop = week(busy_day=1.25), settings()
    trial = calibrate(frame, TARGET, loop, "forecast")
    assert trial.meets and trial.outlier
    assert whole_late(frame, trial.margin, loop) <= TARGET
    assert whole_late(frame, trial.margin / 1.05, loop) > TARGET  # not far above it
    assert replay_late(frame, trial.margin, loop) > TARGET  # that day is still over


def test_without_an_outlier_every_day_is_within_the_target() -> None:
    frame, loop = week(), settings()
    trial = calibrate(frame, TARGET, loop, "forecast")
    assert trial.meets and not trial.outlier
    assert replay_late(frame, trial.margin, loop) <= TARGET
    assert MARGINS[0] <= trial.margin < MARGINS[1]


def test_widen_only_never_narrows_a_member_below_its_level() -> None:
    """A band twice the level is far wider than the target needs: `margin: loop` narrows
    it, `margin: widen` keeps it (margin 1), whichever member's peaks the frame holds. A
    band under the level is widened the same under both."""
    wide = week()
    wide = Frame(**{**wide.__dict__, "peak": 2 * wide.peak, "arrival": 2 * wide.arrival})
    loop, widen = settings(), replace(settings(), widen_only=True)
    assert (lowest_margin(widen), lowest_margin(loop)) == (1.0, MARGINS[0])
    for member in ("forecast", "reactive", "recent_peak", "static"):
        assert calibrate(wide, TARGET, loop, member).margin < 0.9
        kept = calibrate(wide, TARGET, widen, member)
        assert kept.meets and kept.margin == 1.0
    assert replay_late(wide, 1.0, widen) <= TARGET
    narrow = week(busy_day=1.25)
    assert calibrate(narrow, TARGET, widen, "forecast").margin == pytest.approx(
        calibrate(narrow, TARGET, loop, "forecast").margin, abs=0.01
    )
    assert calibrate(narrow, TARGET, widen, "forecast").margin > 1.0


def test_the_budget_burns_only_while_the_week_and_its_last_day_are_both_over_it() -> None:
    """The over-budget hold's test, as a multiwindow burn-rate alert: the calibrated
    margins' spend over the kept week and over its last day both over the budget (shares
    of it). A week over it whose last day is back within (an event that is over) holds
    nothing, nor does a last day over it in a week within, nor no calibrated ticks yet."""
    assert overspent_now(1.2, 1.5)
    assert not overspent_now(1.2, 0.4)  # the event is over
    assert not overspent_now(0.8, 3.0)  # one bad day in a week within the budget
    assert not overspent_now(1.0, 1.0)  # at the budget is within it
    assert not overspent_now(None, None) and not overspent_now(1.5, None)


def test_under_widen_the_floor_comes_down_only_where_the_budget_goes_unspent() -> None:
    """`margin: widen`'s floor is 1 (the level at the pool's utilization) while the aim is
    at most 1; as the error-budget feedback raises the aim it comes down, never rising,
    to full use at the aim's top, but never under one node spare over the mean load
    (N+1: 20 nodes keep 21 at full use), so a fleet of up to 4 nodes at 0.8 keeps its
    floor at 1. `margin: loop` has no such floor. And calibrate() takes the floor it is
    given."""
    widen = replace(settings(), utilization=0.8, widen_only=True)
    top = AIMS[1]
    for aim in (AIMS[0], 0.5, 1.0):
        assert lowest_margin(widen, aim, load=1_000.0) == 1.0
    floors = [lowest_margin(widen, aim) for aim in np.linspace(1.0, top, 9)]
    assert floors[0] == 1.0 and floors[-1] == pytest.approx(0.8)
    assert all(later < earlier for earlier, later in itertools.pairwise(floors))
    assert lowest_margin(widen, top, load=100.0) == pytest.approx(0.8 * 1.01)
    assert lowest_margin(widen, top, load=20.0) == pytest.approx(0.8 * 1.05)
    assert lowest_margin(widen, top, load=4.0) == 1.0
    assert lowest_margin(widen, top, load=5.0) == pytest.approx(0.96)
    assert lowest_margin(widen, top, load=0.4) == 1.0
    assert lowest_margin(widen, top, load=math.nan) == 1.0  # no demand known: no evidence
    assert lowest_margin(settings(), top, load=100.0) == MARGINS[0]
    wide = week()
    wide = Frame(**{**wide.__dict__, "peak": 2 * wide.peak, "arrival": 2 * wide.arrival})
    at_full_use = replace(widen, utilization=1.0)
    trial = calibrate(wide, TARGET, at_full_use, "forecast", lowest=0.8)
    assert trial.margin == 0.8  # the band at 0.8 already meets the target: kept there
    assert calibrate(wide, TARGET, at_full_use, "forecast").margin == 1.0


def test_a_burst_the_weeks_budget_absorbs_is_let_through() -> None:
    frame, loop = week(burst=2.5), settings()
    trial = calibrate(frame, TARGET, loop, "forecast")
    assert trial.meets and trial.outlier
    assert replay_late(frame, trial.margin, loop) > TARGET  # its day is over the target
    assert whole_late(frame, trial.margin, loop) <= TARGET  # the week is not


def full_bisections(frame: Frame, loop: LoopSettings) -> Trial:
    """calibrate()'s rule with all three bisections run to the end, every step replayed
    afresh from the frame alone: what the shared, stopping ones must choose too."""

    def smallest(share: str) -> loop_replay.Replayed | None:
        def at(margin: float) -> loop_replay.Replayed:
            return loop_replay.FrameReplays(frame, loop).at(margin)

        low, found = MARGINS[0], at(MARGINS[1])
        if getattr(found, share) > TARGET:
            return None
        for _ in range(loop_replay.BISECTION_STEPS):
            middle = at((low + found.margin) / 2)
            if getattr(middle, share) > TARGET:
                low = middle.margin
            else:
                found = middle
        return found

    other_days, every_day, whole = smallest("second"), smallest("worst"), smallest("pooled")
    assert other_days is not None
    if whole is None:
        needed = every_day or other_days
    else:
        needed = max(other_days, whole, key=lambda r: r.margin)
    if every_day is not None and every_day.margin <= needed.margin:
        needed = every_day
    outlier = needed is not every_day
    return Trial("forecast", needed.margin, needed.worst, needed.node_ticks, True, outlier)


@pytest.mark.parametrize(
    "frame",
    [week(), week(burst=2.5), week(burst=25.0), week(busy_day=1.25), week(busy_day=2.0)],
    ids=["plain", "burst", "large-burst", "busier-day", "twice-as-busy-day"],
)
def test_the_bisections_share_and_stop_without_changing_the_margin(
    frame: Frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calibrate() replays each margin once for its three bisections (they start alike),
    with what no margin changes worked out once, and stops a bisection once the rest of
    it cannot change the choice: the same trial as the three run in full, every step
    replayed afresh, in fewer replays than the 31 steps."""
    loop = settings()
    replayed: list[float] = []
    counts = loop_replay.replay_counts

    def counted(frame: Frame, margin: float, settings: LoopSettings, fixed=None) -> np.ndarray:
        replayed.append(margin)
        return counts(frame, margin, settings, fixed)

    monkeypatch.setattr(loop_replay, "replay_counts", counted)
    shared = calibrate(frame, TARGET, loop, "forecast")
    assert len(replayed) == len(set(replayed)) < 1 + 3 * loop_replay.BISECTION_STEPS
    monkeypatch.setattr(loop_replay, "replay_counts", counts)
    assert shared == full_bisections(frame, loop)


def test_a_masked_tick_is_left_out_of_the_budget_replay_and_drains_no_backlog() -> None:
    """Ticks whose demand demand.exclude masked are NaN in the kept ticks: they were fed to
    the queue as no requests, which drained the backlog a shortfall before them had built,
    so the late requests after them read on time. They are now left out of the late and
    the arrivals counted, the queue holding the last known demand (the digest's rule)."""
    minutes = 200
    demand = np.full(minutes + 1, 40 * RATE)  # the band's level: 40 nodes, no spare
    demand[100:106] = 60 * RATE  # a shortfall of 20 nodes' worth for 6 ticks
    demand[106:111] = np.nan  # then 5 ticks masked, then the level again
    frame = Frame(
        times=[START + timedelta(minutes=i) for i in range(minutes)],
        demand=demand[:-1],
        served=demand[1:],
        peak=np.full(minutes, 40 * RATE),
        arrival=np.full(minutes, 40 * RATE),
        schedules=[ScheduleBounds(None, None, ())] * minutes,
        tick_s=60.0,
    )
    late, arrivals = loop_replay.replay_lateness(frame, 1.0, settings())
    counts = loop_replay.replay_counts(frame, 1.0, settings())
    ready = ready_nodes(counts, 10, int(counts[0]))  # 10 minutes' boot
    held = pd.Series(frame.served).ffill().to_numpy()
    expected = queue_lateness(held * 60.0, ready * RATE, 3.0).late
    masked = np.isnan(frame.served)
    assert (late[masked] == 0).all() and (arrivals[masked] == 0).all()
    np.testing.assert_allclose(late[~masked], expected[~masked])
    assert late[110:].sum() > 1000  # the backlog outlives the masked ticks


def test_a_tick_weighs_its_interval_in_the_budget_replay() -> None:
    """A pool ticking every 5 minutes, each kept tick's demand held for its 5 minutes.
    The replay counted a tick as one minute of requests, so a shortfall built a fifth of
    its backlog: one tick 1 node's worth over the band's 40 nodes replayed 0 late, where
    the late-request rule over the same minutes has 369 of its 615 requests late (0.83 %
    of the whole, near a 1 % target), and the margin narrowed on it. Now the replay's
    late requests are the rule's over the minutes, tick by tick."""
    ticks, per_tick = 100, 5
    demand = np.full(ticks + 1, 36 * RATE)
    demand[50] = 41 * RATE
    frame = Frame(
        times=[START + timedelta(minutes=per_tick * i) for i in range(ticks)],
        demand=demand[:-1],
        served=demand[1:],
        peak=np.full(ticks, 40 * RATE),
        arrival=np.full(ticks, 40 * RATE),
        schedules=[ScheduleBounds(None, None, ())] * ticks,
        tick_s=60.0 * per_tick,
    )
    late, arrivals = loop_replay.replay_lateness(frame, 1.0, settings())
    counts = loop_replay.replay_counts(frame, 1.0, settings())
    ready = ready_nodes(counts, 2, int(counts[0]))  # 10 minutes' boot: two ticks
    minutes = np.repeat(frame.served * 60.0, per_tick)
    by_minute = queue_lateness(minutes, np.repeat(ready * RATE, per_tick), 3.0).late
    np.testing.assert_allclose(arrivals, frame.served * 60.0 * per_tick)
    np.testing.assert_allclose(late, by_minute.reshape(ticks, per_tick).sum(axis=1), atol=1e-9)
    assert late[49] == pytest.approx(369.0)
    assert late.sum() / arrivals.sum() == pytest.approx(by_minute.sum() / minutes.sum())
