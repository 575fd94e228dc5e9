"""The stability rule, the probe verdict and the latency histogram."""

from __future__ import annotations

import math

import pytest

from gpu_bench.histogram import LatencyHistogram
from gpu_bench.stability import (
    StabilityRule,
    WindowStats,
    WindowVerdict,
    is_stable,
    judge_probe,
    relative_spread,
    window_verdict,
)

RULE = StabilityRule(tolerance=0.10, windows=3, max_windows=10)


def window(served: int = 100, p95: float = 0.5, arrivals: int = 100, oldest: float = 0.0):
    return WindowStats(
        duration_s=1.0,
        offered_rps=100.0,
        arrivals=arrivals,
        completions=served,
        p95_s=p95,
        oldest_outstanding_s=oldest,
    )


def test_three_agreeing_windows_are_stable() -> None:
    assert is_stable([window(p95=0.50), window(p95=0.52), window(p95=0.54)], RULE)


def test_fewer_than_three_windows_never_stable() -> None:
    assert not is_stable([window(), window()], RULE)


def test_p95_spread_over_ten_percent_is_unstable() -> None:
    assert not is_stable([window(p95=0.50), window(p95=0.52), window(p95=0.60)], RULE)


def test_only_the_last_three_windows_count() -> None:
    assert is_stable([window(p95=3.0), window(p95=0.5), window(p95=0.5), window(p95=0.5)], RULE)


def test_served_rate_spread_is_unstable() -> None:
    assert not is_stable([window(served=100), window(served=90), window(served=80)], RULE)


def test_arrival_noise_alone_is_not_instability() -> None:
    """A window with 80 arrivals all served is as settled as one with 120 all served."""
    windows = [window(80, arrivals=80), window(120, arrivals=120), window(100, arrivals=100)]
    assert is_stable(windows, RULE)


def test_absolute_p95_floor_absorbs_millisecond_noise() -> None:
    noisy = [window(p95=0.010), window(p95=0.015), window(p95=0.012)]
    assert not is_stable(noisy, RULE)
    assert is_stable(noisy, StabilityRule(p95_floor_s=0.01))


def test_window_verdicts() -> None:
    assert window_verdict([window()], RULE, 1.0) is WindowVerdict.CONTINUE
    assert window_verdict([window()] * 3, RULE, 1.0) is WindowVerdict.STABLE
    drifting = [window(p95=0.1 * (1.3**i)) for i in range(10)]
    assert window_verdict(drifting[:9], RULE, 10.0) is WindowVerdict.CONTINUE
    assert window_verdict(drifting, RULE, 10.0) is WindowVerdict.UNSTABLE
    assert window_verdict([window(p95=2.5)], RULE, 1.0) is WindowVerdict.OVERLOADED
    assert window_verdict([window(oldest=2.5)], RULE, 1.0) is WindowVerdict.OVERLOADED


def judge(**changes: object):
    fields: dict = {
        "verdict": WindowVerdict.STABLE,
        "p95_s": 0.5,
        "served_share": 1.0,
        "late_share": 0.0,
        "latency_target_s": 1.0,
    }
    fields.update(changes)
    return judge_probe(**fields)


def test_probe_verdicts() -> None:
    assert judge().passed
    assert not judge(p95_s=1.2).passed
    assert not judge(served_share=0.8).passed
    assert not judge(verdict=WindowVerdict.UNSTABLE).passed
    assert not judge(verdict=WindowVerdict.OVERLOADED).passed
    assert not judge(p95_s=math.nan).passed


def test_late_generator_refuses_even_a_good_result() -> None:
    verdict = judge(late_share=0.2)
    assert not verdict.passed
    assert verdict.refused
    assert "fell behind" in verdict.reason


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
