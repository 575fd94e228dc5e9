"""How fast a pool may move: the step and stabilization of scale-up and scale-down.

Its own room because these bound actions, not forecasts: the policy reads them alone.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from common.durations import Duration
from common.settings import Strict


class ScaleDown(Strict):
    stabilization: Duration = Field(
        default=timedelta(minutes=30),
        description="scale down only to the highest recommendation seen in this window",
    )
    max_step: int = Field(default=2, ge=1, description="nodes removed per action at most")


class ScaleUp(Strict):
    """How many nodes one scale-up may add: a GPU quota or a provider's rate limit."""

    max_step: int | None = Field(default=None, ge=1, description="nodes added per action at most")
    max_percent: float | None = Field(
        default=None,
        gt=0,
        description="nodes added per action at most, as a % of the current count (rounded "
        "up, at least 1); with max_step too, the smaller wins",
    )
