"""The metrics source of `run`'s replay: a trace file answered as Prometheus would answer
the pool's demand query, minute by minute as the (simulated) clock passes.

Its own room beside autoscaler.replay, which reads trace files: this is what a tick asks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from autoscaler.metrics import MetricsError
from autoscaler.replay import as_known
from common.clock import Clock

_MINUTE = timedelta(minutes=1)


class TraceReplaySource:
    def __init__(self, trace: pd.Series, clock: Clock, row_minutes: int = 1) -> None:
        self.trace = trace  # spread (read_trace_rows); demand() answers what a tick knows
        self.known = as_known(trace, row_minutes)
        self.clock = clock

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        """The trace's finished minutes in [start, min(end, now)], averaged to `step`.

        A row stamped 10:00 counts the requests of 10:00-10:01, known only at 10:01: the
        minute in progress is never shown, nor a coarser row in progress (as_known). A
        minute without a sample (an empty or NA cell, a row left out) is left out, as
        Prometheus leaves out a scrape that never came: the tick holds once the newest is
        older than metrics.max_staleness, as the backtest's does. `query` is ignored.
        """
        end = min(end, self.clock.now()) - _MINUTE
        window = self.known[(self.known.index >= start) & (self.known.index <= end)].dropna()
        if window.empty:
            raise MetricsError("empty", query, f"trace has no samples between {start} and {end}")
        if pd.Timedelta(step) > pd.Timedelta(minutes=1):
            window = (
                window.resample(pd.Timedelta(step), origin="end", closed="right", label="right")
                .mean()
                .dropna()
            )
        return window
