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
        return nodes, f"query gives {value:g} nodes"
