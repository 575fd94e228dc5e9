"""The loop calibration's replay: one replay of a 7-day window, decide() vs replay_decide.

`margin: loop` replays the pool's decisions over its window of ticks once per margin it
tries (a dozen per refit). This times one `replay_counts` over 10,080 one-minute ticks
(7 days of a bundled trace, servegen_msmall by default) as it runs now (replay_decide,
decide()'s rules on integers) and as it ran before (decide() itself, tick by tick),
median of `--repeats` runs each, in the same process, and their ratio; then the same for
`replay_late` (the replay scored with the late-request rule, what each bisection step
costs). The counts of the two must be identical, and the script fails if they are not.

The frame: the trace's demand as each tick saw it, a forecast band of the same minutes
a day before x 1.2 over a 15-minute horizon (seasonal-naive; the replay's cost does not
depend on where the band comes from), per-node capacity = mean demand / 20, a pool with
the config's defaults (10-minute boot, stabilization, step limits, cooldown).

    python bench/replay_speed.py [--trace servegen_msmall] [--traces DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
from backtest_targets import capacity_for  # run from bench/: its folder is on sys.path
from trace_files import DEFAULT_TRACES, trace_path

from autoscaler import loop_replay
from autoscaler.calibration import loop_settings
from autoscaler.config.schema import Pool
from autoscaler.loop_replay import Frame, replay_counts, replay_late
from autoscaler.plan import limits_of
from autoscaler.replay_decide import decide_each
from autoscaler.schedules import ScheduleBounds

WEEK = 7 * 1440
DAY = 1440
HORIZON = 15
BOOT = 10


def load(folder: Path, name: str) -> pd.Series:
    frame = pd.read_csv(trace_path(folder, name))
    index = pd.to_datetime(frame["timestamp"], utc=True)
    return pd.Series(frame["requests"].to_numpy(dtype=float) / 60.0, index=index)


def week_frame(demand: pd.Series) -> Frame:
    """The last 7 days of the trace as the calibration keeps them (one tick a minute)."""
    if len(demand) < WEEK + DAY + HORIZON:
        raise SystemExit(f"the trace needs {WEEK + DAY + HORIZON} minutes, has {len(demand)}")
    values = demand.to_numpy()
    start = len(values) - WEEK - HORIZON
    steps = np.arange(1, HORIZON + 1)
    upper = 1.2 * values[start - DAY + np.arange(WEEK)[:, None] + steps]
    return Frame(
        times=[t.to_pydatetime() for t in demand.index[start : start + WEEK]],
        demand=values[start : start + WEEK],
        served=values[start + 1 : start + WEEK + 1],
        peak=upper.max(axis=1),
        arrival=upper[:, BOOT - 1 :].max(axis=1),
        schedules=[ScheduleBounds(None, None, ())] * WEEK,
        tick_s=60.0,
    )


def default_pool() -> Pool:
    return Pool.model_validate(
        {
            "name": "bench",
            "backend": {"kind": "simulated", "initial_nodes": 1},
            "demand": {"query": "sum(rate(requests_total[2m]))"},
            "capacity": {"per_node_rps": 1.0},
            "predictor": {"kind": "seasonal", "margin": "loop", "policy": "forecast"},
            "max_nodes": 100_000,
            "horizon": f"{HORIZON}m",
        }
    )


def median_s(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `run` (CPU time moves less on a busy host)."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(wall), statistics.median(cpu)


def compare(label: str, run: Callable[[], object], repeats: int) -> tuple[object, object]:
    """Time `run` with the replay as it is and with decide() itself; print both."""
    new, new_cpu = median_s(run, repeats)
    with mock.patch.object(loop_replay, "replay_decide", decide_each):
        (old, old_cpu), old_result = median_s(run, repeats), run()
    print(
        f"{label}: decide() {old * 1000:.1f} ms, replay_decide {new * 1000:.1f} ms, "
        f"ratio {old / new:.1f}x (median of {repeats}; CPU {old_cpu * 1000:.1f} ms vs "
        f"{new_cpu * 1000:.1f} ms, {old_cpu / max(new_cpu, 1e-9):.1f}x)"
    )
    return old_result, run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default="servegen_msmall")
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    demand = load(args.traces, args.trace)
    frame = week_frame(demand)
    pool = default_pool()
    rate = capacity_for(args.trace, float(demand.mean()))
    settings = loop_settings(pool, rate, limits_of(pool))
    print(f"{args.trace}: {len(frame.times):,} ticks, {rate:.3f} req/s per node")
    old, new = compare("replay_counts", lambda: replay_counts(frame, 1.0, settings), args.repeats)
    if not np.array_equal(old, new):
        print("counts differ between decide() and replay_decide", file=sys.stderr)
        return 1
    print(f"counts identical: {len(new):,} ticks, {int(np.sum(np.diff(new) != 0)):,} changes")
    old, new = compare("replay_late", lambda: replay_late(frame, 1.0, settings), args.repeats)
    if old != new:
        print(f"late shares differ: {old} vs {new}", file=sys.stderr)
        return 1
    print(f"late share identical: {new:.4%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
