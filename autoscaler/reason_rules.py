"""Each decision reason's rule: what shaped a count, as a small fixed vocabulary.

The self-metrics count decisions by rule (autoscaler.telemetry), and a metric label must
come from a fixed set, not from free text. The phrases are those the decide step
(autoscaler.policy), the loop calibration and the portfolio write into reasons: a reason
worded anew there must keep its phrase here (tests/autoscaler/test_policy.py reads each
rule off real decisions). Order matters: the first phrase found wins.
"""

from __future__ import annotations

_RULE_PHRASES: tuple[tuple[str, str], ...] = (
    ("budget: ", "loop_calibration"),
    ("loop margin ", "loop_calibration"),
    ("cheapest on the replay", "portfolio"),
    ("no member meets the target", "portfolio"),
    ("outside the autoscaler", "manual_change"),
    ("signal's input is bad", "signal_bad_input"),
    ("highest count wins", "signal"),
    ("capacity:", "capacity"),
    ("reactive floor", "reactive_floor"),
    ("scale-down floor", "forecast_floor"),
    ("demand data", "missing_data"),
    ("history masked", "history_masked"),
    ("no data (", "missing_data"),
    ("signal ", "signal"),
    ("forecast needs", "forecast"),
    ("schedule ceiling", "schedule_ceiling"),
    ("schedule floor", "schedule_floor"),
    ("override", "override"),
    ("pool min_nodes", "min_nodes"),
    ("max_nodes", "max_nodes"),
    ("cooldown", "cooldown"),
    ("stabilization", "stabilization"),
    ("nodes per step", "step_limit"),
    ("scale up limited", "scale_up_limit"),
    ("scale up", "scale_up"),
    ("scale down", "scale_down"),
)


def rule_of(reason: str) -> str:
    """The rule a reason comes from: a small fixed vocabulary, safe as a metric label."""
    for phrase, rule in _RULE_PHRASES:
        if phrase in reason:
            return rule
    return "other"
