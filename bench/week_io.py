"""What keeping the loop's week across a restart costs a pool: the file, and its write and read.

Under `margin: widen` (the default) or `loop` each pool's week of kept ticks is written
beside the state (autoscaler.kept_ticks_file) at each of its recalibrations (every 6 h),
for every pool when the daemon stops, and read for every pool as the daemon starts; the
first tick takes it up (LoopCalibrated.take_up_week: the recent peak refilled, the
window's oldest let go). A full week is 10,080 one-minute ticks. Timed over `--pools`
files, medians in ms; the baseline, measured in the same run on the same disk, is the
line of state the daemon writes (fsynced) before every fleet write
(StateStore.save_pool), and the ratio is to it. Then the totals for 1,000 pools.

    python bench/week_io.py [--pools 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from autoscaler.calibration import LoopCalibrated, loop_settings
from autoscaler.config.schema import Pool
from autoscaler.kept_ticks import AIM, BAND_PEAK, USED_PEAK, KeptTicks
from autoscaler.kept_ticks_file import KeptWeek, read_week, write_week
from autoscaler.loop_restarts import settings_digest
from autoscaler.plan import limits_of
from autoscaler.schedules import ScheduleBounds
from autoscaler.state import PoolState, StateStore
from predictors.seasonal import SeasonalPredictor

WEEK = 7 * 1440
START = datetime(2026, 1, 5, tzinfo=UTC)
POOL = Pool.model_validate(
    {
        "name": "gen",
        "backend": {"kind": "simulated", "initial_nodes": 2, "boot_delay": "10m"},
        "demand": {"query": "q"},
        "capacity": {"per_node_rps": 1.0},
        "max_nodes": 1000,
        "boot_time": "10m",
        "horizon": "15m",
    }
)


def full_week() -> KeptTicks:
    """A week of ticks, a schedule's floor by day and none by night."""
    ticks = KeptTicks()
    day, night = ScheduleBounds(4, None, ("business-hours",)), ScheduleBounds(None, None, ())
    for minute in range(WEEK):
        at = START + timedelta(minutes=minute)
        ticks.append(at, 20.0 + minute % 97, day if 9 <= at.hour < 18 else night)
        for column, value in ((BAND_PEAK, 30.0), (USED_PEAK, 28.0), (AIM, 1.2)):
            ticks.set_newest(column, value)
    return ticks


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=200)
    pools = parser.parse_args().pools
    week = KeptWeek(full_week(), START + timedelta(days=6), True, settings_digest(POOL))
    folder = Path(tempfile.mkdtemp(prefix="week-io-"))
    store = StateStore(folder / "state.json")
    state = PoolState()
    writes, reads, take_ups, lines = [], [], [], []
    now = START + timedelta(minutes=WEEK)
    settings = loop_settings(POOL, 1.0, limits_of(POOL))
    for index in range(pools):
        name = f"pool-{index}"
        began = time.perf_counter()
        write_week(store.week_path(name), week)
        writes.append(time.perf_counter() - began)
        began = time.perf_counter()
        store.save_pool(name, state)
        lines.append(time.perf_counter() - began)
    for index in range(pools):
        began = time.perf_counter()
        found = read_week(store.week_path(f"pool-{index}"), UTC)
        reads.append(time.perf_counter() - began)
        loop = LoopCalibrated(SeasonalPredictor(), settings, POOL)
        began = time.perf_counter()
        assert loop.take_up_week(found, now)
        take_ups.append(time.perf_counter() - began)
    size = store.week_path("pool-0").stat().st_size
    line = median_ms(lines)
    print(f"a full week ({WEEK:,} ticks) on disk: {size / 1e6:.2f} MB a pool")
    print(f"baseline: a pool's state line (StateStore.save_pool): {line:.3f} ms")
    for what, samples in (("write", writes), ("read", reads), ("take up", take_ups)):
        ms = median_ms(samples)
        print(f"{what:>8}: {ms:.2f} ms a pool (median of {pools}), {ms / line:.2f} x the line")
    write_s, read_s, take_up_s = (median_ms(s) for s in (writes, reads, take_ups))
    print(f"1,000 pools: {size * 1000 / 1e9:.2f} GB; a stop writes them in ~{write_s:.1f} s;")
    print(f"  a start reads them in ~{read_s:.1f} s (beside the fit workers' own start),")
    print(f"  and the first tick takes them up in ~{take_up_s:.1f} s")


if __name__ == "__main__":
    main()
