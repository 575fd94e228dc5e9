"""When a measurement has settled, and whether a probed rate passes: pure rules.

Throughput stability is judged on the served rate, `offered * completions / arrivals`,
so the Poisson noise of the arrivals themselves (±7% in a 200-request window) is not
mistaken for an unsettled system; a growing backlog still shows as a falling served rate.
p95 stability allows an absolute floor, because at millisecond latencies a 10% spread is
scheduler noise that no latency target cares about.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class WindowStats:
    """One measurement window, counted by completion time."""

    duration_s: float
    offered_rps: float
    arrivals: int
    completions: int
    p95_s: float
    oldest_outstanding_s: float = 0.0

    @property
    def throughput_rps(self) -> float:
        return self.completions / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def served_share(self) -> float:
        if self.arrivals == 0:
            return 1.0 if self.completions == 0 else math.inf
        return self.completions / self.arrivals

    @property
    def served_rps(self) -> float:
        return self.offered_rps * self.served_share


@dataclass(frozen=True)
class StabilityRule:
    tolerance: float = 0.10
    windows: int = 3
    max_windows: int = 10
    p95_floor_s: float = 0.0
    overload_factor: float = 2.0


class WindowVerdict(StrEnum):
    CONTINUE = "continue"
    STABLE = "stable"
    UNSTABLE = "unstable"
    OVERLOADED = "overloaded"


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / mean; 0 for an empty or all-zero series."""
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    if mean == 0:
        return 0.0 if max(values) == min(values) else math.inf
    return (max(values) - min(values)) / mean


def is_stable(windows: Sequence[WindowStats], rule: StabilityRule) -> bool:
    """The last `rule.windows` windows agree within the tolerance on throughput and p95."""
    if len(windows) < rule.windows:
        return False
    recent = windows[-rule.windows :]
    p95s = [w.p95_s for w in recent]
    if any(math.isnan(p) for p in p95s):
        return False
    throughput_ok = relative_spread([w.served_rps for w in recent]) <= rule.tolerance
    p95_ok = relative_spread(p95s) <= rule.tolerance or max(p95s) - min(p95s) <= rule.p95_floor_s
    return throughput_ok and p95_ok


def window_verdict(
    windows: Sequence[WindowStats], rule: StabilityRule, latency_target_s: float
) -> WindowVerdict:
    """What to do after the latest window: keep measuring, or stop and why."""
    if not windows:
        return WindowVerdict.CONTINUE
    latest = windows[-1]
    limit = rule.overload_factor * latency_target_s
    if latest.oldest_outstanding_s > limit or (
        not math.isnan(latest.p95_s) and latest.p95_s > limit
    ):
        return WindowVerdict.OVERLOADED
    if is_stable(windows, rule):
        return WindowVerdict.STABLE
    if len(windows) >= rule.max_windows:
        return WindowVerdict.UNSTABLE
    return WindowVerdict.CONTINUE


@dataclass(frozen=True)
class ProbeVerdict:
    passed: bool
    refused: bool
    reason: str


def judge_probe(
    *,
    verdict: WindowVerdict,
    p95_s: float,
    served_share: float,
    late_share: float,
    latency_target_s: float,
    max_late_share: float = 0.05,
    min_served_share: float = 0.95,
) -> ProbeVerdict:
    """Does one probed rate hold the latency target? A lagging generator voids the result."""
    if late_share > max_late_share:
        return ProbeVerdict(
            False, True, f"load generator fell behind on {late_share:.0%} of sends; refused"
        )
    if verdict is WindowVerdict.OVERLOADED:
        return ProbeVerdict(False, False, "overloaded: latency ran past twice the target")
    if math.isnan(p95_s):
        return ProbeVerdict(False, False, "no request completed")
    if p95_s > latency_target_s:
        return ProbeVerdict(False, False, f"p95 {p95_s:.3f}s over target {latency_target_s}s")
    if served_share < min_served_share:
        return ProbeVerdict(False, False, f"served only {served_share:.0%} of arrivals")
    if verdict is WindowVerdict.UNSTABLE:
        return ProbeVerdict(False, False, "did not settle within the window limit")
    return ProbeVerdict(True, False, "ok")
