"""Horizon cases every predictor must step through the same way (step, horizon, steps)."""

from __future__ import annotations

from datetime import timedelta

import pytest

HORIZON_STEPS = [
    pytest.param(timedelta(minutes=1), timedelta(minutes=10), 10, id="1m-10m"),
    pytest.param(timedelta(minutes=5), timedelta(minutes=12), 3, id="5m-12m-rounds-up"),
    pytest.param(timedelta(minutes=5), timedelta(minutes=2), 1, id="shorter-than-a-step"),
    pytest.param(timedelta(seconds=30), timedelta(minutes=3), 6, id="30s-3m"),
]
