"""Which predictor setting a pool's own past recommends (pure comparisons)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml

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
            "predictor": {"kind": "seasonal", "params": {"service_target": 0.05}} | predictor,
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
    predictor = _pool(margin="band").predictor
    document = recommendation_json(configured, [dearer], dearer, HINDSIGHT, predictor)
    assert document["config_lines"] == config_lines(dearer, predictor)
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


def test_config_lines_replace_the_pools_predictor_block_keeping_kind_and_params() -> None:
    """Pasted in place of the pool's own `predictor:` block, the lines validate and change
    only margin and policy (a block of those two alone lost kind and params, or beside the
    pool's own block was a duplicate key that `validate` refuses)."""
    pool = _pool(margin="band", params={"service_target": 0.05, "timezone": "Europe/Berlin"})
    lines = config_lines(_candidate("auto", 1.0, True), pool.predictor)
    pasted = {**pool.model_dump(exclude={"predictor"}), **yaml.safe_load(lines)}
    predictor = Pool.model_validate(pasted).predictor
    assert (predictor.margin, predictor.policy) == ("loop", "auto")
    assert predictor.kind == "seasonal"
    assert predictor.params == {"service_target": 0.05, "timezone": "Europe/Berlin"}
