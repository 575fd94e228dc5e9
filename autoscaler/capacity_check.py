"""Capacity that checks itself: what one node really serves under load, from the fleet.

The profile (gpu_bench, or per_node_rps) says what a node serves at the latency target;
the fleet's own series say what nodes served. With a GPU utilization query, only the
busy samples count, each scaled to a full GPU (req/s ÷ utilization), and their median is
the estimate: a node's capacity in both directions. Without one, what nodes served is
only a floor on what they can serve, so only a capacity above the profile is evidence.
Pure: the tick fetches the series and tells Slack (autoscaler/tick.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from autoscaler.signals.gpu_utilization import percent_not_ratio, percent_query
from common.durations import PositiveDuration
from common.settings import PromQL, Strict


class CapacityCheck(Strict):
    served_query: PromQL | None = Field(default=None, description="req/s the pool served")
    nodes_query: PromQL | None = Field(default=None, description="nodes serving (ready)")
    per_node_query: PromQL | None = Field(
        default=None, description="or: req/s one node served, directly"
    )
    utilization_query: PromQL | None = Field(
        default=None, description="the pool's GPU utilization in percent (busy samples only)"
    )
    busy_above: float = Field(default=80.0, gt=0, le=100, description="percent")
    window: PositiveDuration = timedelta(hours=6)
    step: PositiveDuration = timedelta(minutes=1)
    every: PositiveDuration = Field(default=timedelta(minutes=15), description="how often to check")
    tolerance: float = Field(default=0.2, gt=0, lt=1, description="drift that alerts")
    min_samples: int = Field(default=10, ge=1)
    use_measured: bool = Field(
        default=False, description="size with the measured figure while it drifts"
    )
    measured_min: float = Field(default=0.5, gt=0, le=1, description="× profile at least")
    measured_max: float = Field(default=1.5, ge=1, description="× profile at most")

    @field_validator("utilization_query")
    @classmethod
    def _percent(cls, query: str | None) -> str | None:
        return None if query is None else percent_query(query)

    @field_validator("busy_above")
    @classmethod
    def _busy_in_percent(cls, busy_above: float) -> float:
        return percent_not_ratio(busy_above)

    @model_validator(mode="after")
    def _one_source(self) -> CapacityCheck:
        pair = self.served_query is not None and self.nodes_query is not None
        if pair == (self.per_node_query is not None) or (
            not pair and (self.served_query or self.nodes_query)
        ):
            raise ValueError("give served_query with nodes_query, or per_node_query")
        return self


@dataclass(frozen=True)
class CapacityEstimate:
    profile: float
    measured: float | None
    """req/s one node serves under load; None when the window had too few samples."""
    samples: int
    busy_gate: bool
    """Measured on busy samples scaled to a full GPU (both directions are evidence)."""

    @property
    def drift(self) -> float | None:
        return None if self.measured is None else self.measured / self.profile - 1

    def drifted(self, tolerance: float) -> bool:
        drift = self.drift
        if drift is None or abs(drift) <= tolerance:
            return False
        return self.busy_gate or drift > 0

    def within(self, tolerance: float) -> bool:
        """Measured within the tolerance of the profile. Not the same as not drifted:
        without a utilization query a reading below the profile is no evidence (an idle
        fleet serves little), so it neither drifts nor says the capacity came back."""
        drift = self.drift
        return drift is not None and abs(drift) <= tolerance

    def describe(self) -> str:
        if self.measured is None:
            return f"{self.samples} samples under load: too few to measure capacity"
        how = "busy samples, scaled to a full GPU" if self.busy_gate else "the busiest samples"
        return (
            f"one node serves {self.measured:.2f} req/s under load ({how}, {self.samples} "
            f"samples), the profile says {self.profile:.2f} ({self.drift:+.0%})"
        )


def per_node_series(served: pd.Series, nodes: pd.Series) -> pd.Series:
    """Served req/s over ready nodes at the times both have, skipping times with none."""
    both = pd.concat([served, nodes], axis=1, join="inner").dropna()
    both = both[both.iloc[:, 1] > 0]
    return both.iloc[:, 0] / both.iloc[:, 1]


def estimate(
    per_node: pd.Series, utilization: pd.Series | None, check: CapacityCheck, profile: float
) -> CapacityEstimate:
    if utilization is not None:
        _require_percent(utilization)
        both = pd.concat([per_node, utilization], axis=1, join="inner").dropna()
        busy = both[both.iloc[:, 1] >= check.busy_above]
        values = (busy.iloc[:, 0] * 100 / busy.iloc[:, 1]).to_numpy(dtype=float)
        measured = float(np.median(values)) if len(values) >= check.min_samples else None
        return CapacityEstimate(profile, measured, len(values), busy_gate=True)
    values = per_node.dropna().to_numpy(dtype=float)
    enough = len(values) >= check.min_samples
    measured = float(np.quantile(values, 0.95)) if enough else None
    return CapacityEstimate(profile, measured, len(values), busy_gate=False)


def _require_percent(utilization: pd.Series) -> None:
    """A sample outside 0-100 % is a query mistake (often a sum over GPUs where avg was
    meant), which would pass a quiet minute's sum off as a busy GPU: refuse the window."""
    outside = utilization[(utilization < 0) | (utilization > 100)]
    if not outside.empty:
        at = f"{outside.index[0]:%Y-%m-%d %H:%M:%SZ}"
        raise ValueError(
            f"utilization_query gave {outside.iloc[0]:g} % at {at}, outside 0-100 % "
            "(the query must give percent: often a sum where avg was meant)"
        )


def sizing_rps(found: CapacityEstimate, check: CapacityCheck) -> tuple[float, str | None]:
    """The per-node req/s to size with, and the reason when it is not the profile's."""
    if not (check.use_measured and found.drifted(check.tolerance)):
        return found.profile, None
    assert found.measured is not None
    low, high = found.profile * check.measured_min, found.profile * check.measured_max
    used = min(max(found.measured, low), high)
    bounded = "" if used == found.measured else f", bounded to {used:.2f}"
    return used, (
        f"capacity: {found.describe()}; sizing with the measured {used:.2f} req/s per "
        f"node{bounded} (capacity_check.use_measured)"
    )
