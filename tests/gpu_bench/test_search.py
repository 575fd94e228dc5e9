"""Rate search by bracketing and bisection, and the sweep planner."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpu_bench.search import SearchSettings, plan_sweep, search_max_rate


def capacity(limit: float) -> Callable[[float], bool]:
    return lambda rate: rate <= limit


@pytest.mark.parametrize("start", [1.0, 37.0, 500.0, 10_000.0])
def test_finds_the_limit_within_precision(start: float) -> None:
    result = search_max_rate(capacity(137.0), SearchSettings(start_rps=start, precision=0.05))
    assert result.best_rps is not None and result.ceiling_rps is not None
    assert result.best_rps <= 137.0 < result.ceiling_rps
    assert (result.ceiling_rps - result.best_rps) / result.best_rps <= 0.05
    assert result.stopped_by == "converged"


def test_bisection_needs_few_probes_compared_to_a_linear_sweep() -> None:
    result = search_max_rate(capacity(1000.0), SearchSettings(start_rps=1.0, precision=0.05))
    # 10 doublings to bracket, then about 5 halvings of the bracket.
    assert len(result.probes) <= 16
    rates = [rate for rate, _ in result.probes]
    assert rates[:3] == [1.0, 2.0, 4.0]


def test_bracket_from_above_halves_then_bisects() -> None:
    result = search_max_rate(capacity(30.0), SearchSettings(start_rps=100.0, precision=0.05))
    assert [rate for rate, _ in result.probes][:3] == [100.0, 50.0, 25.0]
    assert result.best_rps is not None and 28.5 <= result.best_rps <= 30.0


def test_nothing_passes_stops_at_min_rate() -> None:
    result = search_max_rate(lambda _: False, SearchSettings(start_rps=1.0, min_rps=0.1))
    assert result.best_rps is None
    assert result.stopped_by == "min_rps"


def test_everything_passes_stops_at_max_rate() -> None:
    result = search_max_rate(lambda _: True, SearchSettings(start_rps=1.0, max_rps=64.0))
    assert result.best_rps == 64.0
    assert result.stopped_by == "max_rps"


def test_probe_budget_is_respected() -> None:
    result = search_max_rate(capacity(1e5), SearchSettings(start_rps=1.0, max_probes=5))
    assert len(result.probes) == 5
    assert result.stopped_by == "max_probes"
    assert result.best_rps == 16.0


def test_planner_walks_workers_then_batches() -> None:
    assert plan_sweep([1, 2], [1, 4], {}).next_config == (1, 1)
    assert plan_sweep([1, 2], [1, 4], {(1, 1): 10.0}).next_config == (2, 1)
    step = plan_sweep([1, 2], [1, 4], {(1, 1): 10.0, (2, 1): 20.0})
    assert step.next_config == (1, 4)


def test_planner_stops_growing_workers_below_five_percent_gain() -> None:
    done = {(1, 1): 100.0, (2, 1): 104.0}
    step = plan_sweep([1, 2, 4, 8], [1], done)
    assert step.next_config is None
    assert set(step.skipped) == {(4, 1), (8, 1)}
    assert "gained < 5%" in step.skipped[(4, 1)]


def test_planner_stops_growing_batch_when_best_does_not_gain() -> None:
    done = {(1, 1): 100.0, (2, 1): 200.0, (1, 4): 150.0, (2, 4): 203.0}
    step = plan_sweep([1, 2], [1, 4, 16], done)
    assert step.next_config is None
    assert set(step.skipped) == {(1, 16), (2, 16)}


def test_planner_skips_larger_configs_after_infeasible() -> None:
    done = {(1, 1): 100.0, (2, 1): None}
    step = plan_sweep([1, 2, 4], [1, 4], done)
    assert step.skipped[(4, 1)].startswith("2 workers infeasible")
    assert step.next_config == (1, 4)
    all_infeasible = plan_sweep([1, 2], [1, 4, 16], {**done, (1, 4): None})
    assert all_infeasible.next_config is None
    assert (1, 16) in all_infeasible.skipped


def test_planner_zero_rates_do_not_grow() -> None:
    step = plan_sweep([1, 2, 4], [1], {(1, 1): 0.0, (2, 1): 0.0})
    assert step.next_config is None


def test_chosen_config_is_the_smallest_within_the_gain_threshold() -> None:
    from gpu_bench.sweep_models import ConfigResult, SweepResult, SweepSettings

    def result(workers: int, batch: int, rate: float | None, status: str = "ok") -> ConfigResult:
        return ConfigResult(workers=workers, batch=batch, status=status, rate_rps=rate)

    sweep = SweepResult(
        settings=SweepSettings(model="m:f"),
        results=[
            result(1, 1, 218.0),
            result(2, 1, 314.0),
            result(4, 1, 324.5),
            result(2, 4, 227.0),
            result(8, 1, None, "infeasible"),
        ],
    )
    chosen = sweep.chosen()
    assert chosen is not None and (chosen.workers, chosen.batch) == (2, 1)
    sweep.results.append(result(4, 4, 400.0))
    assert sweep.chosen() is sweep.results[-1]
    assert SweepResult(settings=SweepSettings(model="m:f")).chosen() is None
