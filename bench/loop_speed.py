"""The speed of the calibrated margins: one recalibration, the worst tick of 1,000 pools, a month.

Under `margin: widen` (the default) or `loop` each pool also recalibrates its margin
every 6 h (at a phase from its name): it replays its last week of ticks through its
decide() rules once per margin the bisections try, for one portfolio member (`policy:
forecast`) or four (`auto`); `widen` tries each demand-following member's margin of 1
first. Each figure is printed for CONFIGURATIONS: loop with forecast, loop with auto, and
widen with auto (the default).

1. One recalibration on a full week of kept ticks: LoopCalibrated wrapped round a cheap
   day-ago forecaster (the band: 1.2 x the same minutes a day before; a replay's cost
   does not depend on where the band comes from), fed 8 days of one-minute ticks of
   each bundled trace; the CPU of each recalibrating tick with a full week kept (its
   fit + forecast less a plain tick's), median over the traces' ticks, for each
   configuration; and the ratio to the wrapper's plain tick (what every other tick costs).
2. The worst tick of a 1,000-pool fleet under loop: the band-mode steady tick of 1,000
   seasonal pools measured here (bench/predictor_speed.py's steady tick: no refit due),
   plus the loop wrapper's own cost on a plain tick x the pools, plus the most pools
   whose recalibration falls on one tick (pool-0 ... pool-999's name phases), each timed
   as a real recalibration of a fed pool (copies of the traces' pools, in turn); the
   seasonal predictors' hourly refits are not in it (bench/predictor_speed.py: the worst
   staggered tick). The ratio is to the band-mode steady tick.
   Beside it, the memory a pool keeps for that week of ticks (tracemalloc), and for
   the fleet.
3. A month's backtest of one pool (nasa_jul95 after 7 days of warm-up, 30 days, as in
   bench/predictor_speed.py): the forecasting run under `--margin band` and each
   configuration, and the ratios to band.

    python bench/loop_speed.py [--pools 1000] [--backtest-days 30] [--only TRACE ...]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import time
import tracemalloc
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
from backtest_targets import capacity_for  # run from bench/: its folder is on sys.path
from predictor_speed import (
    DAY,
    backtest_trace,
    load,
    one_tick,
    pool_histories,
    steady_ticks,
)
from replay_speed import default_pool

from autoscaler.backtest.engine import BacktestSettings
from autoscaler.backtest.runner import frame_replay
from autoscaler.backtest.tuning import run_policy
from autoscaler.calibration import LoopCalibrated, loop_settings
from autoscaler.plan import limits_of
from autoscaler.pool_predictor import refit_phase_of
from predictors import Forecast
from predictors.seasonal import SeasonalPredictor

TRACES = ("nasa_jul95", "servegen_msmall", "alibaba_genai_lora")
FED_DAYS = 8
REFIT_TICKS = 360  # minutes: LoopSettings.refit_every
HORIZON = timedelta(minutes=15)
CONFIGURATIONS = (("loop", "forecast"), ("loop", "auto"), ("widen", "auto"))
"""(margin, policy): the last is the pool config's default."""


class DayAgo:
    """A cheap forecaster for feeding ticks: 1.2 x the demand a day before each step."""

    name = "day-ago"

    def __init__(self, demand: pd.Series) -> None:
        self.values = demand.to_numpy()
        self.end = 0

    def fit(self, history: pd.Series) -> DayAgo:
        self.end = len(history)  # the bench hands it the trace from its start
        self.last = history.index[-1]
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        steps = int(horizon / timedelta(minutes=1))
        times = pd.date_range(self.last + timedelta(minutes=1), periods=steps, freq="1min")
        ago = self.values[self.end - DAY : self.end - DAY + steps]
        return Forecast(times=times, point=ago, upper=1.2 * ago, model=self.name)


def fed_pool(
    name: str, margin: str, policy: str
) -> tuple[LoopCalibrated, pd.Series, list[float], float]:
    """A LoopCalibrated pool fed FED_DAYS of the trace's ticks (after a day for the
    day-ago band), recalibrating every REFIT_TICKS from its first day (phase 0); the CPU
    seconds of the recalibrating ticks with a full week kept, less a plain tick's, and
    the median CPU of a plain tick."""
    demand = load(name)
    configured = default_pool()
    predictor_config = configured.predictor.model_copy(update={"margin": margin, "policy": policy})
    pool = configured.model_copy(update={"name": name, "predictor": predictor_config})
    rate = capacity_for(name, float(demand.mean()))
    settings = replace(loop_settings(pool, rate, limits_of(pool)), phase=0.0)
    predictor = LoopCalibrated(DayAgo(demand), settings, pool)
    recalibrating, plain = [], []
    for tick in range(FED_DAYS * DAY + 1):
        end = DAY + tick + 1
        started = time.process_time()
        predictor.fit(demand.iloc[:end]).forecast(HORIZON)
        spent = time.process_time() - started
        due = tick >= DAY and (tick - DAY) % REFIT_TICKS == 0
        if due and tick > 7 * DAY:
            recalibrating.append(spent)
        elif not due and tick > 7 * DAY:
            plain.append(spent)
    tick_cpu = statistics.median(plain)
    return predictor, demand, [t - tick_cpu for t in recalibrating], tick_cpu


def kept_bytes(name: str) -> int:
    """Bytes one pool keeps for its week of ticks (tracemalloc over feeding it FED_DAYS of
    ticks, recalibration put off: a recalibration's frames are let go when it ends)."""
    demand = load(name)
    pool = default_pool()
    settings = replace(loop_settings(pool, 1.0, limits_of(pool)), min_span=timedelta(days=99))
    predictor = LoopCalibrated(DayAgo(demand), settings, pool)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for tick in range(FED_DAYS * DAY):
        predictor.fit(demand.iloc[: DAY + tick + 1]).forecast(HORIZON)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return kept


def most_on_one_tick(pools: int) -> int:
    """The most of pool-0 ... pool-<pools-1> whose recalibrations fall on one tick: each
    recalibrates first at min_span less its phase of refit_every, then every REFIT_TICKS."""
    first = [np.ceil(DAY - refit_phase_of(f"pool-{n}") * REFIT_TICKS) for n in range(pools)]
    return int(np.bincount(np.asarray(first, dtype=int) % REFIT_TICKS).max())


def band_steady_tick(pools: int) -> float:
    """Median CPU seconds of the band-mode steady tick of `pools` seasonal pools."""
    histories = pool_histories(pools, extra=5)
    _, _, fitted = one_tick(SeasonalPredictor, histories)
    _, cpu, _ = steady_ticks(fitted, histories, 5)
    return statistics.median(cpu)


def worst_recalibrations(fed: list[tuple[LoopCalibrated, pd.Series]], count: int) -> float:
    """CPU seconds of `count` recalibrations back to back, on copies of the fed pools (in
    turn) one recalibration interval after their last."""
    copies = [(copy.deepcopy(fed[n % len(fed)][0]), fed[n % len(fed)][1]) for n in range(count)]
    end = DAY + FED_DAYS * DAY + 1 + REFIT_TICKS
    for predictor, demand in copies:  # the ticks up to the next recalibration, untimed
        for upto in range(end - REFIT_TICKS + 1, end):
            predictor.fit(demand.iloc[:upto]).forecast(HORIZON)
    started = time.process_time()
    for predictor, demand in copies:
        predictor.fit(demand.iloc[:end]).forecast(HORIZON)
    return time.process_time() - started


def backtest_seconds(trace: pd.Series, margin: str, policy: str) -> float:
    """Wall seconds of the backtest's forecasting run (no knob sweep) over `trace`."""
    settings = BacktestSettings(
        per_node_rps=0.0397, tune=False, jobs=1, margin=margin, policy=policy
    )
    replay = frame_replay(trace, settings)
    started = time.perf_counter()
    run_policy(trace, replay, settings, workers=1)
    return time.perf_counter() - started


def print_recalibrations(pools: int, traces: list[str]) -> None:
    fed, costs, plain = {}, {}, 0.0
    for margin, policy in CONFIGURATIONS:
        runs = [fed_pool(name, margin, policy) for name in traces]
        fed[margin, policy] = [(predictor, demand) for predictor, demand, _, _ in runs]
        costs[margin, policy] = statistics.median(t for _, _, ticks, _ in runs for t in ticks)
        plain = max(plain, statistics.median(tick for *_, tick in runs))
        print(
            f"one recalibration on a week of kept ticks, margin {margin}, policy {policy}: "
            f"{costs[margin, policy] * 1000:.0f} ms CPU (median over {len(traces)} traces' "
            f"full-week recalibrations), {costs[margin, policy] / plain:.0f} x the wrapper's plain "
            f"tick ({plain * 1e6:.0f} us CPU)"
        )
    kept = statistics.median(kept_bytes(name) for name in traces)
    print(
        f"memory a pool keeps for its week of ticks: {kept / 1e6:.2f} MB (median over "
        f"{len(traces)} traces; {kept * pools / 2**30:.2f} GiB for {pools} pools)"
    )
    most = most_on_one_tick(pools)
    steady = band_steady_tick(pools)
    wrapper = plain * pools
    print(
        f"{pools} pools: at most {most} recalibrations on one tick ({pools / REFIT_TICKS:.1f} "
        f"on average); band-mode steady tick {steady:.2f} s CPU, the loop wrapper's plain "
        f"ticks ~{wrapper:.2f} s more"
    )
    for margin, policy in CONFIGURATIONS:
        worst = worst_recalibrations(fed[margin, policy], most)
        total = steady + wrapper + worst
        print(
            f"worst tick under margin {margin}, policy {policy}: {total:.2f} s CPU (its {most} "
            f"recalibrations {worst:.2f} s), {total / steady:.1f} x the band-mode steady tick"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--backtest-days", type=float, default=30.0)
    parser.add_argument("--only", action="append", choices=TRACES, help="traces to feed")
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print_recalibrations(args.pools, args.only or list(TRACES))
    trace = backtest_trace(load("nasa_jul95"), args.backtest_days)
    days = (len(trace) - 7 * DAY) / DAY
    band = backtest_seconds(trace, "band", "forecast")
    runs = ", ".join(
        f"{margin} with policy {policy} {seconds:.1f} s ({seconds / band:.2f} x)"
        for margin, policy in CONFIGURATIONS
        for seconds in [backtest_seconds(trace, margin, policy)]
    )
    print(
        f"backtest of one pool, {days:.1f} d of minutes after 7 d of warm-up (nasa_jul95, "
        f"forecasting run): band {band:.1f} s, {runs}"
    )


if __name__ == "__main__":
    main()
