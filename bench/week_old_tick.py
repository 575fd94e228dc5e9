"""The steady tick of a week-old daemon of 1,000 pools: each pool's loop recalibrations due.

bench/first_tick.py times a daemon that has just started: its pools keep a few ticks, so
no loop recalibration (`margin: widen`, the default: the replay of the pool's last week
of ticks, every 6 h at the pool's phase) ever falls due in it. A daemon that has run a
week keeps 10,080 ticks a pool, and some 2.8 of 1,000 pools recalibrate each minute (at
most 9 on one). Here a real Daemon (as bench/first_tick.py's daemon rows: its own loop,
telemetry, state file, decision log and JSON log lines; not a dry run) ticks once, then
each pool's loop calibration is given the week of ticks it would have kept (its own
demand over the last 7 days, a band 1.2 x it; calibrated, the window full, its last
recalibration at its phase's place in the last 6 h), and the daemon ticks `--ticks`
minutes on. Printed: the median and worst tick, and the recalibrations made in them:

1. with the fit workers (the default: the recalibrations due go to them with the
   forecaster's fit),
2. in one process (`fit_workers: 0`: every recalibration in the pool's own tick),
3. the seed's linear predictor under the same margin, with the fit workers (the ratio's
   baseline; its loop recalibrates too),
4. as 1, with no week kept: the daemon's steady tick as bench/first_tick.py times it,
   measured in the same run, so that the week's own cost shows apart from the host's pace.

The daemon's second tick (the first after its first) is slower than the rest in every
row: it joins each pool's first answer to the next (autoscaler.kept_demand, ~0.5 s for
1,000 pools), and here, ticked at once after the first (in the daemon: an interval later),
its hourly refits wait for the workers' compile of the replay (~0.8 s), sent to them as
the first tick ends.

    python bench/week_old_tick.py [--pools 1000] [--ticks 15]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from first_tick import NOW, ServedHistories, daemon_ticks  # run from bench/: on sys.path
from predictor_speed import pool_histories

from autoscaler.calibration import LoopCalibrated
from autoscaler.daemon import Daemon
from autoscaler.fit_workers import WORKERS_FROM, worker_count
from autoscaler.kept_ticks import AIM, BAND_ARRIVAL, BAND_PEAK, USED_ARRIVAL, USED_PEAK

WEEK = timedelta(days=7)
BAND = 1.2


def kept_a_week(
    served: ServedHistories, refits: dict[str, datetime | None]
) -> Callable[[Daemon], None]:
    """What `after_first` does: each pool's loop calibration as a week of ticks leaves it
    (bench-only: the calibration's own record step, fed the pool's demand; its private
    fields set as a week of recalibrations would have left them)."""

    def fill(daemon: Daemon) -> None:
        started = time.perf_counter()
        for ticker in daemon.runtime.tickers:
            loop = ticker.predictor
            assert isinstance(loop, LoopCalibrated), "the default margin wraps every pool"
            week = served.histories[ticker.pool.name].loc[NOW - WEEK - timedelta(minutes=1) : NOW]
            loop._ticks.clear()
            loop._peaks.clear()
            for at, demand in zip(week.index, week.to_numpy(), strict=True):
                loop._record(at.to_pydatetime(), float(demand))
                for column in (BAND_PEAK, BAND_ARRIVAL, USED_PEAK, USED_ARRIVAL):
                    loop._ticks.set_newest(column, BAND * float(demand))
                loop._ticks.set_newest(AIM, loop.aim)
            assert loop._window_full
            loop._calibrated = True
            loop._held_level = float(week.max())
            loop._refit_at = NOW - loop.settings.phase * loop.settings.refit_every
            refits[ticker.pool.name] = loop._refit_at
        print(f"  (a week kept by {len(refits)} pools in {time.perf_counter() - started:.0f} s)")

    return fill


def week_old(
    served: ServedHistories, folder: Path, ticks: int, workers: int, kind: str, keep: bool
) -> tuple[list[float], int]:
    """The wall seconds of each tick after the first (and the week kept, with `keep`), and
    the recalibrations made in them."""
    refits: dict[str, datetime | None] = {}
    watched: list[Daemon] = []

    def fill_then_watch(daemon: Daemon) -> None:
        if keep:
            kept_a_week(served, refits)(daemon)
        watched.append(daemon)

    walls, _, _ = daemon_ticks(served, folder, ticks, workers, kind, fill_then_watch)
    after = {}
    for ticker in watched[0].runtime.tickers:
        loop = ticker.predictor
        assert isinstance(loop, LoopCalibrated)
        after[ticker.pool.name] = loop._refit_at
    return walls, sum(after[name] != at for name, at in refits.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=15)
    parser.add_argument("--workers", type=int, default=worker_count(None))
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if args.pools < WORKERS_FROM:
        print(f"(under {WORKERS_FROM} pools the daemon starts no fit workers: all in one process)")
    histories = pool_histories(args.pools, extra=args.ticks + 1)
    served = ServedHistories({f"pool-{n}": h for n, h in enumerate(histories)})
    folder = Path(tempfile.mkdtemp(prefix="week-old-"))
    workers = args.workers
    rows = {
        "default": ("seasonal", workers, True, f"{workers} fit workers (the default)"),
        "alone": ("seasonal", 0, True, "one process (fit_workers: 0)"),
        "linear": ("linear", workers, True, f"the seed's linear predictor, {workers} fit workers"),
        "fresh": ("seasonal", workers, False, f"{workers} fit workers, no week kept (as started)"),
    }
    medians = {}
    for row, (kind, row_workers, keep, label) in rows.items():
        print(f"{label}:")
        walls, count = week_old(served, folder, args.ticks, row_workers, kind, keep)
        medians[row] = statistics.median(walls)
        kept = "a week kept" if keep else "none kept"
        print(
            f"  the daemon's steady tick, {kept}, median of {args.ticks}: "
            f"{medians[row]:.3f} s wall, worst {max(walls):.3f} s, worst after the second "
            f"tick {max(walls[1:], default=math.nan):.3f} s; "
            f"{count} pools recalibrated in those ticks\n"
            f"  each tick: {' '.join(f'{wall:.2f}' for wall in walls)} s"
        )
    ours = medians["default"]
    print(
        f"the default's median {ours:.3f} s: {ours / medians['linear']:.2f} x linear's "
        f"{medians['linear']:.3f} s, {ours / medians['alone']:.2f} x one process's "
        f"{medians['alone']:.3f} s, {ours / medians['fresh']:.2f} x none kept "
        f"{medians['fresh']:.3f} s"
    )


if __name__ == "__main__":
    main()
