"""Whether a probed rate holds the latency target: a sequential test on the tail share.

"p95 <= target" is the same statement as "at most 5 % of requests take longer than the
target", and that share is a count, so its uncertainty is known. Requests are judged in
arrival order as soon as their fate is certain (answered, or older than the target and
still unanswered, which is late whatever happens next). A rate passes when the share's
upper confidence bound is under the allowed share, fails when its lower bound is over it,
and otherwise keeps measuring up to a request budget, where the point estimate decides
(and the probe is marked undecided). Latencies of neighbouring requests are correlated
(they share a queue), so the bound uses batch means over blocks of consecutive requests,
never narrower than the binomial bound at the allowed share. Rates far from the edge
settle after a few hundred requests; only rates near it use the whole budget, so a wrong
call there costs little.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class TailDecision(StrEnum):
    CONTINUE = "continue"
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True)
class TailRule:
    """`allowed_share` is 1 - percentile: 0.05 for a p95 target."""

    allowed_share: float = 0.05
    block_requests: int = 40
    min_blocks: int = 5
    min_requests: int = 0  # no decision before: a queue near saturation forgets slowly
    max_requests: int = 4000
    z: float = 2.0


@dataclass(frozen=True)
class TailVerdict:
    decision: TailDecision
    share: float
    low: float
    high: float
    requests: int
    decided: bool  # False when the budget ran out and the point estimate decided


def tail_verdict(late: Sequence[bool], rule: TailRule) -> TailVerdict:
    """Judge requests (in arrival order, True = over the target) against the allowed share."""
    blocks = len(late) // rule.block_requests
    used = blocks * rule.block_requests
    if blocks < rule.min_blocks or used < min(rule.min_requests, rule.max_requests):
        return TailVerdict(TailDecision.CONTINUE, math.nan, 0.0, 1.0, used, False)
    shares = [
        sum(late[i * rule.block_requests : (i + 1) * rule.block_requests]) / rule.block_requests
        for i in range(blocks)
    ]
    share = statistics.fmean(shares)
    allowed = rule.allowed_share
    spread = max(
        statistics.stdev(shares) / math.sqrt(blocks),
        math.sqrt(allowed * (1 - allowed) / used),
    )
    low, high = max(0.0, share - rule.z * spread), min(1.0, share + rule.z * spread)
    if high < allowed:
        return TailVerdict(TailDecision.PASS, share, low, high, used, True)
    if low > allowed:
        return TailVerdict(TailDecision.FAIL, share, low, high, used, True)
    if used + rule.block_requests > rule.max_requests:
        decision = TailDecision.PASS if share <= allowed else TailDecision.FAIL
        return TailVerdict(decision, share, low, high, used, False)
    return TailVerdict(TailDecision.CONTINUE, share, low, high, used, False)


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / mean; 0 for an empty or all-zero series."""
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    if mean == 0:
        return 0.0 if max(values) == min(values) else math.inf
    return (max(values) - min(values)) / mean


@dataclass(frozen=True)
class ProbeVerdict:
    passed: bool
    refused: bool
    reason: str


def judge_probe(
    *,
    tail: TailVerdict,
    overloaded: bool,
    served_share: float,
    late_send_share: float,
    percentile: float,
    latency_target_s: float,
    max_late_send_share: float = 0.05,
    min_served_share: float = 0.95,
) -> ProbeVerdict:
    """Does one probed rate hold the latency target? A lagging generator voids the result."""
    if overloaded:  # a backlog twice the target deep is not made by sends a few ms late
        return ProbeVerdict(False, False, "overloaded: a request waited past twice the target")
    if late_send_share > max_late_send_share:
        return ProbeVerdict(
            False, True, f"load generator fell behind on {late_send_share:.0%} of sends; refused"
        )
    name = f"p{percentile * 100:g}"
    if tail.requests == 0:
        return ProbeVerdict(False, False, "no request completed")
    over = (
        f"{tail.share:.1%} over {latency_target_s:g}s "
        f"(bound {tail.low:.1%}..{tail.high:.1%}, {tail.requests} requests"
        + ("" if tail.decided else ", undecided at the budget")
        + ")"
    )
    if tail.decision is not TailDecision.PASS:
        return ProbeVerdict(False, False, f"{name} over target: {over}")
    if served_share < min_served_share:
        return ProbeVerdict(False, False, f"served only {served_share:.0%} of arrivals")
    return ProbeVerdict(True, False, f"{name} holds: {over}")
