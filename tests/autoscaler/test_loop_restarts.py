"""A loop-calibrated pool across a daemon restart: with its calibration (the state file)
and its week of ticks (its own file) taken up, the restarted loop decides as the loop that
ran on would have; a week it cannot trust (another pool's settings, a clock gone back, a
week long past) is refused and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscaler.calibration import LoopCalibrated, loop_settings
from autoscaler.config.schema import Pool
from autoscaler.kept_ticks import DEMAND
from autoscaler.kept_ticks_file import read_week, write_week
from autoscaler.plan import limits_of
from autoscaler.pool_state import PoolState
from autoscaler.state import StateStore
from tests.autoscaler.test_portfolio import RATE, Band, bursty_demand, steady_demand

MINUTE = timedelta(minutes=1)


def make_pool(margin: str, boot_time: str = "10m") -> Pool:
    return Pool.model_validate(
        {
            "name": "gen",
            "backend": {"kind": "simulated", "initial_nodes": 2, "boot_delay": boot_time},
            "demand": {"query": "sum(rate(requests_total[2m]))"},
            "capacity": {"per_node_rps": RATE},
            "predictor": {"kind": "seasonal", "margin": margin, "policy": "auto"},
            "max_nodes": 10_000,
            "boot_time": boot_time,
            "horizon": "11m",
            "scale_down": {"stabilization": "10m", "max_step": 1000},
            "cooldown": "0s",
        }
    )


def loop_of(pool: Pool) -> LoopCalibrated:
    return LoopCalibrated(Band(1.5), loop_settings(pool, RATE, limits_of(pool)), pool)


def drive(loop: LoopCalibrated, demand: pd.Series, ends: range, pool: Pool) -> None:
    for end in ends:
        loop.fit(demand.iloc[end - 60 : end])
        loop.forecast(pool.horizon)


def at(demand: pd.Series, row: int) -> datetime:
    return demand.index[row].to_pydatetime()


@pytest.mark.parametrize(
    ("margin", "traffic"),
    [("widen", bursty_demand), ("loop", bursty_demand), ("widen", steady_demand)],
)
def test_a_restart_between_two_ticks_changes_nothing_the_loop_decides(
    tmp_path: Path, margin: str, traffic: Callable[[int], pd.Series]
) -> None:
    """Restarted after 8 days, the loop hands the sizing the same band, margin and member
    at every tick of the next two days (eight recalibrations, the members compared at
    each) as the loop that ran on: its error-budget feedback too judges the week from the
    first recalibration (on steady traffic, a budget left unspent raises the aim)."""
    pool = make_pool(margin)
    demand = traffic(10 * 1440)
    split = 8 * 1440
    ran_on = loop_of(pool)
    drive(ran_on, demand, range(60, split + 1), pool)
    week = ran_on.kept_week()
    assert week is not None and week.window_full
    write_week(tmp_path / "gen.npz", week)
    restarted = loop_of(pool)
    first = at(demand, split)  # the restarted daemon's first tick
    assert restarted.resume(ran_on.saved(first - MINUTE), first)
    assert restarted._day_over_at == ran_on._day_over_at  # the members not trusted yet
    assert bool(ran_on._day_over_at) == (traffic is bursty_demand)  # bursts: some are barred
    assert restarted.take_up_week(read_week(tmp_path / "gen.npz", UTC), first)
    recalibrations = 0
    for end in range(split + 1, len(demand) + 1):
        before = ran_on.recalibrated_at
        bands = []
        for loop in (ran_on, restarted):
            loop.fit(demand.iloc[end - 60 : end])
            bands.append(loop.forecast(pool.horizon).upper)
        np.testing.assert_array_equal(bands[0], bands[1])
        assert (restarted.margin, restarted.member) == (ran_on.margin, ran_on.member)
        assert restarted.recalibrated_at == ran_on.recalibrated_at
        recalibrations += ran_on.recalibrated_at != before
    assert recalibrations == 8 and restarted.choice == ran_on.choice
    assert restarted.aim == ran_on.aim
    assert restarted.choice is not None and "compared once" not in restarted.choice


def test_a_restart_before_the_first_calibration_changes_nothing_either(tmp_path: Path) -> None:
    """Twelve hours in, nothing is calibrated: nothing is saved to resume (resumed, the
    band as made would have counted as a calibrated margin in the budget's spend), the
    week is taken up, and the next days go as in the loop that ran on."""
    pool = make_pool("widen")
    demand = bursty_demand(3 * 1440)
    split = 720
    ran_on = loop_of(pool)
    drive(ran_on, demand, range(60, split + 1), pool)
    assert ran_on.saved(at(demand, split)) is None
    week = ran_on.kept_week()
    assert week is not None
    write_week(tmp_path / "gen.npz", week)
    restarted = loop_of(pool)
    assert restarted.take_up_week(read_week(tmp_path / "gen.npz", UTC), at(demand, split))
    for end in range(split + 1, len(demand) + 1):
        bands = []
        for loop in (ran_on, restarted):
            loop.fit(demand.iloc[end - 60 : end])
            bands.append(loop.forecast(pool.horizon).upper)
        np.testing.assert_array_equal(bands[0], bands[1])
    assert ran_on.recalibrated_at is not None
    assert (restarted.margin, restarted.aim) == (ran_on.margin, ran_on.aim)


def test_without_its_week_a_restarted_loop_compares_its_members_only_a_week_later() -> None:
    """What the week file is for: the same restart with the calibration alone follows the
    resumed member, not compared, for a week of new ticks."""
    pool = make_pool("widen")
    demand = bursty_demand(10 * 1440)
    split = 8 * 1440
    ran_on = loop_of(pool)
    drive(ran_on, demand, range(60, split + 1), pool)
    restarted = loop_of(pool)
    assert restarted.resume(ran_on.saved(at(demand, split - 1)), at(demand, split))
    drive(restarted, demand, range(split + 1, len(demand) + 1), pool)
    assert restarted.choice is not None and "compared once" in restarted.choice


def test_a_week_it_cannot_trust_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    pool = make_pool("widen")
    demand = bursty_demand(2 * 1440)
    ran_on = loop_of(pool)
    drive(ran_on, demand, range(60, 2 * 1440 + 1), pool)
    week = ran_on.kept_week()
    assert week is not None
    newest = at(demand, 2 * 1440 - 1)
    refused = [
        (pool, newest),  # a clock gone back to the newest tick
        (pool, newest - timedelta(hours=1)),
        (pool, newest + timedelta(days=7, minutes=1)),  # the whole week long past
        (make_pool("widen", boot_time="8m"), newest + MINUTE),  # configured otherwise
        (make_pool("loop"), newest + MINUTE),
    ]
    for configured, now in refused:
        fresh = loop_of(configured)
        assert not fresh.take_up_week(week, now)
        assert len(fresh._ticks) == 0 and fresh.recalibrated_at is None
    busy = loop_of(pool)
    drive(busy, demand, range(60, 70), pool)
    assert not busy.take_up_week(week, newest + MINUTE) and len(busy._ticks) == 10


def test_a_week_taken_up_lets_go_of_what_the_window_no_longer_reaches(tmp_path: Path) -> None:
    """Six and a half days kept, taken up 18 hours later: the oldest hours are let go,
    the window is full (the members are compared at the next recalibration), and the
    recent peak is the one the loop had at its last tick (the last day before it)."""
    pool = make_pool("widen")
    demand = bursty_demand(7 * 1440)
    kept_to = 6 * 1440 + 720
    ran_on = loop_of(pool)
    drive(ran_on, demand, range(60, kept_to + 1), pool)
    week = ran_on.kept_week()
    assert week is not None and not week.window_full
    now = at(demand, kept_to - 1) + timedelta(hours=18)
    restarted = loop_of(pool)
    assert restarted.take_up_week(week, now)
    ticks = restarted._ticks
    oldest = ticks.oldest_at()
    assert oldest is not None and oldest >= now - timedelta(days=7) and restarted._window_full
    assert (
        restarted._peaks.peak == ran_on._peaks.peak == demand.iloc[kept_to - 1440 : kept_to].max()
    )
    assert len(ticks) == len(ticks.column(DEMAND)) < kept_to - 59


def test_a_restart_says_the_budget_the_week_spent_until_its_next_recalibration(
    tmp_path: Path,
) -> None:
    """Restarted through the state file and the week's file, the first tick's /metrics
    estimate (Calibration.budget_spent) and decision reasons are the loop's that ran on:
    the budget it spent over the kept week, not nothing (the gauge gone, the overspent
    alert resolved, the reasons silent on the budget for up to 6 h)."""
    pool = make_pool("widen")
    demand = bursty_demand(10 * 1440)
    split = 8 * 1440
    ran_on = loop_of(pool)
    drive(ran_on, demand, range(60, split + 1), pool)
    first = at(demand, split)
    store = StateStore(tmp_path / "state.json")
    store.save({"gen": PoolState(loop=ran_on.saved(first - MINUTE))})
    week = ran_on.kept_week()
    assert week is not None
    write_week(tmp_path / "gen.npz", week)
    restarted = loop_of(pool)
    resumed, took_up = restarted.restart_from(
        store.load()["gen"].loop, read_week(tmp_path / "gen.npz", UTC), first
    )
    assert resumed and took_up
    said = []
    for loop in (ran_on, restarted):
        loop.fit(demand.iloc[split + 1 - 60 : split + 1])
        said.append(loop.forecast(pool.horizon).calibration)
    assert ran_on.recalibrated_at == restarted.recalibrated_at < first  # none since
    assert ran_on.spent is not None
    assert said[1] is not None and said[0] is not None
    assert said[1].budget_spent == ran_on.spent / pool.predictor.service_target > 0
    assert said[1].notes == said[0].notes
    assert any(note.startswith("budget: ") for note in said[1].notes)
