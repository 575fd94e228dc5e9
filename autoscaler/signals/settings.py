"""The config's union of signal kinds: adding a kind is a module and one line here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from autoscaler.signals.gpu_utilization import GpuUtilizationSignal
from autoscaler.signals.latency import LatencySignal
from autoscaler.signals.node_count import NodeCountSignal
from autoscaler.signals.queue_depth import QueueDepthSignal

SignalConfig = Annotated[
    QueueDepthSignal | GpuUtilizationSignal | LatencySignal | NodeCountSignal,
    Field(discriminator="kind"),
]
