"""The clock shape's fit: the shape and its two out-of-sample folds in one pass; the local
time of week it is fitted on."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from predictors.shape import (
    N_SLOTS,
    fit_shape,
    fit_shape_and_folds,
    local_seconds,
    week_slots_of_local,
)


@pytest.mark.parametrize("use_weekly", [False, True])
def test_shape_and_folds_are_the_three_fits_bit_for_bit(use_weekly: bool) -> None:
    """One pass over the samples gives exactly what three fit_shape calls give (the
    replay's band depends on the folds, so a cheaper fit must not move them at all)."""
    rng = np.random.default_rng(3)
    local_s = 60 * np.arange(10 * 1440, dtype=np.int64) + 1_750_000_020
    slots = week_slots_of_local(local_s)
    values = 50 + 30 * np.sin(2 * np.pi * slots / 1440) + rng.normal(0, 5, len(slots))
    values[rng.random(len(values)) < 0.05] = np.nan  # missing samples
    values[2000:2600] = np.nan  # and a gap
    weights = 0.5 ** (np.arange(len(values))[::-1] / (7 * 1440))
    odd_day = (local_s // 86_400) % 2 == 1
    harmonics = (12, 16, use_weekly)
    shape, without_even, without_odd = fit_shape_and_folds(
        slots, values, weights, odd_day, *harmonics
    )
    assert np.array_equal(shape, fit_shape(slots, values, weights, *harmonics))
    for fold, fitted in ((False, without_even), (True, without_odd)):
        alone = fit_shape(slots, np.where(odd_day == fold, np.nan, values), weights, *harmonics)
        assert np.array_equal(fitted, alone)
    assert not np.array_equal(without_even, without_odd)  # the folds did see different days
    assert shape.shape == (N_SLOTS,)


def test_a_fold_without_data_is_flat_zero() -> None:
    """All samples on even days: the fold left with odd days only has nothing to fit."""
    local_s = 60 * np.arange(1440, dtype=np.int64)  # day 0 only
    slots = week_slots_of_local(local_s)
    values = np.full(len(slots), 7.0)
    odd_day = (local_s // 86_400) % 2 == 1
    shape, only_odd, only_even = fit_shape_and_folds(
        slots, values, np.ones(len(slots)), odd_day, 3, 0, False
    )
    assert np.allclose(shape, 7.0) and np.allclose(only_even, 7.0)
    assert np.array_equal(only_odd, np.zeros(N_SLOTS))


@pytest.mark.parametrize(
    ("zone", "first", "days"),
    [
        ("Africa/Casablanca", datetime(2026, 2, 10, tzinfo=UTC), 48),  # Ramadan: +00 35 days
        ("Asia/Gaza", datetime(2040, 10, 10, tzinfo=UTC), 20),  # two changes 7 days apart
        ("Europe/Berlin", datetime(2026, 3, 20, tzinfo=UTC), 20),  # one change
        ("Asia/Kolkata", datetime(2026, 3, 20, tzinfo=UTC), 20),  # none
    ],
)
def test_local_time_is_the_zone_s_wall_clock_at_every_sample(
    zone: str, first: datetime, days: int
) -> None:
    """A history whose two ends share an offset may still hold a change and its undoing
    (Casablanca's clock goes back for Ramadan): every sample is read at its own offset,
    so a 09:00 opening stays in the 09:00 slot through the month."""
    start = int(first.timestamp())
    seconds = np.arange(start, start + days * 86_400, 60, dtype=np.int64)
    local = local_seconds(seconds * 1_000_000_000, zone)
    quarters = seconds[::15]
    wall = [datetime.fromtimestamp(int(s), UTC).astimezone(ZoneInfo(zone)) for s in quarters]
    expected = [int(w.replace(tzinfo=UTC).timestamp()) for w in wall]
    assert local[::15].tolist() == expected
    nine = [k for k, w in enumerate(wall) if (w.weekday(), w.hour, w.minute) == (0, 9, 0)]
    assert nine and set(week_slots_of_local(local[::15][nine]).tolist()) == {9 * 60}
