"""The backtest engine: the daemon's size/decide code on a simulated fleet, past data only."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from autoscaler.backtest import engine
from autoscaler.backtest.baselines import (
    BASELINES,
    DAY,
    known_before,
    linear_peaks,
    seasonal_naive_peaks,
)
from autoscaler.backtest.runner import (
    BacktestSettings,
    PlaybackPredictor,
    RecordingPredictor,
    frame_replay,
    load_trace,
    load_trace_rows,
    policy_pool,
    replay_pool,
    run_backtest,
    run_policy,
)
from autoscaler.calibration import pool_predictor
from autoscaler.config.schema import Pool
from autoscaler.metrics import MetricsError, fetch_demand
from autoscaler.plan import limits_of
from autoscaler.replay import read_trace
from autoscaler.replay_source import TraceReplaySource
from autoscaler.sizing import Sizing
from common.clock import SimulatedClock
from predictors.base import Forecast
from tests.traces import NASA


class LastValue:
    """A fast stand-in predictor: the last minute's demand, flat over the horizon."""

    name = "last-value"

    def fit(self, history: pd.Series) -> LastValue:
        self.value = float(history.iloc[-1])
        self.at = history.index[-1]
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        times = pd.date_range(self.at + pd.Timedelta(minutes=1), periods=2, freq="1min")
        flat = np.full(2, self.value)
        return Forecast(times, flat, flat, self.name)


def step_trace(minutes: int, jump_at: int, low: float, high: float) -> pd.Series:
    index = pd.date_range("2025-03-03", periods=minutes, freq="1min", tz="UTC")
    values = np.where(np.arange(minutes) < jump_at, low, high)
    return pd.Series(values, index=index, dtype=float)


def nasa_cut(days: float) -> pd.Series:
    trace = load_trace(NASA)
    return trace.iloc[: int(days * 1440)]


def test_boot_delay_is_honoured_and_booting_nodes_are_paid() -> None:
    trace = step_trace(180, jump_at=100, low=2.0, high=8.0)
    settings = BacktestSettings(
        per_node_rps=1.0, warmup=timedelta(minutes=90), boot_delay=timedelta(minutes=7)
    )
    replay = frame_replay(trace, settings)
    pool = policy_pool(settings, utilization=1.0, stabilization=timedelta(minutes=10))
    run = replay_pool(pool, LastValue(), trace, replay)
    minute = np.arange(replay.sim_start, 180)
    # The tick at minute 101 is the first to see minute 100's jump: 8 nodes ordered then,
    # paid from minute 101, ready from minute 108.
    assert run.desired[minute == 100][0] == 2
    assert run.desired[minute == 101][0] == 8
    assert run.ready[(minute >= 100) & (minute < 108)].tolist() == [2] * 8
    assert run.ready[minute == 108][0] == 8
    booting = run.ticks[101 - replay.sim_start]
    assert (booting.desired, booting.ready, booting.pending) == (8, 2, 6)


def test_oracle_is_cheapest_and_never_late() -> None:
    trace = nasa_cut(2)
    settings = BacktestSettings(per_node_rps=0.04, warmup=timedelta(days=1))
    replay = frame_replay(trace, settings)
    results = [baseline(replay) for baseline in BASELINES.values()]
    oracle = results[0]
    assert oracle.name == "oracle"
    assert oracle.score.late_share == 0.0 and oracle.score.late_minutes == 0
    for other in results[1:]:
        assert other.score.node_hours > oracle.score.node_hours, other.name
        assert other.settings_tried > 1


def test_each_baseline_meets_the_target_at_its_reported_setting() -> None:
    trace = nasa_cut(2)
    settings = BacktestSettings(per_node_rps=0.04, warmup=timedelta(days=1))
    replay = frame_replay(trace, settings)
    for baseline in BASELINES.values():
        result = baseline(replay)
        assert result.meets_target
        assert result.score.late_share <= settings.service_target


WARMUP_OF_THE_CUT = timedelta(days=1, hours=2)


@pytest.mark.parametrize(
    ("margin", "policy", "burn_in"),
    [
        ("band", "forecast", timedelta(hours=1)),
        ("loop", "forecast", timedelta(hours=1)),
        ("loop", "auto", timedelta(hours=1)),
        ("widen", "auto", timedelta(hours=1)),
        ("widen", "auto", WARMUP_OF_THE_CUT),  # from the trace's start (--burn-in)
    ],
)
def test_project_policy_decisions_use_only_the_past(
    margin: str, policy: str, burn_in: timedelta
) -> None:
    """The decisions for a trace cut at any minute equal the first decisions for the whole
    trace: with the project's own (seasonal) predictor, through size_fleet and decide; with
    the loop-calibrated margin the cuts fall after its first calibration (a day of ticks),
    and under policy: auto after the portfolio has chosen among its members; the same with
    the policy run from the trace's start."""
    trace = nasa_cut(2.2)
    settings = BacktestSettings(
        per_node_rps=0.04,
        warmup=WARMUP_OF_THE_CUT,
        burn_in=burn_in,
        backfill=timedelta(days=1),
        margin=margin,
        policy=policy,
    )
    full = _decisions(trace, settings)
    for cut in (len(trace) - 1, len(trace) - 97):
        prefix = _decisions(trace.iloc[:cut], settings)
        assert len(prefix) == cut - frame_replay(trace, settings).sim_start
        assert prefix == full[: len(prefix)]


def _decisions(
    trace: pd.Series, settings: BacktestSettings, row_minutes: int = 1
) -> list[tuple[int, int]]:
    pool = policy_pool(settings)
    predictor = pool_predictor(pool, settings.per_node_rps, limits_of(pool))
    replay = frame_replay(trace, settings, row_minutes=row_minutes)
    run = replay_pool(pool, predictor, trace, replay, backfill=settings.backfill)
    return [(t.desired, t.ready) for t in run.ticks]


def test_a_coarse_row_is_decided_on_only_once_its_minutes_have_passed(tmp_path: Path) -> None:
    """A 5-minute export spreads each row over its minutes, so a policy reading the spread
    at the row's first minute saw up to four minutes of the future: every policy on an
    hourly trace read optimistic. Now the decisions made at minute t (the project's policy,
    hpa's last demand, linear-20m's and seasonal-naive's peaks) are the same when the rows
    after t's last complete row are altered, through the file as `backtest` reads it."""
    minutes = nasa_cut(2.2)
    counts = (minutes * 60).resample("5min").sum().to_numpy()

    def rows_file(name: str, counts: np.ndarray) -> Path:
        path = tmp_path / name
        stamps = pd.date_range(minutes.index[0], periods=len(counts), freq="5min")
        path.write_text(
            "timestamp,requests\n"
            + "".join(
                f"{t:%Y-%m-%dT%H:%M:%SZ},{n:.0f}\n" for t, n in zip(stamps, counts, strict=True)
            )
        )
        return path

    # Ticks from minute 1498 (the warmup less a 62-minute burn-in): linear-20m's every 20
    # minutes fall 3 minutes into a row, as `now` does, in progress since `boundary`.
    settings = BacktestSettings(
        per_node_rps=0.04,
        warmup=WARMUP_OF_THE_CUT,
        burn_in=timedelta(minutes=62),
        backfill=timedelta(days=1),
    )
    now = 1498 + 20 * 80
    boundary = now - 3
    first_altered = boundary // 5
    altered = counts.copy()
    altered[first_altered:] *= 3  # a burst no minute up to `now` can know of
    seen = []
    for path in (rows_file("five.csv", counts), rows_file("burst.csv", altered)):
        trace, row_minutes = load_trace_rows(path)
        assert row_minutes == 5
        replay = frame_replay(trace, settings, row_minutes=row_minutes)
        assert replay.sim_start == 1498 and boundary % 5 == 0
        until = now - replay.sim_start + 1  # the minutes decided up to `now`, `now` included
        seen.append(
            (
                _decisions(trace, settings, row_minutes)[:until],
                known_before(replay)[:until].tolist(),
                linear_peaks(replay)[:until].tolist(),
                seasonal_naive_peaks(replay, DAY)[:until].tolist(),
            )
        )
    assert seen[0] == seen[1]
    assert trace.iloc[boundary] == pytest.approx(3 * counts[first_altered] / 300)  # scored


def test_baseline_forecasts_use_only_the_past() -> None:
    trace = nasa_cut(9)
    settings = BacktestSettings(per_node_rps=0.04, warmup=timedelta(days=8))
    full = frame_replay(trace, settings)
    cut = frame_replay(trace.iloc[:-300], settings)
    assert np.array_equal(linear_peaks(cut), linear_peaks(full)[: len(trace) - 300 - cut.sim_start])
    for season in (1440, 10080):
        whole = seasonal_naive_peaks(full, season)
        part = seasonal_naive_peaks(cut, season)
        assert np.array_equal(part, whole[: len(part)])


def test_recorded_forecasts_replay_to_the_same_decisions() -> None:
    trace = nasa_cut(1.2)
    settings = BacktestSettings(per_node_rps=0.04, warmup=timedelta(hours=4))
    replay = frame_replay(trace, settings)
    pool = policy_pool(settings, utilization=0.7)
    recorder = RecordingPredictor(LastValue())
    live = replay_pool(pool, recorder, trace, replay)
    played = replay_pool(pool, PlaybackPredictor("x", recorder.records), trace, replay)
    assert np.array_equal(live.desired, played.desired)
    assert np.array_equal(live.ready, played.ready)


def test_tuning_picks_the_cheapest_policy_setting_that_meets_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(__import__("predictors").PREDICTORS, "last-value", LastValue)
    trace = nasa_cut(1.2)
    settings = BacktestSettings(
        per_node_rps=0.04, warmup=timedelta(hours=4), predictor="last-value"
    )
    replay = frame_replay(trace, settings)
    tuned, _ = run_policy(trace, replay, settings)
    untuned, _ = run_policy(trace, replay, BacktestSettings(**{**settings.__dict__, "tune": False}))
    assert tuned.settings_tried > 4
    if untuned.meets_target:
        assert tuned.score.node_hours <= untuned.score.node_hours
    assert tuned.meets_target or not untuned.meets_target


def test_a_whole_backtest_reports_every_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("predictors").PREDICTORS, "last-value", LastValue)
    settings = BacktestSettings(
        per_node_rps=0.04, warmup=timedelta(hours=6), predictor="last-value"
    )
    report = run_backtest(NASA, settings, trace=nasa_cut(1))
    names = [r.name for r in report.results]
    assert names == ["policy", *BASELINES]
    assert report.best_baseline() is not None
    assert report.policy_ticks[0].at == report.start


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="whole minutes"):
        BacktestSettings(per_node_rps=1.0, boot_delay=timedelta(seconds=90))
    with pytest.raises(ValueError, match="positive"):
        BacktestSettings(per_node_rps=0.0)
    trace = step_trace(60, 30, 1.0, 2.0)
    with pytest.raises(ValueError, match="nothing to score"):
        frame_replay(trace, BacktestSettings(per_node_rps=1.0))


def test_the_burn_in_sets_how_long_the_policies_ran_before_scoring() -> None:
    """An hour by default (the memory settles, as a daemon just started); as long as the
    warmup, from the trace's start (its first minute is the fleet's history); refused
    unless whole minutes. The policy ticks from the simulation's start on."""
    trace = step_trace(300, 200, 1.0, 3.0)
    settled = timedelta(minutes=180)
    default = frame_replay(trace, BacktestSettings(per_node_rps=1.0, warmup=settled))
    assert (default.sim_start, default.score_start) == (120, 180)
    for burn_in, sim_start in ((settled, 1), (timedelta(days=1), 1), (timedelta(0), 180)):
        settings = BacktestSettings(per_node_rps=1.0, warmup=settled, burn_in=burn_in)
        assert frame_replay(trace, settings).sim_start == sim_start
    settings = BacktestSettings(
        per_node_rps=1.0, warmup=settled, burn_in=settled, predictor="linear", tune=False
    )
    report = run_backtest(Path("step.csv"), replace(settings, baselines=()), trace=trace)
    assert report.start == trace.index[1] and report.scored_from == trace.index[180]
    assert len(report.policy_ticks) == 300 - 1
    with pytest.raises(ValueError, match="burn in must be whole minutes"):
        BacktestSettings(per_node_rps=1.0, burn_in=timedelta(seconds=90))


def test_backtest_replays_the_pools_scale_up_limit() -> None:
    """The same decide code limits the backtest's scale-ups: 2 → 8 nodes in steps of 2."""
    trace = step_trace(180, jump_at=100, low=2.0, high=8.0)
    settings = BacktestSettings(
        per_node_rps=1.0,
        warmup=timedelta(minutes=90),
        boot_delay=timedelta(minutes=7),
        scale_up_max_step=2,
    )
    replay = frame_replay(trace, settings)
    pool = policy_pool(settings, utilization=1.0, stabilization=timedelta(minutes=10))
    assert pool.scale_up.max_step == 2
    run = replay_pool(pool, LastValue(), trace, replay)
    minute = np.arange(replay.sim_start, 180)
    assert run.desired[(minute >= 100) & (minute <= 104)].tolist() == [2, 4, 6, 8, 8]
    unlimited = replay_pool(
        policy_pool(BacktestSettings(per_node_rps=1.0), utilization=1.0), LastValue(), trace, replay
    )
    assert unlimited.desired[minute == 101][0] == 8


@pytest.mark.parametrize(
    ("field", "value"), [("scale_up_max_step", 0), ("scale_up_max_percent", 0.0)]
)
def test_backtest_refuses_a_scale_up_limit_that_allows_nothing(field: str, value: float) -> None:
    with pytest.raises(ValueError, match="scale-up max"):
        BacktestSettings(per_node_rps=1.0, **{field: value})


class SeenHistories(LastValue):
    """LastValue that keeps each history it was fitted on."""

    def __init__(self) -> None:
        self.seen: list[pd.Series] = []

    def fit(self, history: pd.Series) -> SeenHistories:
        self.seen.append(history)
        return super().fit(history)


def test_a_missing_minute_is_dropped_from_the_windows_and_holds_only_once_stale() -> None:
    """The daemon's checks on each tick's window (metrics.check_demand): a minute without a
    sample is left out of the windows that hold it, never read as zero; the tick holds
    without forecasting only once the newest sample is older than max_staleness (here 5
    minutes: the gap of 150-155 holds the ticks at 155 and 156, not those before)."""
    trace = step_trace(200, jump_at=0, low=3.0, high=3.0)
    trace.iloc[150:156] = np.nan
    settings = BacktestSettings(
        per_node_rps=1.0, warmup=timedelta(minutes=120), demand_window=timedelta(minutes=20)
    )
    replay = frame_replay(trace, settings)
    predictor = SeenHistories()
    run = replay_pool(policy_pool(settings), predictor, trace, replay)
    ticks = [m for m in range(replay.sim_start, 200) if m not in (155, 156)]
    assert len(predictor.seen) == len(ticks)
    for history, minute in zip(predictor.seen, ticks, strict=True):
        window = trace.iloc[minute - 20 : minute].dropna()
        assert history.index.equals(window.index)
        assert np.isfinite(history.to_numpy()).all()
    assert run.desired[155 - replay.sim_start] == run.desired[154 - replay.sim_start]


@pytest.mark.parametrize("max_staleness", [timedelta(minutes=2), timedelta(minutes=5)])
def test_the_backtest_holds_at_the_ticks_runs_replay_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_staleness: timedelta
) -> None:
    """One staleness rule: a minute trace with empty cells and rows left out, read by `run`'s
    replay source through the tick's fetch_demand, and by the backtest's engine with the
    config's metrics.max_staleness: both hold at the same ticks. The backtest held at
    every first minute without a sample, its limit fixed at 5 minutes."""
    index = pd.date_range("2025-03-03", periods=200, freq="1min", tz="UTC")
    counts = dict.fromkeys(range(200), "180")
    for i in [*range(130, 133), *range(150, 154)]:
        counts[i] = ""  # an empty cell
    for i in [*range(160, 163), *range(170, 177)]:
        del counts[i]  # a row left out
    path = tmp_path / "gaps.csv"
    path.write_text(
        "timestamp,requests\n"
        + "".join(f"{index[i]:%Y-%m-%dT%H:%M:%SZ},{n}\n" for i, n in counts.items())
    )
    trace, rows = load_trace_rows(path)
    settings = BacktestSettings(
        per_node_rps=1.0,
        warmup=timedelta(minutes=120),
        demand_window=timedelta(minutes=20),
        max_staleness=max_staleness,
    )
    replay = frame_replay(trace, settings, row_minutes=rows)
    pool = policy_pool(settings)
    decided: list[tuple[datetime, str | None]] = []
    real_plan = engine.plan

    def plan_seen(pool: Pool, sizing: Sizing, now: datetime, *rest: Any) -> Any:
        decided.append((now, sizing.missing_reason))
        return real_plan(pool, sizing, now, *rest)

    monkeypatch.setattr(engine, "plan", plan_seen)
    replay_pool(pool, LastValue(), trace, replay)
    backtest_held = [now for now, missing in decided if missing is not None]
    clock = SimulatedClock(decided[0][0])
    source = TraceReplaySource(read_trace(path), clock)
    run_held = []
    for now, _ in decided:
        clock.advance(now - clock.now())
        try:
            fetch_demand(source, pool.demand, now, max_staleness)
        except MetricsError:
            run_held.append(now)
    assert backtest_held == run_held
    assert 0 < len(run_held) < 14  # a gap past the limit holds; one within it does not


def test_a_peak_past_what_the_fleet_can_count_is_refused_not_wrapped_negative() -> None:
    """1e20 requests in a minute at 0.1 req/s a node: 1.7e19 nodes, past 64 bits."""
    trace = step_trace(180, jump_at=170, low=2.0, high=1e20 / 60)
    settings = BacktestSettings(per_node_rps=0.1, warmup=timedelta(minutes=90))
    with pytest.raises(ValueError, match=r"peak, 1.67e\+18 req/s at 2025-03-03T02:50Z"):
        frame_replay(trace, settings)
    frame_replay(step_trace(180, jump_at=170, low=2.0, high=1e9 / 60), settings)  # 1.7e8 nodes


def test_a_trace_longer_than_a_backtest_replays_names_its_longest_gap(tmp_path: Path) -> None:
    """One row's mistyped year (2035 for 2025) made a minute grid of ten years, 2205 of 180:
    memory filling for hours, no word said."""
    path = tmp_path / "typo.csv"
    rows = [f"2025-01-05T16:{minute:02d}:00Z,5" for minute in range(3)]
    rows.insert(2, "2035-01-05T16:05:00Z,5")
    path.write_text("timestamp,requests\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError) as refused:
        load_trace(path)
    assert str(refused.value).startswith(
        f"{path}:4: timestamp: 2035-01-05T16:05Z comes 3,652 days after the row before it "
        "(line 5, 2025-01-05T16:02Z): the trace spans 3,652 days, more than the 1,830"
    )
    rows[2] = "2030-01-05T16:05:00Z,5"
    path.write_text("timestamp,requests\n" + "\n".join(rows) + "\n")
    assert len(load_trace(path)) == 1826 * 1440 + 6  # five years (a leap day): replayed
