"""The sweep's search of one configuration, on a stand-in prober (no model, no process)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpu_bench.loadgen import RateMeasurement
from gpu_bench.sweep import ConfigResult, SweepSettings, _over_capacity, _search


class _FirstTimeOnly:
    """Passes a rate under 50 req/s the first time it is probed, fails every repeat of it:
    the repeats never confirm, so the sweep backs off round after round."""

    def __init__(self) -> None:
        self.probes: list[RateMeasurement] = []

    def __call__(self, rate: float) -> RateMeasurement:
        assert rate > 0, f"probed {rate} req/s"
        measurement = _over_capacity(rate, 100.0)
        measurement.passed = rate < 50 and all(p.rate_rps != rate for p in self.probes)
        self.probes.append(measurement)
        return measurement


@pytest.mark.parametrize("precision", [0.3, 0.5, 0.6, 1.0])
def test_backing_off_from_unconfirmed_repeats_never_probes_a_rate_of_zero_or_less(
    precision: float,
) -> None:
    """At --precision 0.5 the backed-off rate was 0 (a ZeroDivisionError in the Poisson
    schedule), above it negative (a schedule running backwards: sends without end)."""
    settings = SweepSettings(model="stand-in", repeats=3, precision=precision)
    result = ConfigResult(workers=1, batch=1, status="no_rate")
    probe = _FirstTimeOnly()
    _search(settings, SimpleNamespace(capacity_rps=100.0), probe, 40.0, result)  # type: ignore[arg-type]
    assert result.status == "no_rate" and "did not confirm" in result.reason
    assert min(p.rate_rps for p in probe.probes) > 0
