"""Each pool's forecaster gets a refit phase from its name, so that pools started together
do not all refit on the same tick; the phase is the same in every process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from autoscaler.calibration import LoopCalibrated
from autoscaler.config.loader import load_config
from autoscaler.pool_predictor import make_pool_predictor, refit_phase_of
from autoscaler.runtime import build_runtime
from predictors.linear import LinearTrendPredictor
from predictors.seasonal import SeasonalPredictor
from tests.autoscaler.test_daemon import write_config


def test_a_name_gives_the_same_phase_in_another_process() -> None:
    """Not Python's str hash, which a fresh interpreter salts differently."""
    name = "image-gen-eu-west"
    code = f"from autoscaler.pool_predictor import refit_phase_of; print(refit_phase_of({name!r}))"
    env = {"PYTHONHASHSEED": "random"}
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert float(other.stdout) == refit_phase_of(name)


def test_a_thousand_pool_names_spread_their_phases_over_the_period() -> None:
    phases = np.array([refit_phase_of(f"pool-{number}") for number in range(1000)])
    assert ((phases >= 0.0) & (phases < 1.0)).all()
    per_minute = np.bincount((phases * 60).astype(int), minlength=60)
    assert per_minute.max() <= 35  # ~17 a minute of an hourly refit, never a fleet at once


def test_the_daemon_gives_each_pool_its_names_phase_unless_the_config_sets_one(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    first = config["pools"][0]
    config["pools"] = [
        first,
        {**first, "name": "ocr"},
        {**first, "name": "pinned", "predictor": {"params": {"refit_phase": 0.25}}},
        {**first, "name": "seed", "predictor": {"kind": "linear"}},
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    runtime = build_runtime(load_config(path), source=path, dry_run=True)
    assert all(isinstance(ticker.predictor, LoopCalibrated) for ticker in runtime.tickers)
    predictors = {ticker.pool.name: ticker.predictor.inner for ticker in runtime.tickers}
    assert isinstance(predictors["image-gen"], SeasonalPredictor)
    assert predictors["image-gen"].refit_phase == refit_phase_of("image-gen")
    assert predictors["ocr"].refit_phase == refit_phase_of("ocr")
    assert predictors["ocr"].refit_phase != predictors["image-gen"].refit_phase
    assert predictors["pinned"].refit_phase == 0.25
    assert isinstance(predictors["seed"], LinearTrendPredictor)  # takes no phase: none given
    assert predictors["image-gen"].quick_first_fit  # the daemon's first tick of many pools


def test_a_one_shot_predictor_replays_fully_from_its_first_fit(tmp_path: Path) -> None:
    """`autoscaler forecast` fits once: it shows the band of the full replay, as the running
    daemon has it, not the provisional one of a fresh start's quick replay."""
    pool = load_config(write_config(tmp_path)).pools[0]
    one_shot = make_pool_predictor(pool, one_shot=True)
    assert isinstance(one_shot, SeasonalPredictor) and not one_shot.quick_first_fit
    assert one_shot.refit_phase == refit_phase_of(pool.name)
    assert make_pool_predictor(pool).quick_first_fit
