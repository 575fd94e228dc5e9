"""Which predictor setting a pool's own past recommends (pure comparisons)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autoscaler.backtest.recommend import (
    HINDSIGHT,
    Candidate,
    config_lines,
    hindsight_note,
    recommend,
    recommendation_json,
    variant_pools,
)
from autoscaler.config.schema import Pool


def _candidate(policy: str, node_hours: float, meets: bool, **kw: Any) -> Candidate:
    margin = kw.pop("margin", "loop")
    return Candidate(margin, policy, node_hours, 0.005 if meets else 0.02, meets, **kw)


def _pool(**predictor: Any) -> Pool:
    return Pool.model_validate(
        {
            "name": "p",
            "backend": {"kind": "simulated"},
            "demand": {"query": "q"},
            "capacity": {"per_node_rps": 1.0},
            "max_nodes": 10,
            "predictor": {"kind": "seasonal", "params": {"service_target": 0.05}, **predictor},
        }
    )


def test_the_cheapest_meeting_variant_beats_a_dearer_configured_pool() -> None:
    configured = _candidate("forecast", 100.0, True, margin="band", configured=True)
    others = [_candidate("forecast", 90.0, True), _candidate("auto", 80.0, True)]
    assert recommend(configured, others) == others[1]


def test_a_variant_missing_the_target_is_never_recommended() -> None:
    configured = _candidate("forecast", 100.0, True, margin="band", configured=True)
    assert recommend(configured, [_candidate("auto", 50.0, False)]) is None


def test_a_tie_or_a_dearer_variant_is_not_recommended() -> None:
    configured = _candidate("auto", 100.0, True, configured=True)
    assert recommend(configured, [_candidate("forecast", 100.0, True)]) is None
    assert recommend(configured, [_candidate("forecast", 120.0, True)]) is None


def test_a_configured_pool_that_misses_takes_any_variant_that_meets() -> None:
    configured = _candidate("forecast", 50.0, False, margin="band", configured=True)
    dearer = _candidate("auto", 70.0, True)
    assert recommend(configured, [dearer]) == dearer
    document = recommendation_json(configured, [dearer], dearer, HINDSIGHT)
    assert document["config_lines"] == "predictor:\n  margin: loop\n  policy: auto"
    assert [c["configured"] for c in document["candidates"]] == [True, False]
    assert document["note"] == HINDSIGHT


def test_a_recommendation_measured_on_a_settled_loop_says_a_switched_pool_starts_cold() -> None:
    assert hindsight_note(timedelta(hours=1)) == HINDSIGHT  # a daemon just started
    settled = hindsight_note(timedelta(days=7))
    assert settled.startswith(HINDSIGHT)
    assert "had run 168h before scoring (--burn-in): a pool switched to it starts cold" in settled


def test_variants_keep_the_rest_of_the_pool_and_skip_its_own_setting() -> None:
    pool = _pool(margin="loop", policy="auto")
    variants = variant_pools(pool)
    assert [(v.predictor.margin, v.predictor.policy) for v in variants] == [
        ("band", "forecast"),
        ("widen", "auto"),
    ]
    for variant in variants:
        assert variant.predictor.params == {"service_target": 0.05}
        assert variant.model_dump(exclude={"predictor"}) == pool.model_dump(exclude={"predictor"})
    default = variant_pools(_pool())  # margin: widen, policy: auto
    assert [(v.predictor.margin, v.predictor.policy) for v in default] == [
        ("band", "forecast"),
        ("loop", "auto"),
    ]


def test_config_lines_name_margin_and_policy() -> None:
    assert (
        config_lines(_candidate("auto", 1.0, True)) == "predictor:\n  margin: loop\n  policy: auto"
    )
