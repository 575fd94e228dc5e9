"""Predictor speed: one pool's fit + forecast, ticking refits, and 1,000 pools in one tick.

1. One pool, 14 days of 1-minute history (nasa_jul95 from bench/traces/): a fresh
   predictor's fit + forecast(15 min), median of `--repeats` runs, for the seasonal
   and the seed's linear predictor measured in the same run, and their ratio.
2. Ticking: one seasonal predictor fitted every minute for a day past those 14 days
   (what the backtest does): mean cost per call, heavy refits, and the cost that
   implies for a month of minutes (43,200 calls).
3. 1,000 pools in one tick: distinct predictor objects, each fitted once on its own
   14-day history (the bundled traces at random offsets and scales, with noise),
   one after another in one process, as the daemon ticks pools; the same with the
   linear predictor, and the ratio (which a busy host moves less than the seconds).
   A fresh start's replay is quick (quick_first_fit); the same tick with the full replay
   at once is printed beside it, and how much the process's peak memory grew over the
   tick (what 1,000 fitted pools keep: each lets its replay go once its band is learned).
4. The steady tick that follows: the same 1,000 predictor objects, kept as the daemon
   keeps them, each given its pool's query window (the last 2 hours) one minute later,
   median of `--steady-ticks` ticks in which no refit is due; the same with the linear
   predictor, and the ratio. Then the worst tick of the hour of one-minute ticks after
   the first (median of `--hour-repeats` hours replayed from the same fitted state), when
   every pool's hourly refit falls due on one tick (refit_phase 0: pools that started
   together refit together, as before staggering) and with each pool's refit phase from
   its name (as the daemon sets it), in CPU seconds and as a ratio to the linear
   predictor's steady tick (it refits its window every tick: no worse tick in its hour).
5. A month's backtest of one pool: the forecasting run of `autoscaler backtest --no-tune`
   (the daemon's tick on a simulated clock and fleet, every minute of nasa_jul95 after
   7 days of warm-up, `--backtest-days` long: 30 by default, past the trace's own 20.6
   days after the warm-up, by the trace three weeks before, the same weekday and hour),
   seasonal beside linear, and the ratio.

    python bench/predictor_speed.py [--pools 1000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import time
from datetime import timedelta
from functools import partial

import numpy as np
import pandas as pd
from trace_files import DEFAULT_TRACES, trace_path  # run from bench/: on sys.path

from autoscaler.backtest.engine import BacktestSettings
from autoscaler.backtest.runner import frame_replay
from autoscaler.backtest.tuning import run_policy
from autoscaler.pool_predictor import refit_phase_of
from predictors.linear import LinearTrendPredictor
from predictors.seasonal import SeasonalPredictor

DAY = 1440
FORTNIGHT = 14 * DAY
HORIZON = timedelta(minutes=15)
QUERY_WINDOW = 120  # the daemon's default query window: 2 h of 1-minute samples
REFIT_TICKS = 60  # minutes: the seasonal predictor's default refit_every


def load(name: str) -> pd.Series:
    frame = pd.read_csv(trace_path(DEFAULT_TRACES, name))
    index = pd.to_datetime(frame["timestamp"], utc=True)
    return pd.Series(frame["requests"].to_numpy(dtype=float) / 60.0, index=index)


def median_ms(make, history: pd.Series, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of a fresh predictor's fit + forecast."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        make().fit(history).forecast(HORIZON)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def ticking(demand: pd.Series) -> tuple[float, float, int, int]:
    predictor = SeasonalPredictor()
    predictor.fit(demand.iloc[:FORTNIGHT]).forecast(HORIZON)
    calls = min(DAY, len(demand) - FORTNIGHT)
    started, cpu_started = time.perf_counter(), time.process_time()
    for end in range(FORTNIGHT + 1, FORTNIGHT + 1 + calls):
        predictor.fit(demand.iloc[:end]).forecast(HORIZON)
    wall = (time.perf_counter() - started) / calls * 1000
    cpu = (time.process_time() - cpu_started) / calls * 1000
    return wall, cpu, calls, predictor.heavy_fits - 1


def pool_histories(pools: int, seed: int = 0, extra: int = 0) -> list[pd.Series]:
    """Each pool's 14 days of minutes, plus `extra` minutes that later ticks read."""
    rng = np.random.default_rng(seed)
    sources = [load(name).to_numpy() for name in ("nasa_jul95", "servegen_msmall")]
    sources.append(load("alibaba_genai_lora").to_numpy())
    length = FORTNIGHT + extra
    index = pd.date_range("2025-06-02", periods=length, freq="1min", tz="UTC")
    histories = []
    for pool in range(pools):
        source = sources[pool % len(sources)]
        offset = int(rng.integers(0, len(source) - FORTNIGHT + 1))
        wrapped = np.concatenate((source, source[:extra]))  # a 14-day source: its start again
        values = wrapped[offset : offset + length] * rng.uniform(0.5, 2.0)
        values = np.maximum(values * rng.normal(1.0, 0.05, length), 0.0)
        histories.append(pd.Series(values, index=index))
    return histories


def peak_rss_kib() -> int:
    """The process's peak resident memory so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def one_tick(make, histories: list[pd.Series]) -> tuple[float, float, list]:
    """Wall and CPU seconds to fit a fresh predictor on each history (its first 14 days)
    and forecast; the fitted predictors, kept for the ticks that follow."""
    predictors = [make() for _ in histories]
    started, cpu_started = time.perf_counter(), time.process_time()
    for predictor, pool_history in zip(predictors, histories, strict=True):
        predictor.fit(pool_history.iloc[:FORTNIGHT]).forecast(HORIZON)
    return time.perf_counter() - started, time.process_time() - cpu_started, predictors


def steady_ticks(
    predictors: list, histories: list[pd.Series], ticks: int
) -> tuple[list[float], list[float], list[int]]:
    """Wall seconds, CPU seconds and heavy refits of each of `ticks` one-minute ticks after
    the first: every kept predictor fitted on its pool's query window ending one minute
    later, and forecast."""
    wall, cpu, refits = [], [], []
    for tick in range(1, ticks + 1):
        end = FORTNIGHT + tick
        windows = [pool_history.iloc[end - QUERY_WINDOW : end] for pool_history in histories]
        fits_before = sum(getattr(predictor, "heavy_fits", 0) for predictor in predictors)
        started, cpu_started = time.perf_counter(), time.process_time()
        for predictor, window in zip(predictors, windows, strict=True):
            predictor.fit(window).forecast(HORIZON)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        refits.append(sum(getattr(p, "heavy_fits", 0) for p in predictors) - fits_before)
    return wall, cpu, refits


def worst_of_hours(fitted: list, histories: list[pd.Series], repeats: int) -> tuple:
    """The worst tick of the hour after the first, as (CPU s, wall s, refits in it), each
    the median of `repeats` hours replayed on copies of the same fitted predictors; and
    the most refits any tick of an hour had."""
    worst_cpu, worst_wall, worst_refits, most = [], [], [], 0
    for _ in range(repeats):
        wall, cpu, refits = steady_ticks(copy.deepcopy(fitted), histories, REFIT_TICKS)
        worst = int(np.argmax(cpu))
        worst_cpu.append(cpu[worst])
        worst_wall.append(wall[worst])
        worst_refits.append(refits[worst])
        most = max(most, *refits)
    median = statistics.median
    return median(worst_cpu), median(worst_wall), median(worst_refits), most


def named_phases(pools: int):
    """A factory of seasonal predictors, each with the refit phase the daemon gives a pool
    named pool-0, pool-1, ... (in that order)."""
    phases = iter([refit_phase_of(f"pool-{number}") for number in range(pools)])
    return lambda: SeasonalPredictor(refit_phase=next(phases))


def print_worst_ticks(
    together: list, histories: list[pd.Series], repeats: int, linear_cpu: float
) -> None:
    """The worst tick of the hour after the first, refits due together vs staggered."""
    _, first_cpu, staggered = one_tick(named_phases(len(histories)), histories)
    print(f"(the first tick again, each pool with its name's refit phase: {first_cpu:.1f} s CPU)")
    cases = (
        ("all refits due on one tick (refit_phase 0, as before staggering)", together),
        ("staggered by pool name (refit_phase from its hash, as the daemon runs)", staggered),
    )
    for label, fitted in cases:
        cpu, wall, refits, most = worst_of_hours(fitted, histories, repeats)
        print(
            f"worst tick of the hour after the first, {label}, median of {repeats} hours: "
            f"{cpu:.2f} s CPU ({wall:.2f} s wall, {refits} refits in it; at most {most} "
            f"in one tick), ratio {cpu / linear_cpu:.1f} to the linear predictor's steady tick"
        )


def backtest_trace(demand: pd.Series, days: float) -> pd.Series:
    """7 days of warm-up and `days` more of `demand`'s minutes; past its end, the minutes
    three weeks before (a whole number of weeks: the same weekday and hour go on)."""
    values = demand.asfreq("1min").to_numpy()
    minutes = round((7 + days) * DAY)
    lag = min(3 * 7 * DAY, len(values))
    while len(values) < minutes:
        values = np.concatenate((values, values[len(values) - lag :][: minutes - len(values)]))
    index = pd.date_range(demand.index[0], periods=minutes, freq="1min")
    return pd.Series(values[:minutes], index=index)


def backtest_seconds(trace: pd.Series, predictor: str) -> float:
    """Wall seconds of the backtest's forecasting run (no knob sweep) over `trace`, the
    predictor's band as made (the margins' own costs: bench/loop_speed.py)."""
    settings = BacktestSettings(
        per_node_rps=0.0397, predictor=predictor, tune=False, jobs=1, margin="band"
    )
    replay = frame_replay(trace, settings)
    started = time.perf_counter()
    run_policy(trace, replay, settings, workers=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--steady-ticks", type=int, default=5)
    parser.add_argument("--hour-repeats", type=int, default=3)
    parser.add_argument("--backtest-days", type=float, default=30.0)
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    nasa = load("nasa_jul95")
    history = nasa.iloc[:FORTNIGHT]
    median_ms(SeasonalPredictor, history, 3)  # warm imports and caches
    median_ms(LinearTrendPredictor, history, 3)
    seasonal, seasonal_cpu = median_ms(SeasonalPredictor, history, args.repeats)
    linear, linear_cpu = median_ms(LinearTrendPredictor, history, args.repeats)
    print(
        f"one pool, 14 d of 1-min history, fit + forecast(15 min), median of {args.repeats}: "
        f"seasonal {seasonal:.1f} ms ({seasonal_cpu:.1f} ms CPU), "
        f"linear {linear:.1f} ms ({linear_cpu:.1f} ms CPU), ratio {seasonal / linear:.2f}"
    )
    per_call, per_call_cpu, calls, refits = ticking(nasa)
    print(
        f"ticking: {per_call:.2f} ms ({per_call_cpu:.2f} ms CPU) per fit + forecast over "
        f"{calls} one-minute ticks ({refits} heavy refits); a month of minutes "
        f"(43,200 calls) ~ {per_call * 43.2:.0f} s ({per_call_cpu * 43.2:.0f} s CPU)"
    )
    histories = pool_histories(args.pools, extra=max(args.steady_ticks, REFIT_TICKS))
    peak_before = peak_rss_kib()
    elapsed, cpu, seasonal_pools = one_tick(SeasonalPredictor, histories)
    grown = peak_rss_kib() - peak_before
    linear_elapsed, linear_first_cpu, linear_pools = one_tick(LinearTrendPredictor, histories)
    print(
        f"{args.pools} pools in one tick (distinct predictors, distinct 14-d histories, "
        f"one process): {elapsed:.1f} s wall, {cpu:.1f} s CPU "
        f"({elapsed / args.pools * 1000:.1f} ms per pool); the same pools with the linear "
        f"predictor {linear_elapsed:.1f} s ({linear_first_cpu:.1f} s CPU), ratio "
        f"{elapsed / linear_elapsed:.1f} ({cpu / linear_first_cpu:.1f} in CPU; a busy host "
        "slows both)"
    )
    print(
        f"(memory: the process's peak RSS grew {grown / 1024:.0f} MiB over that tick, "
        f"{grown * 1.024 / args.pools:.0f} kB per fitted pool kept)"
    )
    _, full_cpu, _ = one_tick(partial(SeasonalPredictor, quick_first_fit=False), histories)
    print(
        f"(the first tick with the full replay at once, quick_first_fit off: {full_cpu:.1f} s "
        f"CPU, {full_cpu / linear_first_cpu:.1f} x linear; the quick one is {cpu / full_cpu:.2f} "
        "of it, its band provisional until each pool's refit phase)"
    )
    before = copy.deepcopy(seasonal_pools)  # the fitted state the hours below start from
    steady, steady_cpu, refits = steady_ticks(seasonal_pools, histories, args.steady_ticks)
    linear_steady, linear_cpu, _ = steady_ticks(linear_pools, histories, args.steady_ticks)
    steady, steady_cpu = statistics.median(steady), statistics.median(steady_cpu)
    linear_steady, linear_cpu = statistics.median(linear_steady), statistics.median(linear_cpu)
    print(
        f"steady tick of {args.pools} pools (kept predictors, each given its 2-h query "
        f"window one minute later; {sum(refits)} refits due), median of {args.steady_ticks}: "
        f"{steady * 1000:.0f} ms ({steady_cpu * 1000:.0f} ms CPU, "
        f"{steady / args.pools * 1000:.2f} ms per pool); the linear predictor "
        f"{linear_steady * 1000:.0f} ms ({linear_cpu * 1000:.0f} ms CPU), "
        f"ratio {steady / linear_steady:.1f}"
    )
    del seasonal_pools, linear_pools
    print_worst_ticks(before, histories, args.hour_repeats, linear_cpu)
    trace = backtest_trace(nasa, args.backtest_days)
    days = (len(trace) - 7 * DAY) / DAY
    backtest = backtest_seconds(trace, "seasonal")
    linear_backtest = backtest_seconds(trace, "linear")
    print(
        f"backtest of one pool, {days:.1f} d of minutes after 7 d of warm-up (nasa_jul95, "
        f"forecasting run, no knob sweep): seasonal {backtest:.1f} s, linear "
        f"{linear_backtest:.1f} s, ratio {backtest / linear_backtest:.1f}"
    )


if __name__ == "__main__":
    main()
