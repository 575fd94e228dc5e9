"""The loop's kept ticks as columns: the same rows a list of ticks would hold (times and
schedule bounds included), through growth, drops from the front and the buffer's
compaction."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from autoscaler.kept_ticks import AIM, BAND_PEAK, DEMAND, USED_ARRIVAL, KeptTicks
from autoscaler.schedules import ScheduleBounds

START = datetime(2026, 1, 5, tzinfo=UTC)
QUIET = ScheduleBounds(None, None, ())
BUSY = ScheduleBounds(4, None, ("busy",))

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 300), st.booleans()),
        st.tuples(st.just("drop"), st.integers(1, 300), st.just(False)),
        st.tuples(st.just("clear"), st.just(0), st.just(False)),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(operations)
@example([("append", 300, False), ("drop", 250, False), ("append", 300, True)])  # compacts
def test_columns_hold_the_rows_a_list_would(steps: list[tuple[str, int, bool]]) -> None:
    ticks, model = KeptTicks(), []  # model: (time, demand, band peak, aim, bounds) per row
    row = 0
    for what, count, busy in steps:
        for _ in range(count):
            if what == "append":
                at, bounds = START + timedelta(minutes=row), BUSY if busy else QUIET
                ticks.append(at, float(row), bounds)
                ticks.set_newest(BAND_PEAK, 2.0 * row)
                if row % 3:  # some ticks have no aim yet: NaN, as appended
                    ticks.set_newest(AIM, 0.5 * row)
                aim = 0.5 * row if row % 3 else math.nan
                model.append((at, float(row), 2.0 * row, aim, bounds))
                row += 1
            elif what == "drop" and model:
                ticks.drop_oldest()
                model.pop(0)
        if what == "clear":
            ticks.clear()
            model.clear()
        assert len(ticks) == len(model) == len(ticks.times()) == len(ticks.schedules())
        assert list(ticks.times()) == [m[0] for m in model]
        assert ticks.schedules() == [m[4] for m in model]
        assert ticks.oldest_at() == (model[0][0] if model else None)
        assert ticks.newest_at() == (model[-1][0] if model else None)
        np.testing.assert_array_equal(ticks.column(DEMAND), [m[1] for m in model])
        np.testing.assert_array_equal(ticks.column(BAND_PEAK), [m[2] for m in model])
        np.testing.assert_array_equal(ticks.column(AIM), [m[3] for m in model])
        assert np.isnan(ticks.column(USED_ARRIVAL)).all()  # never set: missing
        if model:
            np.testing.assert_array_equal(ticks.column(DEMAND)[:-1], [m[1] for m in model[:-1]])
            np.testing.assert_array_equal(ticks.column(DEMAND)[1:], [m[1] for m in model[1:]])
            assert ticks.newest(DEMAND) == model[-1][1]


def test_a_run_of_equal_schedule_bounds_is_one_object() -> None:
    """A week of ticks under the same bounds keeps one object, not 10,080."""
    ticks = KeptTicks()
    for minute in range(1000):
        busy = 400 <= minute < 600  # a new object each tick, as bounds_at makes
        bounds = ScheduleBounds(4, None, ("busy",)) if busy else ScheduleBounds(None, None, ())
        ticks.append(START + timedelta(minutes=minute), 1.0, bounds)
    assert len({id(bounds) for bounds in ticks.schedules()}) == 3
    assert ticks.schedules()[399] == QUIET and ticks.schedules()[400] == BUSY
    assert len(ticks._runs) == 3  # kept as runs: no entry a tick for the collector to walk
    for _ in range(500):
        ticks.drop_oldest()
    assert ticks.schedules() == [BUSY] * 100 + [QUIET] * 400 and len(ticks._runs) == 2


def test_times_come_back_in_the_zone_they_came_in() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    ticks = KeptTicks()
    for minute in range(3):
        ticks.append((START + timedelta(minutes=minute)).astimezone(berlin), 1.0, QUIET)
    newest = ticks.newest_at()
    assert newest == START + timedelta(minutes=2) and newest.tzinfo is berlin
    assert str(ticks.times().tz) == "Europe/Berlin"
    assert list(ticks.times()) == [START + timedelta(minutes=m) for m in range(3)]
