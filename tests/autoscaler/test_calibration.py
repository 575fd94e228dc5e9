"""The loop-calibrated margin: the pool's own decide() replayed over the ticks it saw.

The wrapped predictors here are small and exact (a band that is a fixed multiple of the
newest sample), so what the margin must do is known: a band far too wide is narrowed
until the replayed loop spends the budget, and pool bounds still win.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from autoscaler import loop_replay
from autoscaler.calibration import LoopCalibrated, loop_settings, pool_predictor
from autoscaler.config.schema import Pool
from autoscaler.kept_ticks import AIM, BAND_ARRIVAL, BAND_PEAK, USED_ARRIVAL, USED_PEAK
from autoscaler.loop_replay import AIMS, replay_counts, replay_late
from autoscaler.loop_restarts import SavedLoop
from autoscaler.plan import limits_of, observe
from autoscaler.policy import Memory, decide
from autoscaler.reason_rules import rule_of
from autoscaler.replay_decide import decide_each
from autoscaler.sizing import size_fleet
from predictors import Forecast
from predictors.seasonal import SeasonalPredictor

START = datetime(2026, 11, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
RATE = 0.05
"""Per-node req/s: 3 requests a minute, so a minute's count is Poisson-noisy."""


def make_pool(**changes: object) -> Pool:
    data: dict[str, object] = {
        "name": "gen",
        "backend": {"kind": "simulated", "initial_nodes": 2, "boot_delay": "10m"},
        "demand": {"query": "sum(rate(requests_total[2m]))"},
        "capacity": {"per_node_rps": 1.0},
        "predictor": {
            "kind": "seasonal",
            "margin": "loop",
            "policy": "forecast",
            "params": {"service_target": 0.01},
        },
        "max_nodes": 10_000,
        "boot_time": "10m",
        "horizon": "11m",
        "scale_down": {"stabilization": "10m", "max_step": 1000},
        "cooldown": "0s",
    }
    data.update(changes)
    return Pool.model_validate(data)


class WideBand:
    """Point = the newest sample; upper = `width` x it, over the horizon; fails on demand."""

    name = "wide"

    def __init__(self, width: float) -> None:
        self.width = width
        self.fail = False

    def fit(self, history: pd.Series) -> WideBand:
        if self.fail:
            raise ValueError("no fit")
        self.end, self.last = history.index[-1], float(history.iloc[-1])
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        steps = int(horizon / timedelta(minutes=1))
        times = pd.date_range(self.end + timedelta(minutes=1), periods=steps, freq="1min")
        point = np.full(steps, self.last)
        return Forecast(times, point, point * self.width, self.name)


def noisy_demand(minutes: int, seed: int = 1) -> pd.Series:
    """Poisson counts around a daily cycle, in req/s (about 20-60 nodes' worth at
    RATE req/s each): noisy enough minute to minute that lateness grows smoothly."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(START, periods=minutes, freq="1min")
    rate = (40.0 + 20.0 * np.sin(2 * np.pi * np.arange(minutes) / 1440)) * RATE
    return pd.Series(rng.poisson(rate * 60) / 60.0, index=index)


def drive(predictor: LoopCalibrated, demand: pd.Series, pool: Pool) -> None:
    """One tick a minute, as the daemon: fit on the last hour, then forecast."""
    for end in range(60, len(demand) + 1):
        try:
            predictor.fit(demand.iloc[end - 60 : end])
        except ValueError:
            continue
        predictor.forecast(pool.horizon)


def calibrated(pool: Pool, width: float) -> tuple[LoopCalibrated, WideBand]:
    inner = WideBand(width)
    settings = loop_settings(pool, RATE, limits_of(pool))
    return LoopCalibrated(inner, settings, pool), inner


def test_a_band_far_too_wide_is_narrowed_until_the_loop_spends_the_budget() -> None:
    pool = make_pool()
    predictor, _ = calibrated(pool, width=3.0)
    drive(predictor, noisy_demand(1500), pool)  # the last tick is the first with a day kept
    assert predictor.margin < 1.0  # 3 x the newest sample buys far more than 1 % late needs
    frame = predictor._frame()
    assert frame is not None
    settings = predictor.settings
    aim = settings.service_target * settings.aim
    assert replay_late(frame, predictor.margin, settings) <= aim
    assert replay_late(frame, predictor.margin - 0.02, settings) > aim  # not far under it
    assert predictor.replayed_late is not None and 0.5 * aim <= predictor.replayed_late <= aim
    forecast = predictor.forecast(pool.horizon)
    np.testing.assert_allclose(forecast.upper, predictor.margin * 3.0 * forecast.point)
    assert f"margin 1.00 -> {predictor.margin:.2f} x upper band" in forecast.notes[-1]
    assert forecast.notes[-1].startswith("budget: ")
    assert forecast.calibration is not None  # what /metrics exports
    assert (forecast.calibration.margin, forecast.calibration.member) == (
        predictor.margin,
        "forecast",
    )
    assert forecast.calibration.budget_spent == predictor.spent / settings.service_target
    sized = size_fleet(pool, predictor, noisy_demand(1500).iloc[-60:], RATE)
    assert any(n.startswith("budget: ") for n in sized.notes)  # said in the decision
    now = noisy_demand(1500).index[-1].to_pydatetime()
    decision, _ = decide(observe(pool, sized, now, 10, None), limits_of(pool), Memory())
    said = [r for r in decision.reasons if r.startswith("budget: ")]
    assert len(said) == 1 and rule_of(said[0]) == "loop_calibration"


def test_under_widen_a_band_far_too_wide_is_kept_and_one_too_narrow_is_widened() -> None:
    """`margin: widen` calibrates the same loop but never below the band itself: the
    wide band of the test above stays as it is (margin 1, fully within the target), and
    a band too narrow for the target is widened, as under `margin: loop`."""
    pool = make_pool(predictor={"kind": "seasonal", "margin": "widen"})
    wide, _ = calibrated(pool, width=3.0)
    drive(wide, noisy_demand(1500), pool)
    assert wide._calibrated and wide.margin == 1.0
    assert wide.replayed_late is not None and wide.replayed_late <= 0.01
    narrow, _ = calibrated(pool, width=0.6)
    loop, _ = calibrated(make_pool(), width=0.6)
    for predictor in (narrow, loop):
        drive(predictor, noisy_demand(1500), pool)
    assert narrow.margin > 1.0 and narrow.margin == pytest.approx(loop.margin, abs=0.01)
    assert narrow.replayed_late is not None and narrow.replayed_late <= 0.01


def test_under_widen_a_budget_left_unspent_brings_the_floor_down_but_not_for_a_few_nodes() -> None:
    """Four days of a band three times the demand spend none of the budget: the feedback
    raises the aim at each recalibration, and `margin: widen`'s floor comes down with it
    (the margin follows, as the band at the floor still meets the target), and the
    decision says so. The same traffic served by a fleet of half a node on average keeps
    the floor, and the margin, at 1 (N+1: one node spare over its mean load)."""
    pool = make_pool(predictor={"kind": "seasonal", "margin": "widen"})
    demand = noisy_demand(4 * 1440)
    large, _ = calibrated(pool, width=3.0)  # about 40 nodes at the mean
    drive(large, demand, pool)
    assert large.aim > 1.1 and large.spent == 0.0
    assert 0.8 < large.lowest < 0.97 and large.margin == pytest.approx(large.lowest)
    forecast = large.forecast(pool.horizon)
    assert forecast.notes[-1].endswith(f"budget unspent: floor {large.lowest:.2f} x upper band")
    assert forecast.calibration is not None and forecast.calibration.floor == large.lowest
    per_node = 80 * RATE  # half a node at the mean
    small = LoopCalibrated(WideBand(3.0), loop_settings(pool, per_node, limits_of(pool)), pool)
    drive(small, demand, pool)
    assert small.aim > 1.1 and (small.lowest, small.margin) == (1.0, 1.0)
    assert "floor" not in small.forecast(pool.horizon).notes[-1]
    now = START + timedelta(days=5)
    saved = {"margin": 0.9, "member": "forecast", "aim": AIMS[1], "at": now.isoformat()}
    assert calibrated(pool, width=3.0)[0].resume(saved, now)  # a floor earned is taken up
    assert not calibrated(pool, width=3.0)[0].resume({**saved, "aim": 1.0}, now)


def test_under_widen_a_restart_names_the_floor_its_margin_was_calibrated_above() -> None:
    """The floor an unspent budget earned is saved with the margin, and a restart names it
    (in the decision's reasons and on /metrics) from its first tick, not only from its
    first recalibration. A saved floor the saved aim could not have earned, or above the
    saved margin, is not taken up: the margin is, and the floor stays 1 until then."""
    pool = make_pool(predictor={"kind": "seasonal", "margin": "widen"})
    demand = noisy_demand(4 * 1440)
    before, _ = calibrated(pool, width=3.0)
    drive(before, demand, pool)
    now = demand.index[-1].to_pydatetime()
    saved = before.saved(now)
    assert saved["floor"] == before.lowest < 1.0 and saved["margin"] < 1.0

    def restarted(state: SavedLoop) -> LoopCalibrated:
        after, _ = calibrated(pool, width=3.0)
        assert after.resume(state, now)
        after.fit(demand.iloc[-60:])
        return after

    after = restarted(saved)
    forecast = after.forecast(pool.horizon)
    floor = f"budget unspent: floor {before.lowest:.2f} x upper band"
    late = f"(replayed worst day {before.replayed_late:.3%} late, aim {before.aim:.2f} x target)"
    assert forecast.notes[-1] == before.forecast(pool.horizon).notes[-1]
    assert forecast.notes[-1].endswith(f"-> {before.margin:.2f} x upper band {late}; {floor}")
    assert forecast.calibration is not None and forecast.calibration.floor == before.lowest
    for wrong in (0.5, float(saved["margin"]) + 0.01):  # under what the aim earns; over the margin
        after = restarted({**saved, "floor": wrong})
        assert (after.margin, after.lowest) == (saved["margin"], 1.0)
        assert "floor" not in after.forecast(pool.horizon).notes[-1]


def test_under_the_loop_margin_no_floor_is_saved_or_exported() -> None:
    """`margin: loop` narrows as far as the margins' own range: a floor there says
    nothing, so none is saved for a restart or handed to /metrics (`widen`'s is, above)."""
    pool = make_pool()
    loop, _ = calibrated(pool, width=3.0)
    drive(loop, noisy_demand(2 * 1440), pool)
    forecast = loop.forecast(pool.horizon)
    assert loop.lowest < 1.0 and loop.margin < 1.0  # the band narrowed: a floor was below
    assert forecast.calibration is not None and forecast.calibration.floor is None
    assert "floor" not in loop.saved(START) and "floor" not in forecast.notes[-1]


def test_under_widen_a_restart_takes_up_no_margin_below_the_members_own_level() -> None:
    """A calibration saved under `margin: loop` (a margin under 1) is not taken up by the
    same pool under `margin: widen`, whatever its member; one of 1 or more is."""
    now = START + timedelta(days=5)
    saved = {"margin": 0.7, "member": "forecast", "aim": 1.0, "at": now.isoformat()}
    widen = make_pool(predictor={"kind": "seasonal", "margin": "widen", "policy": "auto"})
    fresh, _ = calibrated(widen, width=3.0)
    assert not fresh.resume(saved, now) and fresh.margin == 1.0
    static = {**saved, "member": "static", "held_level": 5.0}
    assert not fresh.resume(static, now) and fresh.margin == 1.0
    assert fresh.resume({**static, "margin": 1.2}, now)
    assert (fresh.member, fresh.margin) == ("static", 1.2)


def test_the_margin_stays_one_until_a_day_of_ticks_less_the_pools_phase_is_kept() -> None:
    """The first calibration waits for min_span of ticks, less the pool's phase (a share
    of refit_every from its name), so that pools started together do not all recalibrate
    on one tick."""
    phases = {
        name: loop_settings(make_pool(name=name), RATE, limits_of(make_pool())).phase
        for name in ("a", "b", "c", "d")
    }
    assert len(set(phases.values())) == 4 and all(0 <= p < 1 for p in phases.values())
    pool = make_pool()
    predictor, _ = calibrated(pool, width=3.0)
    settings = predictor.settings
    first = settings.min_span - settings.phase * settings.refit_every
    ticks = int(first / timedelta(minutes=1))
    drive(predictor, noisy_demand(60 + ticks - 1), pool)  # one tick short of it
    assert predictor.margin == 1.0 and predictor.replayed_late is None
    drive(predictor, noisy_demand(60 + ticks + 1).iloc[-61:], pool)  # the next tick
    assert predictor.replayed_late is not None


def test_pool_bounds_win_over_the_margin_in_the_replay() -> None:
    """min_nodes is a fail-safe floor: the replay keeps it at every margin, so no margin
    can be late and the narrowest is chosen; the daemon's decide() keeps it too."""
    pool = make_pool(min_nodes=200)
    predictor, _ = calibrated(pool, width=3.0)
    drive(predictor, noisy_demand(1440 + 120), pool)
    frame = predictor._frame()
    assert frame is not None
    for margin in (0.2, 1.0, 4.0):
        assert replay_counts(frame, margin, predictor.settings).min() >= 200
    assert replay_late(frame, 0.2, predictor.settings) == 0.0
    assert predictor.margin == pytest.approx(0.2, abs=0.01)


def test_ticks_without_a_forecast_replay_as_holds() -> None:
    pool = make_pool()
    predictor, inner = calibrated(pool, width=1.5)
    demand = noisy_demand(1440 + 200)
    for end in range(60, len(demand) + 1):
        inner.fail = 700 <= end < 760  # an hour in which the forecaster fails
        try:
            predictor.fit(demand.iloc[end - 60 : end])
        except ValueError:
            continue
        predictor.forecast(pool.horizon)
    frame = predictor._frame()
    assert frame is not None
    counts = replay_counts(frame, 1.0, predictor.settings)
    failed = np.array([700 <= 60 + i < 760 for i in range(len(counts))])
    start = int(np.argmax(failed))
    assert (counts[failed] == counts[start - 1]).all()  # held at the count before


def test_band_margin_is_the_predictor_as_configured() -> None:
    pool = make_pool(predictor={"kind": "seasonal", "margin": "band"})
    assert pool.predictor.policy == "forecast"  # band's own default policy
    assert isinstance(pool_predictor(pool, 1.0, limits_of(pool)), SeasonalPredictor)
    default = make_pool(predictor={"kind": "seasonal"})
    assert (default.predictor.margin, default.predictor.policy) == ("widen", "auto")
    assert make_pool(predictor={"kind": "seasonal", "margin": "loop"}).predictor.policy == "auto"
    pinned = make_pool(predictor={"kind": "seasonal", "policy": "static"})
    assert (pinned.predictor.margin, pinned.predictor.policy) == ("widen", "static")
    assert isinstance(pool_predictor(default, 1.0, limits_of(default)), LoopCalibrated)
    for margin in ("loop", "widen"):
        loop = make_pool(predictor={"kind": "seasonal", "margin": margin})
        assert isinstance(pool_predictor(loop, 1.0, limits_of(loop)), LoopCalibrated)


def test_under_the_loop_margin_the_reactive_floor_is_demand_at_full_use() -> None:
    """The margin is the loop's headroom, so demand now is sized at full use, not at the
    target utilization; with the band margin it keeps the utilization (unchanged)."""
    history = pd.Series(8.0, index=pd.date_range(START, periods=60, freq="1min"))
    band = WideBand(1.0)
    loop = size_fleet(make_pool(target_utilization=0.5), band, history, 1.0)
    plain = size_fleet(
        make_pool(target_utilization=0.5, predictor={"kind": "seasonal", "margin": "band"}),
        band,
        history,
        1.0,
    )
    assert (loop.demand_nodes, plain.demand_nodes) == (8, 16)
    assert loop.nodes == plain.nodes == 16  # the forecast keeps the utilization either way


def test_error_budget_feedback_tightens_at_once_and_loosens_slowly() -> None:
    """The loop's own late share at the margins it used moves the aim: overspent, cut in
    proportion at once; (almost) nothing spent, raised by a quarter at most; either by
    less while the calibrated ticks cover less than the window."""
    pool = make_pool()
    predictor, _ = calibrated(pool, width=3.0)
    drive(predictor, noisy_demand(1500), pool)
    frame = predictor._frame()
    assert frame is not None and predictor.aim == 1.0
    target = predictor.settings.service_target
    scale_used(predictor, 0.2)  # far too narrow
    predictor._ticks.column(AIM)[:] = 1.0  # every tick calibrated for aim 1
    week = predictor.settings.window
    predictor.settings = replace(predictor.settings, window=HOUR)  # a window's evidence in
    predictor._feedback(frame)
    assert predictor.spent is not None and predictor.spent > target
    cut = max(target / predictor.spent, 0.05)
    assert predictor.aim == pytest.approx(cut)
    # On less evidence (the calibrated ticks cover a fraction of the window) it cuts less:
    # share**fraction. About a day of ticks in a week's window here.
    predictor.aim = 1.0
    predictor.settings = replace(predictor.settings, window=week)
    predictor._feedback(frame)
    fraction = (len(predictor._ticks) - 1) * 60.0 / week.total_seconds()
    assert predictor.aim == pytest.approx((target / predictor.spent) ** fraction)
    assert cut < predictor.aim < 1.0
    predictor.aim = 1.0
    scale_used(predictor, 4.0)  # far too wide
    predictor._feedback(frame)  # loosened as little on as little evidence
    assert predictor.spent == 0.0 and predictor.aim == pytest.approx(1.25**fraction)
    predictor.aim = 1.0
    predictor.settings = replace(predictor.settings, window=HOUR)
    predictor._feedback(frame)
    assert predictor.spent == 0.0 and predictor.aim == pytest.approx(1.25)


def test_error_budget_feedback_does_not_wind_up() -> None:
    """One overspend still in the window cuts the aim once, not again at every
    recalibration: the aim is measured against the aim the ticks' margins were calibrated
    for. Ticks before the first calibration (the band's own margin) do not count."""
    pool = make_pool()
    predictor, _ = calibrated(pool, width=3.0)
    drive(predictor, noisy_demand(1500), pool)
    frame = predictor._frame()
    assert frame is not None
    predictor.settings = replace(predictor.settings, window=HOUR)  # a window's evidence in
    scale_used(predictor, 0.2)  # overspent
    predictor._ticks.column(AIM)[:] = 1.0
    predictor._feedback(frame)
    once = predictor.aim
    assert once < 1.0
    predictor._feedback(frame)  # the same window, the margins still calibrated for aim 1
    assert predictor.aim == pytest.approx(once)
    predictor._ticks.column(AIM)[:] = once  # the ticks ran at the cut aim and still overspent
    predictor._feedback(frame)
    assert predictor.aim == pytest.approx(max(once * once, 0.05))
    predictor.aim = 1.0
    predictor._ticks.column(AIM)[:] = math.nan  # none calibrated yet: nothing to judge the aim on
    predictor._feedback(frame)
    assert predictor.spent is not None and predictor.spent > 0.0 and predictor.aim == 1.0


def test_a_margin_does_not_narrow_while_the_loop_is_over_its_budget() -> None:
    """The replay finds the band far too wide, but the calibrated margins the loop used
    were late on more than the target over the kept ticks: the margin holds and the note
    says so. Within the budget, the same recalibration narrows it; and an overspend on
    ticks no calibration set (the band's own margin, before the first) holds nothing."""
    pool = make_pool()
    predictor, _ = calibrated(pool, width=3.0)
    drive(predictor, noisy_demand(1500), pool)
    narrow = predictor.margin
    assert narrow < 1.0
    now = predictor._ticks.newest_at() + HOUR
    for used, aim, held in ((0.2, 1.0, True), (4.0, 1.0, False), (0.2, math.nan, False)):
        predictor.margin = 1.5  # as if the last recalibration had been wider
        scale_used(predictor, used)
        predictor._ticks.column(AIM)[:] = aim  # NaN: no tick's margin was calibrated
        predictor._recalibrate(now)
        assert predictor.spent is not None
        assert (predictor.spent > predictor.settings.service_target) == (used < 1.0)
        assert predictor.margin == pytest.approx(1.5 if held else narrow, abs=0.02)
        note = predictor._notes()[-1]
        assert ("over budget: held, not narrowed to the replay's" in note) == held
    assert predictor.held_from is None


def test_a_margin_narrows_once_the_last_day_is_within_the_budget() -> None:
    """An overspend over the kept ticks that stopped a day ago (a one-day event) holds
    nothing: the hold needs the last day over the budget too, as a multiwindow burn-rate
    alert needs its short window burning."""
    pool = make_pool()
    predictor, _ = calibrated(pool, width=3.0)
    drive(predictor, noisy_demand(2900), pool)  # two days: the first overspent or not
    narrow = predictor.margin
    now = predictor._ticks.newest_at() + HOUR
    last_day = 1440
    for early, held in ((0.2, False), (4.0, False)):
        predictor.margin = 1.5
        scale_used(predictor, 4.0)  # the last day: far within the budget
        ticks = predictor._ticks
        ticks.column(USED_PEAK)[:-last_day] = early * ticks.column(BAND_PEAK)[:-last_day]
        ticks.column(USED_ARRIVAL)[:-last_day] = early * ticks.column(BAND_ARRIVAL)[:-last_day]
        ticks.column(AIM)[:] = 1.0
        predictor._recalibrate(now)
        assert predictor.spent is not None
        assert (predictor.spent > predictor.settings.service_target) == (early < 1.0)
        assert predictor.margin == pytest.approx(1.5 if held else narrow, abs=0.02)
        assert predictor.held_from is None


def test_the_calibration_is_the_same_under_decide_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """replay_counts runs the fast replay of decide(); with decide() itself, tick by tick,
    the calibration chooses exactly the same margins (bit for bit), through missing ticks,
    a schedule floor, a cooldown and small steps down."""
    pool = make_pool(
        cooldown="3m",
        scale_down={"stabilization": "10m", "max_step": 2},
        schedules=[{"name": "day", "start": "09:00", "end": "17:00", "min_nodes": 30}],
    )
    demand = noisy_demand(1440 + 400)

    def margins() -> list[tuple[float, float | None, float]]:
        inner = WideBand(2.0)
        # A window of a few hours: the error-budget feedback has its evidence in and
        # moves the aim (and the margins) within the run, on replays of its own.
        settings = replace(
            loop_settings(pool, RATE, limits_of(pool)),
            refit_every=HOUR,
            window=timedelta(hours=8),
            min_span=timedelta(hours=4),
        )
        predictor = LoopCalibrated(inner, settings, pool)
        seen = []
        for end in range(60, len(demand) + 1):
            inner.fail = 900 <= end < 930
            try:
                predictor.fit(demand.iloc[end - 60 : end])
            except ValueError:
                continue
            predictor.forecast(pool.horizon)
            seen.append((predictor.margin, predictor.replayed_late, predictor.aim))
        return seen

    fast = margins()
    monkeypatch.setattr(loop_replay, "replay_decide", decide_each)
    assert margins() == fast
    assert len({margin for margin, _, _ in fast}) > 3  # recalibrated, and not only at 1


def test_a_restart_resumes_a_recent_calibration_that_fits_the_policy() -> None:
    """The margin a restart takes up: a recent one that fits the pool's policy and range;
    a stale one, another policy's member or a margin out of range leaves the band (1)."""
    pool = make_pool()
    now = START + timedelta(days=5)
    saved = {
        "margin": 0.7,
        "member": "forecast",
        "aim": 0.8,
        "at": (now - timedelta(hours=2)).isoformat(),
    }
    fresh, _ = calibrated(pool, width=3.0)
    assert fresh.resume(saved, now) and (fresh.margin, fresh.aim) == (0.7, 0.8)
    for changed in (
        {"at": (now - timedelta(days=8)).isoformat()},  # older than the replay window
        {"at": (now + timedelta(hours=1)).isoformat()},  # from the future: a clock gone back
        {"member": "reactive"},  # policy forecast does not follow reactive
        {"margin": 40.0},
        {"aim": "x"},
    ):
        other, _ = calibrated(pool, width=3.0)
        assert not other.resume({**saved, **changed}, now)
        assert (other.margin, other.member) == (1.0, "forecast")
    fresh, _ = calibrated(pool, width=3.0)
    assert fresh.saved(now) is None  # nothing calibrated: a restart starts afresh too


def scale_used(predictor: LoopCalibrated, factor: float) -> None:
    """As if every kept tick had handed the sizing its band times `factor`."""
    ticks = predictor._ticks
    ticks.column(USED_PEAK)[:] = factor * ticks.column(BAND_PEAK)
    ticks.column(USED_ARRIVAL)[:] = factor * ticks.column(BAND_ARRIVAL)
