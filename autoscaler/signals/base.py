"""What every signal kind shares: its settings, the context it is sized in, its errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import Field

from common.durations import PositiveDuration
from common.settings import PromQL, Strict


class BadSignalInput(ValueError):
    """The signal's value cannot be right (a negative queue, a utilization above 100 %):
    a query or exporter mistake, so nothing is scaled until it is fixed."""


@dataclass(frozen=True)
class SignalContext:
    """What a signal's count may depend on besides its own value, at one tick."""

    current: int
    """The fleet's desired count now."""
    ready: int
    """Nodes serving now (what a utilization or a latency was measured on)."""
    demand_rps: float | None
    """Demand seen now (req/s); None when the demand query failed."""
    per_node_rps: float
    target_utilization: float
    nodes_for: Callable[[float, float, float], int]
    """The one node-count rule (policy.nodes_for): (req/s, per-node req/s, utilization)."""


class SignalSettings(Strict):
    """The fields every signal has; each kind adds its own and its `count`."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="shown in reasons and alerts"
    )
    query: PromQL = Field(description="PromQL giving one series (wrap it in sum/avg/max)")
    hold_for: PositiveDuration = Field(
        default=timedelta(minutes=10),
        description="while the query has no data, its last good count holds this long; "
        "then the fleet is held (never read as zero)",
    )

    def count(self, value: float, context: SignalContext) -> tuple[int, str]:
        """The nodes this signal asks for, and how it got there (raises BadSignalInput)."""
        raise NotImplementedError


def require_finite(value: float, what: str) -> None:
    if not math.isfinite(value):
        raise BadSignalInput(f"{what} is {value} (not a number)")
