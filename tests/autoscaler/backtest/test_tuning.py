"""The policy's sweep on worker processes chooses what the serial sweep chooses: the same
setting, the same run, the same count of settings tried."""

from __future__ import annotations

import math
import random
import sys
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from autoscaler.backtest import runner as backtest
from autoscaler.backtest import tuning
from autoscaler.backtest.queue import Score
from autoscaler.backtest.runner import (
    BacktestSettings,
    PlaybackPredictor,
    RecordingPredictor,
    frame_replay,
    policy_pool,
    replay_pool,
    run_backtest,
    run_policy,
)
from tests.autoscaler.backtest.test_runner import NASA, LastValue, nasa_cut, step_trace

SETTINGS = BacktestSettings(per_node_rps=1.0, warmup=timedelta(minutes=90))
REPLAY = frame_replay(step_trace(180, 100, 2.0, 8.0), SETTINGS)
SCORED_HOURS = (len(REPLAY.rps) - REPLAY.score_start) / 60.0


def test_parallel_tuning_picks_the_serial_setting_and_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("predictors").PREDICTORS, "last-value", LastValue)
    trace = nasa_cut(1.2)  # quiet nights: every floor can bind, so every chain runs
    settings = BacktestSettings(
        per_node_rps=0.04, warmup=timedelta(hours=4), predictor="last-value"
    )
    replay = frame_replay(trace, settings)
    serial, serial_run = run_policy(trace, replay, settings, workers=1)
    parallel, parallel_run = run_policy(trace, replay, settings, workers=3)
    assert serial.settings_tried > 20
    assert (parallel.knobs, parallel.score, parallel.settings_tried) == (
        serial.knobs,
        serial.score,
        serial.settings_tried,
    )
    assert np.array_equal(parallel.desired, serial.desired)
    assert np.array_equal(parallel.ready, serial.ready)
    assert parallel_run.ticks == serial_run.ticks
    # The run rebuilt from a worker's arrays is the one the chosen setting replays to.
    pool = policy_pool(
        settings,
        utilization=serial.knobs["utilization"],
        stabilization=timedelta(minutes=serial.knobs["stabilization_min"]),
        floor=serial.knobs["floor"],
    )
    recorder = RecordingPredictor(LastValue())
    replay_pool(policy_pool(settings), recorder, trace, replay, backfill=settings.backfill)
    again = replay_pool(pool, PlaybackPredictor("x", recorder.records), trace, replay)
    assert again.ticks == parallel_run.ticks


FAKE_SEED = 0
"""Which fake sweep: set before the workers fork, so they inherit it."""


def fake_point(shared: Any, chain: tuning.Chain, index: int) -> tuning.Point:
    """A made-up score per setting, lateness not monotone in utilization (the bisection's
    assumption broken on purpose: the steps, not only the answer, must match)."""
    rng = random.Random(f"{FAKE_SEED}/{chain}/{index}")
    late = rng.choice([0.0, 0.0, 0.0, 0.02]) if index else rng.choice([0.0, 0.02])
    hours = chain[1] * SCORED_HOURS + rng.uniform(1.0, 12.0)
    score = Score(hours, late, int(late * 100), rng.randint(0, 9), 100.0)
    knobs = {"utilization": index, "stabilization_min": chain[0].seconds // 60, "floor": chain[1]}
    desired = np.full(3, index + 100 * chain[1], dtype=np.int64)
    return knobs, score, desired, desired.copy()


@pytest.mark.parametrize("seed", range(6))
def test_the_sweep_on_workers_chooses_what_it_chooses_here(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(tuning, "_replay_point", fake_point)
    monkeypatch.setattr(sys.modules[__name__], "FAKE_SEED", seed)
    # A start that the floors can beat or not, so some chains are dropped unreplayed.
    first = Score(6.0 + seed * 3, 0.0 if seed % 2 else 0.05, 0, 0, 100.0)
    start: tuning.Found = ({"first": True}, first, tuning.PolicyRun(np.zeros(3), np.zeros(3)))
    shared = tuning._Shared(SETTINGS, step_trace(180, 100, 2.0, 8.0), REPLAY, "x", [ValueError()])
    (expected, expected_score, expected_run), expected_tried = tuning._sweep(shared, start, {}, 1)
    assert expected_tried > 0
    for workers in (2, 5):
        (knobs, score, run), tried = tuning._sweep(shared, start, {}, workers)
        assert (knobs, score, tried) == (expected, expected_score, expected_tried), workers
        assert np.array_equal(run.desired, expected_run.desired)


def test_the_bisection_finds_the_highest_utilization_that_meets_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lateness growing with utilization: the answer is the last index that meets the
    target, found in a logarithmic number of replays; when none does, the lowest."""
    grid = len(tuning.POLICY_UTILIZATIONS)
    shared = tuning._Shared(SETTINGS, step_trace(180, 100, 2.0, 8.0), REPLAY, "x", [ValueError()])
    for last_meeting in (-1, 0, 7, grid - 2, grid - 1):

        def point(shared: Any, chain: tuning.Chain, index: int, last: int = last_meeting):
            late = 0.0 if index <= last else 0.05
            return {"utilization": index}, Score(float(index), late, 0, 0, 1.0), None, None

        monkeypatch.setattr(tuning, "_replay_point", point)
        (knobs, score, _, _), replayed = tuning._bisect(shared, (timedelta(0), 0))
        assert knobs["utilization"] == max(last_meeting, 0)
        assert score.meets(SETTINGS.service_target) == (last_meeting >= 0)
        assert replayed <= 1 + math.ceil(math.log2(grid))


def test_without_fork_or_processes_the_sweep_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tuning.parallel_workers() >= 1
    monkeypatch.setattr(tuning.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert tuning.parallel_workers() == 1
    monkeypatch.setattr(tuning, "_replay_point", fake_point)
    shared = tuning._Shared(SETTINGS, step_trace(180, 100, 2.0, 8.0), REPLAY, "x", [ValueError()])
    start: tuning.Found = (
        {},
        Score(99.0, 0.5, 0, 0, 1.0),
        tuning.PolicyRun(np.zeros(3), np.zeros(3)),
    )
    expected = tuning._sweep(shared, start, {}, 1)
    started: list[int] = []

    def no_processes(workers: int, **options: Any) -> None:
        started.append(workers)  # as on a system without working semaphores
        return None

    monkeypatch.setattr(tuning, "forked_executor", no_processes)
    (knobs, score, _), tried = tuning._sweep(shared, start, {}, 4)
    assert started == [4]
    assert (knobs, score, tried) == (expected[0][0], expected[0][1], expected[1])


def test_baselines_beside_the_recording_run_report_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(__import__("predictors").PREDICTORS, "last-value", LastValue)
    settings = BacktestSettings(
        per_node_rps=0.04, warmup=timedelta(hours=6), predictor="last-value"
    )
    monkeypatch.setattr(tuning, "parallel_workers", lambda: 2)  # even on one CPU
    beside = run_backtest(NASA, settings, trace=nasa_cut(1))
    monkeypatch.setattr(tuning, "parallel_workers", lambda: 1)
    here = run_backtest(NASA, settings, trace=nasa_cut(1))
    assert [(r.name, r.knobs, r.score, r.settings_tried) for r in beside.results] == [
        (r.name, r.knobs, r.score, r.settings_tried) for r in here.results
    ]
    for ours, theirs in zip(beside.results, here.results, strict=True):
        assert np.array_equal(ours.desired, theirs.desired), ours.name
    assert beside.policy_ticks == here.policy_ticks


def test_one_job_forks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--jobs 1` on a shared ops box: everything runs in this process, even with CPUs to
    spare (a forked executor here fails the test)."""
    monkeypatch.setitem(__import__("predictors").PREDICTORS, "last-value", LastValue)

    def no_fork(workers: int, **options: Any) -> None:
        raise AssertionError(f"forked {workers} workers with jobs=1")

    monkeypatch.setattr(tuning, "parallel_workers", lambda: 4)
    for module in (backtest, tuning):
        monkeypatch.setattr(module, "forked_executor", no_fork)
    settings = BacktestSettings(
        per_node_rps=0.04, warmup=timedelta(hours=6), predictor="last-value", jobs=1
    )
    report = run_backtest(NASA, settings, trace=nasa_cut(1))
    assert report.results[0].name == "policy" and report.results[0].settings_tried > 1
    with pytest.raises(ValueError, match="jobs"):
        BacktestSettings(per_node_rps=1.0, jobs=0)
