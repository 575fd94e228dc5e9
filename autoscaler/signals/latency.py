"""Observed latency against the target (e.g. a p95 from histogram_quantile), in seconds.

A guard, not a sizing rule: while the service is slower than promised it asks for
`add_nodes` more than are ready (so it waits for nodes already booting), and otherwise
asks for none, so it never lowers the count. A NaN is a window without requests
(Prometheus's histogram_quantile of no observations is 0/0): nothing was slow, none.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator

from autoscaler.signals.base import BadSignalInput, SignalContext, SignalSettings, require_finite
from common.durations import PositiveDuration, format_duration
from common.settings import MAX_NODES

_SUBSECOND = re.compile(
    r"\b\w+_(?:us|ms|microseconds|milliseconds)(?:_bucket|_sum|_count)?\b"
    r"|\b\w*request_latencies(?:_bucket|_sum|_count)?\b"
)
"""Series in milli- or microseconds: named so (Triton's nv_inference_queue_duration_us, its
nv_inference_first_response_histogram_ms), or Knative's revision_request_latencies."""
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
"""Label values (region="east_us" names no series)."""
_IN_SECONDS = re.compile(r"/\s*(?:1e3|1e6|1000|1000000)\b|\*\s*(?:1e-3|1e-6|0\.001|0\.000001)\b")


class LatencySignal(SignalSettings):
    kind: Literal["latency"]
    target: PositiveDuration = Field(description="the promised latency (e.g. 2s for a p95 of 2 s)")
    add_nodes: int = Field(
        default=1, ge=1, le=MAX_NODES, description="nodes added above ready while slow"
    )

    @field_validator("query")
    @classmethod
    def _seconds(cls, query: str) -> str:
        """1.5 ms read as 1,500 s is always slow: the guard would add a node every tick."""
        found = _SUBSECOND.search(_QUOTED.sub('""', query))
        if found and not _IN_SECONDS.search(query):
            raise ValueError(
                f"reads {found.group()}, in milli- or microseconds, where seconds are "
                "expected: divide it into seconds (/ 1000 or / 1e6)"
            )
        return query

    def count(self, value: float, context: SignalContext) -> tuple[int, str]:
        if math.isnan(value):
            return 0, "latency NaN: no requests in the query's window, nothing slow, asks for none"
        require_finite(value, "latency")
        if value < 0:
            raise BadSignalInput(f"latency is negative ({value:g} s)")
        target_s = self.target.total_seconds()
        seen = f"latency {value:.3g} s, target {format_duration(self.target)}"
        if value <= target_s:
            return 0, f"{seen}: within target, asks for none"
        nodes = max(context.current, context.ready + self.add_nodes)
        return nodes, (
            f"{seen}: slower than promised, {context.ready} ready + {self.add_nodes}"
            + (" (nodes already on the way)" if nodes == context.current > context.ready else "")
        )
