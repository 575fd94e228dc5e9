"""The portfolio: members replayed at their calibrated margins, the cheapest followed.

The choice rule is checked on hand-made trials; the whole loop on traffic where the
answer is known: a level with minute-to-minute noise only, served once by a
forecaster whose band is right and once by one whose band swings wildly at random
(a forecast that does not pay): the pool follows the forecast in the first case and a
member that does not forecast in the second, and says so.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from autoscaler.calibration import LoopCalibrated, loop_settings
from autoscaler.config.schema import Pool, PredictorConfig
from autoscaler.kept_ticks import DEMAND
from autoscaler.loop_replay import replay_late
from autoscaler.portfolio import (
    MEMBERS,
    SWITCH_GAIN,
    Trial,
    choose,
    member_peaks,
    member_upper_now,
    members_of,
    recent_peaks,
)
from autoscaler.tick import limits_of
from predictors import Forecast

START = datetime(2026, 11, 2, tzinfo=UTC)
RATE = 0.05


def trial(member: str, node_ticks: float, late: float = 0.005, meets: bool = True) -> Trial:
    return Trial(member, 1.0, late, node_ticks, meets)


def test_the_cheapest_member_that_meets_the_target_is_followed() -> None:
    trials = [
        trial("forecast", 100.0),
        trial("reactive", 80.0),
        trial("recent_peak", 60.0, 0.02, False),
    ]
    chosen, why = choose(trials, following=None)
    assert chosen.member == "reactive"
    assert why.startswith("policy reactive: cheapest")
    assert "forecast 1.25x" in why and "recent_peak 0.75x (misses)" in why


def test_a_near_tie_does_not_switch_but_a_clear_gain_does() -> None:
    near = [trial("forecast", 100.0), trial("reactive", 100.0 / (1 + SWITCH_GAIN) + 0.1)]
    assert choose(near, following="forecast")[0].member == "forecast"
    clear = [trial("forecast", 100.0), trial("reactive", 90.0)]
    assert choose(clear, following="forecast")[0].member == "reactive"
    missing = [trial("forecast", 50.0, 0.02, meets=False), trial("reactive", 90.0)]
    assert choose(missing, following="forecast")[0].member == "reactive"  # only if it meets


def test_with_no_member_meeting_the_target_the_least_late_is_followed() -> None:
    trials = [trial("forecast", 50.0, 0.03, False), trial("reactive", 90.0, 0.02, False)]
    chosen, why = choose(trials, following="forecast")
    assert chosen.member == "reactive" and "no member meets the target" in why


def test_members_of_a_policy() -> None:
    assert members_of("auto") == ("forecast", "reactive", "recent_peak")
    assert members_of("reactive") == ("reactive",)
    accepted = get_args(PredictorConfig.model_fields["policy"].annotation)
    assert set(accepted) == {"auto", *MEMBERS}  # the config names every member, no other


def test_recent_peak_is_the_highest_demand_of_the_last_day_skipping_gaps() -> None:
    times = [START + timedelta(hours=h) for h in range(30)]
    demand = np.arange(30, dtype=float)[::-1].copy()  # falling: 29, 28, ...
    demand[2] = np.nan
    peaks = recent_peaks(times, demand)
    assert peaks[0] == 29 and peaks[2] == 29
    assert peaks[24] == 28  # the window is the last 24 h: hour 0 has just left it
    assert peaks[25] == 26  # hour 2 is missing: skipped, not read as zero or as a peak
    assert peaks[29] == demand[6]


def test_member_bands_hold_where_the_forecast_is_missing() -> None:
    peak, arrival = np.array([3.0, np.nan, 5.0]), np.array([2.5, np.nan, 4.0])
    demand = np.array([1.0, 1.5, 2.0])
    recent = np.array([1.0, 1.5, 2.5])
    reactive = member_peaks("reactive", peak, arrival, demand, recent)
    np.testing.assert_array_equal(reactive[0], [1.0, np.nan, 2.0])
    np.testing.assert_array_equal(reactive[1], reactive[0])
    np.testing.assert_array_equal(
        member_peaks("recent_peak", peak, arrival, demand, recent)[0], [1.0, np.nan, 2.5]
    )
    assert member_peaks("forecast", peak, arrival, demand, recent) == (peak, arrival)
    band = np.array([2.0, 3.0])
    np.testing.assert_array_equal(member_upper_now("recent_peak", band, 1.0, 7.0), [7.0, 7.0])
    assert member_upper_now("forecast", band, 1.0, 7.0) is band


def make_pool(policy: str) -> Pool:
    return Pool.model_validate(
        {
            "name": "gen",
            "backend": {"kind": "simulated", "initial_nodes": 2, "boot_delay": "10m"},
            "demand": {"query": "sum(rate(requests_total[2m]))"},
            "capacity": {"per_node_rps": RATE},
            "predictor": {"kind": "seasonal", "margin": "loop", "policy": policy},
            "max_nodes": 10_000,
            "boot_time": "10m",
            "horizon": "11m",
            "scale_down": {"stabilization": "10m", "max_step": 1000},
            "cooldown": "0s",
        }
    )


class Band:
    """Upper = the newest sample times `width` (a steady band), or times a factor drawn
    anew each tick from 0.3-3 (`wild`: a forecast whose band says nothing)."""

    name = "band"

    def __init__(self, width: float, wild: bool = False) -> None:
        self.width, self.wild = width, wild
        self.rng = np.random.default_rng(7)

    def fit(self, history: pd.Series) -> Band:
        self.end, self.last = history.index[-1], float(history.iloc[-1])
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        steps = int(horizon / timedelta(minutes=1))
        times = pd.date_range(self.end + timedelta(minutes=1), periods=steps, freq="1min")
        width = self.rng.uniform(0.3, 3.0) if self.wild else self.width
        point = np.full(steps, self.last)
        return Forecast(times, point, point * width, self.name)


def steady_demand(minutes: int, seed: int = 3) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=minutes, freq="1min")
    return pd.Series(rng.poisson(40 * RATE * 60, minutes) / 60.0, index=index)


def run(policy: str, inner: Band, minutes: int = 1440 + 120) -> tuple[LoopCalibrated, Forecast]:
    pool = make_pool(policy)
    predictor = LoopCalibrated(inner, loop_settings(pool, RATE, limits_of(pool)), pool)
    demand = steady_demand(minutes)
    forecast = None
    for end in range(60, len(demand) + 1):
        predictor.fit(demand.iloc[end - 60 : end])
        forecast = predictor.forecast(pool.horizon)
    assert forecast is not None
    return predictor, forecast


def test_a_forecast_that_does_not_pay_is_left_for_a_member_that_meets_the_target_cheaper() -> None:
    predictor, forecast = run("auto", Band(1.0, wild=True))
    assert predictor.member in ("reactive", "recent_peak")
    assert predictor.choice is not None and "switched from forecast" in predictor.choice
    assert predictor.choice in forecast.notes
    frame = predictor._frame()
    assert frame is not None
    demand_now = predictor._ticks.newest(DEMAND)
    if predictor.member == "reactive":  # the band handed out: demand now x the margin
        np.testing.assert_allclose(forecast.upper, predictor.margin * demand_now)
    target = predictor.settings.service_target
    peaks = recent_peaks(frame.times, frame.demand)
    peak, arrival = member_peaks(predictor.member, frame.peak, frame.arrival, frame.demand, peaks)
    member_frame = replace(frame, peak=peak, arrival=arrival)
    assert replay_late(member_frame, predictor.margin, predictor.settings) <= target


def test_a_forecast_that_pays_is_kept() -> None:
    """A steady band at the level: the forecast member costs no more than holding the
    demand now, so the hysteresis keeps it."""
    predictor, _ = run("auto", Band(1.0))
    assert predictor.member == "forecast"


@pytest.mark.parametrize("pinned", ["forecast", "reactive", "recent_peak"])
def test_a_pinned_member_is_the_only_one_followed(pinned: str) -> None:
    predictor, forecast = run(pinned, Band(1.0, wild=True))
    assert predictor.member == pinned and predictor.choice is None
    assert predictor.replayed_late is not None
    assert forecast.notes[-1].startswith("budget: ")


@pytest.mark.parametrize("policy", ["auto", "reactive", "recent_peak"])
def test_the_fail_safe_rules_win_over_every_member(tmp_path: Path, policy: str) -> None:
    """Whatever the member, the pool's bounds and a person's override bound the count, and
    missing demand data holds the fleet (the member only shapes the band decide() sees)."""
    from autoscaler.metrics import MetricsError
    from autoscaler.overrides import Override, OverridesFile
    from tests.autoscaler.test_tick import Harness

    loop = {"kind": "linear", "margin": "loop", "policy": policy}
    h = Harness(tmp_path, rps=10.0, predictor=loop, min_nodes=3, max_nodes=9)
    assert h.tick().decision.desired == 9  # 10 req/s wants 13 nodes: capped at max_nodes
    h.metrics.failure = MetricsError("stale", "q", "old")
    held = h.tick()
    assert held.decision.desired == held.decision.current == 9
    h.metrics.failure = None
    h.metrics.rps = 0.0
    until = h.clock.now() + timedelta(hours=1)
    h.overrides = OverridesFile(overrides={"ocr": Override(nodes=5, reason="test", expires=until)})
    assert h.tick().decision.desired == 5  # the override fixes the count, at once


def test_the_peak_handed_out_now_is_the_replays_recent_peak() -> None:
    """The live peak (a running queue) equals the replay's (a rolling maximum over the kept
    ticks) at every tick, through missing samples and a clock that goes back."""
    pool = make_pool("recent_peak")
    predictor = LoopCalibrated(Band(1.0), loop_settings(pool, RATE, limits_of(pool)), pool)
    demand = steady_demand(2000, seed=5)
    demand.iloc[::37] = np.nan
    ends = [*range(60, 1500, 7), *range(900, 2001, 5)]  # goes back once (a restart)
    for end in ends:
        predictor._record(demand.index[end - 1].to_pydatetime(), float(demand.iloc[end - 1]))
        ticks = predictor._ticks
        expected = recent_peaks(ticks.times, ticks.column(DEMAND))[-1]
        assert predictor._peak_now() == pytest.approx(expected, nan_ok=True)
