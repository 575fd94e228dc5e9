"""The tail-share test that decides a probe, the probe verdict and the latency histogram."""

from __future__ import annotations

import math
import random

import pytest

from gpu_bench.histogram import LatencyHistogram
from gpu_bench.stability import (
    TailDecision,
    TailRule,
    judge_probe,
    relative_spread,
    tail_verdict,
)

RULE = TailRule(allowed_share=0.05, block_requests=40, min_blocks=5, max_requests=4000)


def independent(share: float, count: int, seed: int = 0) -> list[bool]:
    rng = random.Random(seed)
    return [rng.random() < share for _ in range(count)]


def test_no_decision_before_enough_requests() -> None:
    assert tail_verdict([False] * 199, RULE).decision is TailDecision.CONTINUE
    assert tail_verdict([False] * 200, RULE).decision is TailDecision.PASS
    longer = TailRule(min_requests=500)
    assert tail_verdict([False] * 480, longer).decision is TailDecision.CONTINUE
    assert tail_verdict([False] * 520, longer).decision is TailDecision.PASS


def test_far_from_the_allowed_share_decides_early() -> None:
    assert tail_verdict(independent(0.01, 400), RULE).decision is TailDecision.PASS
    assert tail_verdict(independent(0.30, 200), RULE).decision is TailDecision.FAIL


def test_near_the_allowed_share_keeps_measuring_then_the_estimate_decides() -> None:
    near = independent(0.05, 4000, seed=3)
    assert tail_verdict(near[:2000], RULE).decision is TailDecision.CONTINUE
    verdict = tail_verdict(near, RULE)
    assert verdict.decision is not TailDecision.CONTINUE
    assert not verdict.decided
    assert (verdict.decision is TailDecision.PASS) == (verdict.share <= 0.05)


def test_clustered_lateness_widens_the_bound() -> None:
    """The same 2 % late, in one burst (a queue's busy period) instead of spread out."""
    spread = ([True] + [False] * 49) * 40
    bursts = [True] * 40 + [False] * 1960
    spread_verdict = tail_verdict(spread, RULE)
    burst_verdict = tail_verdict(bursts, RULE)
    assert spread_verdict.decision is TailDecision.PASS
    assert burst_verdict.decision is TailDecision.CONTINUE
    assert burst_verdict.high - burst_verdict.low > spread_verdict.high - spread_verdict.low


def test_the_percentile_sets_the_allowed_share() -> None:
    late = independent(0.03, 2000, seed=5)
    assert tail_verdict(late, RULE).decision is TailDecision.PASS
    p99 = TailRule(allowed_share=0.01, block_requests=40, max_requests=4000)
    assert tail_verdict(late, p99).decision is TailDecision.FAIL


def judge(**changes: object):
    fields: dict = {
        "tail": tail_verdict([False] * 400, RULE),
        "overloaded": False,
        "served_share": 1.0,
        "late_send_share": 0.0,
        "percentile": 0.95,
        "latency_target_s": 1.0,
    }
    fields.update(changes)
    return judge_probe(**fields)


def test_probe_verdicts() -> None:
    assert judge().passed
    assert "p95 holds" in judge().reason
    assert not judge(tail=tail_verdict([True] * 400, RULE)).passed
    assert not judge(served_share=0.8).passed
    assert not judge(overloaded=True).passed
    assert "p99" in judge(percentile=0.99).reason


def test_late_generator_refuses_even_a_good_result() -> None:
    verdict = judge(late_send_share=0.2)
    assert not verdict.passed
    assert verdict.refused
    assert "fell behind" in verdict.reason
    overloaded = judge(late_send_share=0.2, overloaded=True)
    assert not overloaded.passed and not overloaded.refused


def test_relative_spread() -> None:
    assert relative_spread([]) == 0.0
    assert relative_spread([1.0, 1.0]) == 0.0
    assert relative_spread([0.9, 1.1]) == pytest.approx(0.2)


def test_histogram_percentiles_within_one_percent_and_never_under() -> None:
    histogram = LatencyHistogram()
    values = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1 s
    histogram.record_all(values)
    for share, exact in ((0.5, 0.5), (0.95, 0.95), (0.99, 0.99)):
        answer = histogram.percentile(share)
        assert exact <= answer <= exact * 1.011
    assert histogram.percentile(1.0) == 1.0
    assert math.isnan(LatencyHistogram().percentile(0.5))


def test_histogram_merge_and_json_round_trip() -> None:
    first, second = LatencyHistogram(), LatencyHistogram()
    first.record_all([0.01] * 90)
    second.record_all([2.0] * 10)
    merged = first.merge(second)
    assert merged.total == 100
    assert merged.percentile(0.9) < 0.011
    assert merged.percentile(0.95) == pytest.approx(2.0, rel=0.011)
    assert LatencyHistogram.from_json(merged.to_json()) == merged
