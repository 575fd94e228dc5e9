"""Queue depth (e.g. RabbitMQ's ready messages): drain the backlog within a deadline.

The nodes arrivals need (demand now, at the pool's target utilization), plus the nodes
that work the backlog off within `drain_within` at the full per-node rate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from autoscaler.signals.base import BadSignalInput, SignalContext, SignalSettings, require_finite
from common.durations import PositiveDuration, format_duration


class QueueDepthSignal(SignalSettings):
    kind: Literal["queue_depth"]
    drain_within: PositiveDuration = Field(
        description="the backlog is worked off within this (the latency target)"
    )
    per_node_rate: float | None = Field(
        default=None,
        gt=0,
        description="messages/s one node works off; default: the pool's per-node req/s",
    )

    def count(self, value: float, context: SignalContext) -> tuple[int, str]:
        require_finite(value, "queue depth")
        if value < 0:
            raise BadSignalInput(f"queue depth is negative ({value:g})")
        rate = self.per_node_rate or context.per_node_rps
        drain_rps = value / self.drain_within.total_seconds()
        drain = context.nodes_for(drain_rps, rate, 1.0)
        if context.demand_rps is None:
            return drain, (
                f"{value:,.0f} queued: {drain} nodes drain it within "
                f"{format_duration(self.drain_within)} (arrivals unknown: demand data missing)"
            )
        arrivals = context.nodes_for(
            context.demand_rps, context.per_node_rps, context.target_utilization
        )
        return arrivals + drain, (
            f"{value:,.0f} queued: {drain} nodes drain it within "
            f"{format_duration(self.drain_within)} at {rate:g}/s per node, on top of "
            f"{arrivals} for arrivals ({context.demand_rps:,.1f} req/s)"
        )
