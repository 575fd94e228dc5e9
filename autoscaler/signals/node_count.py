"""Any PromQL that gives the node count directly (rounded up)."""

from __future__ import annotations

import math
from typing import Literal

from autoscaler.signals.base import BadSignalInput, SignalContext, SignalSettings, require_finite


class NodeCountSignal(SignalSettings):
    kind: Literal["node_count"]

    def count(self, value: float, context: SignalContext) -> tuple[int, str]:
        require_finite(value, "node count")
        if value < 0:
            raise BadSignalInput(f"node count is negative ({value:g})")
        nodes = math.ceil(value - 1e-9)
        seen = f"{value + 0.0:.15g}"  # every digit that rounds up (2.0000001 is 3); no -0
        return nodes, f"query gives {seen} nodes" + (
            "" if seen == str(nodes) else f", rounded up to {nodes}"
        )
