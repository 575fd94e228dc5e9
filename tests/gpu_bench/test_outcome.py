"""Which refusal a sweep without a profile ends in, and the profile's rounded figures."""

from __future__ import annotations

from datetime import UTC, datetime

from gpu_bench.loadgen import RateMeasurement
from gpu_bench.outcome import (
    EXIT_GENERATOR,
    EXIT_MODEL_FAILED,
    EXIT_NO_RATE,
    EXIT_TARGET_IMPOSSIBLE,
    refusal,
    to_profile,
)
from gpu_bench.sweep_models import ConfigResult, SweepResult, SweepSettings
from gpu_bench.workers import MODEL_ERROR, OUT_OF_MEMORY


def sweep(*results: ConfigResult) -> SweepResult:
    return SweepResult(settings=SweepSettings(model="m:f"), results=list(results))


def config(status: str, **fields: object) -> ConfigResult:
    return ConfigResult(workers=1, batch=1, status=status, **fields)  # type: ignore[arg-type]


def test_refusals_have_distinct_codes() -> None:
    failed = config("infeasible", reason="model_error: boom", failure_kind=MODEL_ERROR)
    assert refusal(sweep(failed)).exit_code == EXIT_MODEL_FAILED  # type: ignore[union-attr]
    impossible = config("impossible", reason="latency target 0.01s is below ... 0.0205s")
    answer = refusal(sweep(impossible))
    assert answer is not None and answer.exit_code == EXIT_TARGET_IMPOSSIBLE
    assert "0.0205s" in answer.message
    lagging = config("no_rate", generator_limited=True, refused=3)
    assert refusal(sweep(lagging)).exit_code == EXIT_GENERATOR  # type: ignore[union-attr]
    slow = config("no_rate", reason="no rate held the target 0.5s")
    assert refusal(sweep(slow)).exit_code == EXIT_NO_RATE  # type: ignore[union-attr]
    memory = config("infeasible", reason="out_of_memory: x", failure_kind=OUT_OF_MEMORY)
    assert refusal(sweep(memory)).exit_code == EXIT_NO_RATE  # type: ignore[union-attr]
    assert refusal(sweep(config("ok", rate_rps=10.0))) is None


def measurement(
    rate: float, late_send_share: float = 0.01, overloaded: bool = False
) -> RateMeasurement:
    return RateMeasurement(
        rate_rps=rate, passed=not overloaded, refused=False, reason="ok", measured_s=10.0,
        requests=400, overloaded=overloaded,
        late_share=0.01, throughput_rps=rate, served_share=1.0, p50_s=0.0731234,
        p95_s=0.1491234, p99_s=0.16198, queue_p50_s=0.05, compute_p50_s=0.0209, mean_batch=1.0,
        late_send_share=late_send_share,
    )  # fmt: skip


def test_profile_records_spread_generator_health_and_start_up_rounded() -> None:
    chosen = config(
        "ok", rate_rps=42.04567, ceiling_rps=43.51234, startup_s=[6.61234, 7.1, 9.9],
        probes=[
            measurement(42.04567, 0.012345), measurement(43.5, 0.02),
            measurement(60.0, 0.3, overloaded=True),  # its lagging sends decided nothing
        ],
        refused=1,
        repeats=[measurement(42.04567)],
    )  # fmt: skip
    profile = to_profile(sweep(chosen), "cpu", "gpu-bench run", datetime(2026, 1, 1, tzinfo=UTC))
    assert profile.per_gpu_rps == 42.0 and profile.per_node_rps == 42.0
    assert profile.rate_ceiling_rps == 43.5 and profile.rate_spread == 0.035
    assert profile.latency_p95_s == 0.149 and profile.latency_p99_s == 0.162
    assert profile.generator_late_send_share == 0.02 and profile.generator_refused == 1
    assert profile.startup_p50_s == 7.1 and profile.startup_p90_s == 9.9
