"""GPU utilization (e.g. DCGM's DCGM_FI_DEV_GPU_UTIL averaged over the pool), in percent.

Target tracking as the Kubernetes HPA does it: ready nodes × observed / target, and no
change while the ratio is within the tolerance of 1.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator

from autoscaler.signals.base import BadSignalInput, SignalContext, SignalSettings, require_finite

_FRACTIONS = re.compile(
    r"\b(DCGM_FI_PROF_\w+_ACTIVE|DCGM_FI_PROF_SM_OCCUPANCY|vllm:(?:gpu|kv)_cache_usage_perc)\b"
)
"""Exporter series that are ratios 0-1 (DCGM's profiling fields; vLLM's cache usage,
despite its name), where DCGM_FI_DEV_GPU_UTIL is percent."""
_TIMES_100 = re.compile(r"\*\s*100(?:\.0*)?\b|\b100(?:\.0*)?\s*\*")


def percent_query(query: str) -> str:
    """Refuse a query that reads a 0-1 ratio as percent: no value could tell a GPU at 95 %
    read as 0.95 % from an idle one, so it would be 100 times low, silently."""
    found = _FRACTIONS.search(query)
    if found and not _TIMES_100.search(query):
        raise ValueError(
            f"reads {found.group()}, a ratio 0-1, where percent (0-100) is expected: "
            "multiply it by 100 (100 * avg(...))"
        )
    return query


def percent_not_ratio(value: float) -> float:
    """Refuse a percent setting written as a 0-1 ratio (`target: 0.7` for 70 %): read as
    0.7 %, a GPU at 60 % asked for 86 times the ready nodes, the fleet at max_nodes."""
    if value <= 1:
        raise ValueError(
            f"is in percent (0-100): {value:g} is {value:g} %, not {value * 100:g} %; "
            f"write {value * 100:g}"
        )
    return value


class GpuUtilizationSignal(SignalSettings):
    kind: Literal["gpu_utilization"]
    target: float = Field(gt=0, le=100, description="utilization to track, in percent")
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="no change while |observed/target - 1| is within"
    )

    @field_validator("query")
    @classmethod
    def _percent(cls, query: str) -> str:
        return percent_query(query)

    @field_validator("target")
    @classmethod
    def _target_in_percent(cls, target: float) -> float:
        return percent_not_ratio(target)

    def count(self, value: float, context: SignalContext) -> tuple[int, str]:
        require_finite(value, "GPU utilization")
        if not 0 <= value <= 100:
            raise BadSignalInput(
                f"GPU utilization is {value:g} %, outside 0-100 % (the query must give percent)"
            )
        seen = (
            f"GPU utilization {value:.1f} % on {context.ready} ready nodes, "
            f"target {self.target:g} %"
        )
        ratio = value / self.target
        # The slack: 77 % on a 70 % target is exactly 10 % off, but 77/70 - 1 is a hair over.
        if abs(ratio - 1) <= self.tolerance + 1e-9:
            return context.current, f"{seen}: within {self.tolerance:.0%}, keep {context.current}"
        nodes = math.ceil(context.ready * ratio - 1e-9)
        return nodes, f"{seen}: {context.ready} × {value:.1f}/{self.target:g}"
