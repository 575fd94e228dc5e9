"""Spans of demand history the forecaster must not learn from: an outage, a launch spike.

The samples there become NaN before the fit (missing, never zero), so the seasonal
shape and the recent level skip them the way they skip a scrape gap, while the
history keeps its end (the forecast still starts now). Demand seen now is not masked:
the reactive floor still answers real load. Each mask that hid samples leaves a note
that the forecast and the decision carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

import numpy as np
import pandas as pd

from autoscaler.config.time_windows import HistoryMask


def mask_history(
    history: pd.Series, masks: Sequence[HistoryMask]
) -> tuple[pd.Series, tuple[str, ...]]:
    """The history with every sample inside a mask set to NaN, and a note per mask used."""
    if not masks or history.empty:
        return history, ()
    stamps = history.index
    hidden = np.zeros(len(history), dtype=bool)
    notes = []
    for mask in masks:
        inside = (stamps >= mask.start) & (stamps < mask.end)
        count = int(inside.sum())
        if count:
            hidden |= inside
            notes.append(
                f"history masked: {mask.name!r} {_utc(mask.start)} to {_utc(mask.end)} "
                f"({count} samples not learned from)"
            )
    if not hidden.any():
        return history, ()
    return history.mask(hidden), tuple(notes)


def history_to_learn(
    history: pd.Series, masks: Sequence[HistoryMask]
) -> tuple[pd.Series, tuple[str, ...], str | None]:
    """What the forecaster fits: the history masked, its notes, and why it cannot fit (every
    sample masked), if so. A stand-in without an index (the backtest's playback) passes."""
    if not masks or not isinstance(history, pd.Series):
        return history, (), None
    masked, notes = mask_history(history, masks)
    if not np.isfinite(masked.to_numpy(dtype=float)).any():
        return masked, notes, "every sample of the history window is masked (demand.exclude)"
    return masked, notes, None


def _utc(moment: pd.Timestamp | object) -> str:
    return f"{pd.Timestamp(moment).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
