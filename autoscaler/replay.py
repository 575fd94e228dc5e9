"""A recorded trace played back as the metrics source (the demo and backtests).

The trace is the shared format: `timestamp,requests` per minute. It answers the
same `demand()` call as Prometheus, and never shows a sample later than the clock's
now, so a replayed run cannot peek at the future.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from autoscaler.metrics import MetricsError
from common.clock import Clock

_MINUTE = timedelta(minutes=1)


def read_trace(path: Path) -> pd.Series:
    """Requests per second, indexed by UTC minute."""
    frame = pd.read_csv(path)
    if list(frame.columns[:2]) != ["timestamp", "requests"]:
        raise ValueError(f"{path}: expected columns timestamp,requests")
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True))
    return pd.Series(frame["requests"].to_numpy(dtype=float) / 60.0, index=index, name="rps")


def read_queue_depth(path: Path) -> pd.Series | None:
    """The trace's `queue_depth` column (messages waiting at each minute), if it has one:
    the backtest replays it as a queue-depth signal."""
    if "queue_depth" not in pd.read_csv(path, nrows=0).columns:
        return None
    frame = pd.read_csv(path, usecols=["timestamp", "queue_depth"])
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True))
    return pd.Series(frame["queue_depth"].to_numpy(dtype=float), index=index, name="queue_depth")


class TraceReplaySource:
    def __init__(self, trace: pd.Series, clock: Clock) -> None:
        self.trace = trace
        self.clock = clock

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        """The trace's finished minutes in [start, min(end, now)], averaged to `step`.

        A row stamped 10:00 counts the requests of 10:00-10:01, known only at 10:01: the
        minute in progress is never shown. `query` is ignored.
        """
        end = min(end, self.clock.now()) - _MINUTE
        window = self.trace[(self.trace.index >= start) & (self.trace.index <= end)]
        if window.empty:
            raise MetricsError("empty", query, f"trace has no samples between {start} and {end}")
        if pd.Timedelta(step) > pd.Timedelta(minutes=1):
            window = (
                window.resample(pd.Timedelta(step), origin="end", closed="right", label="right")
                .mean()
                .dropna()
            )
        return window
