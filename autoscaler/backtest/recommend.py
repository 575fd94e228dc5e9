"""Which of a pool's predictor settings its own past would have served cheapest.

`autoscaler backtest --config FILE --pool P` replays the pool as configured and then the
same pool with other `predictor.margin`/`predictor.policy` settings (VARIANTS), each a
full replay through the same run_backtest/engine code. Here the results are compared:
a variant is recommended only when it meets the service target at fewer node-hours than
the configured pool (or the configured pool misses the target and the variant meets it).
It is hindsight on that span, not a guarantee, and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml
from pydantic import ValidationError

from autoscaler.backtest.baselines import PolicyResult
from autoscaler.backtest.engine import DEFAULT_BURN_IN
from autoscaler.config.schema import Pool, PredictorConfig
from common.durations import format_duration

VARIANTS: tuple[tuple[str, str], ...] = (
    ("band", "forecast"),
    ("widen", "auto"),
    ("loop", "auto"),
)
"""(margin, policy) pairs replayed beside the pool's own (autoscaler.portfolio)."""

HINDSIGHT = (
    "measured on this pool's own past (hindsight on that span), not a guarantee of what "
    "the next weeks will need"
)


def hindsight_note(burn_in: timedelta) -> str:
    """HINDSIGHT, and where the policies ran longer than a daemon just started before
    scoring (`--burn-in`), that a pool switched to the setting starts cold."""
    if burn_in == DEFAULT_BURN_IN:
        return HINDSIGHT
    return (
        f"{HINDSIGHT}; measured on a loop that had run {format_duration(burn_in)} before "
        "scoring (--burn-in): a pool switched to it starts cold"
    )


@dataclass(frozen=True)
class Candidate:
    """One predictor setting of the pool, replayed over the same trace."""

    margin: str
    policy: str
    node_hours: float
    late_share: float
    meets: bool
    configured: bool = False

    @classmethod
    def of(cls, pool: Pool, result: PolicyResult, *, configured: bool = False) -> Candidate:
        return cls(
            pool.predictor.margin,
            pool.predictor.policy,
            result.score.node_hours,
            result.score.late_share,
            result.meets_target,
            configured,
        )

    @property
    def label(self) -> str:
        return f"margin: {self.margin}, policy: {self.policy}"


def variant_pools(pool: Pool) -> list[Pool]:
    """The pool with each VARIANTS setting it does not already have, where its predictor
    accepts that setting (the config's own checks, not a copy of them)."""
    found = []
    own = (pool.predictor.margin, pool.predictor.policy)
    for margin, policy in VARIANTS:
        if (margin, policy) == own:
            continue
        fields = {**pool.predictor.model_dump(), "margin": margin, "policy": policy}
        try:
            predictor = PredictorConfig.model_validate(fields)
        except ValidationError:
            continue
        found.append(pool.model_copy(update={"predictor": predictor}))
    return found


def recommend(configured: Candidate, others: Sequence[Candidate]) -> Candidate | None:
    """The cheapest other setting that meets the target, if it beats the configured one:
    fewer node-hours, or the configured one misses the target."""
    meeting = [c for c in others if c.meets]
    if not meeting:
        return None
    best = min(meeting, key=lambda c: c.node_hours)
    if not configured.meets or best.node_hours < configured.node_hours:
        return best
    return None


def config_lines(candidate: Candidate, predictor: PredictorConfig) -> str:
    """The pool's whole `predictor:` block (its kind and params as configured) with this
    setting: pasted in place of the pool's own block it validates, where a block of
    margin and policy alone beside it was a duplicate key that dropped kind and params."""
    block: dict[str, Any] = {"kind": predictor.kind}
    if predictor.params:
        block["params"] = predictor.params
    block |= {"margin": candidate.margin, "policy": candidate.policy}
    return yaml.safe_dump({"predictor": block}, sort_keys=False).rstrip("\n")


def candidate_json(candidate: Candidate) -> dict[str, Any]:
    return {
        "margin": candidate.margin,
        "policy": candidate.policy,
        "configured": candidate.configured,
        "node_hours": candidate.node_hours,
        "late_share": candidate.late_share,
        "meets_target": candidate.meets,
    }


def recommendation_json(
    configured: Candidate,
    others: Sequence[Candidate],
    chosen: Candidate | None,
    note: str,
    predictor: PredictorConfig,
) -> dict[str, Any]:
    return {
        "candidates": [candidate_json(c) for c in (configured, *others)],
        "recommended": None if chosen is None else candidate_json(chosen),
        "config_lines": None if chosen is None else config_lines(chosen, predictor),
        "note": note,
    }
