"""The daemon's collector pace: young passes every 10,000 allocations, the rest as Python's."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from common.collector import YOUNG_COLLECTIONS_EVERY, tune_collector


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_only_the_young_generations_pace_changes(thresholds: tuple[int, int, int]) -> None:
    tune_collector()
    assert gc.get_threshold() == (YOUNG_COLLECTIONS_EVERY, thresholds[1], thresholds[2])
    assert gc.isenabled()
