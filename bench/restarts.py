"""The loop across daemon restarts: bench/backtest_untuned.py's rows with the daemon
restarted every `--every` days of the scored span.

At each restart the pool's loop calibration starts afresh and resumes what the daemon
keeps: its calibration, as the state file keeps it (LoopCalibrated.saved/resume), and its
week of ticks, through the file a restart reads (autoscaler.kept_ticks_file); with
`--without-week`, the calibration alone, as before the week was kept. The forecaster is
kept across a restart, so that what differs from the rows without restarts (the
baseline: bench/backtest_untuned.py with the same options) is the loop's memory alone.
Each row is scored as there, its ratio to the best anchor tuned in hindsight.

    python bench/restarts.py --every 1 [--without-week] [backtest_untuned.py's options]
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
from backtest_untuned import main  # run from bench/: its folder is on sys.path

from autoscaler.calibration import LoopCalibrated
from autoscaler.kept_ticks_file import read_week, write_week

_fit = LoopCalibrated.fit


def restarted_every(every: timedelta, with_week: bool, folder: Path) -> None:
    """Make every LoopCalibrated restart each `every` after its first fit (counted on the
    object itself, which the backtest may copy)."""

    def fit(self: LoopCalibrated, history: pd.Series) -> LoopCalibrated:
        now = history.index[-1].to_pydatetime()
        first, done = getattr(self, "bench_restarts", (now, 0))
        self.bench_restarts = first, done  # type: ignore[attr-defined]
        if now - first >= (done + 1) * every:
            saved, week = self.saved(now), self.kept_week() if with_week else None
            if week is not None:
                write_week(folder / "week.npz", week)
            LoopCalibrated.__init__(self, self.inner, self.settings, self.pool)
            self.bench_restarts = first, done + 1  # type: ignore[attr-defined]
            week = None if week is None else read_week(folder / "week.npz", now.tzinfo)
            _, took_up = self.restart_from(saved, week, now)
            if week is not None and not took_up:
                raise RuntimeError(f"a restart at {now} did not take up its week")
        return _fit(self, history)

    LoopCalibrated.fit = fit  # type: ignore[method-assign]


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--every" not in args:
        sys.exit("restarts.py: --every DAYS is required")
    at = args.index("--every")
    days = float(args[at + 1])
    with_week = "--without-week" not in args
    rest = [a for i, a in enumerate(args) if i not in (at, at + 1) and a != "--without-week"]
    print(f"restarted every {days:g} d, " + ("with" if with_week else "without") + " the week")
    with tempfile.TemporaryDirectory(prefix="restarts-") as scratch:
        restarted_every(timedelta(days=days), with_week, Path(scratch))
        sys.argv = [sys.argv[0], *rest]
        sys.exit(main())
