"""The steps the daemon, `forecast` and the backtest share: every field of a sizing reaches
what decide() looks at, the pool's settings reach its limits, and the act step saves
before it writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from autoscaler.overrides import Override, OverridesFile
from autoscaler.plan import act, limits_of, observe, plan
from autoscaler.policy import Decision, Memory
from autoscaler.sizing import Sizing
from tests.autoscaler.test_tick import make_pool

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday


def test_observe_carries_every_field_of_the_sizing_and_the_bounds_in_force() -> None:
    pool = make_pool(
        schedules=[
            {"name": "office", "days": "mon-fri", "start": "09:00", "end": "18:00", "min_nodes": 6}
        ]
    )
    sizing = Sizing(
        demand_now=3.0,
        nodes=11,
        missing_reason="stale",
        demand_nodes=4,
        arrival_nodes=9,
        spare_nodes=2,
        capacity_note="measured",
        notes=("little history",),
    )
    launch = Override(nodes=7, expires=NOW + timedelta(hours=1), reason="launch")
    overrides = OverridesFile(overrides={"ocr": launch})
    seen = observe(pool, sizing, NOW, 5, overrides)
    assert (seen.at, seen.current) == (NOW, 5)
    assert (seen.forecast_nodes, seen.demand_nodes, seen.arrival_nodes) == (11, 4, 9)
    assert (seen.spare_nodes, seen.capacity_note, seen.notes) == (
        2,
        "measured",
        ("little history",),
    )
    assert seen.schedule.floor == 6 and seen.override is not None and seen.override.nodes == 7
    assert observe(pool, sizing, NOW, 5, None).override is None
    assert (seen.missing_reason, seen.signals) == ("stale", ())


def test_the_limits_are_the_pools_settings() -> None:
    pool = make_pool(
        min_nodes=2, max_nodes=30, cooldown="7m", scale_up={"max_step": 4, "max_percent": 50}
    )
    limits = limits_of(pool)
    assert (limits.min_nodes, limits.max_nodes, limits.cooldown) == (2, 30, timedelta(minutes=7))
    assert (limits.stabilization, limits.max_step_down) == (timedelta(minutes=10), 2)
    assert (limits.max_step_up, limits.max_percent_up) == (4, 50)


def test_plan_decides_on_the_observation_and_act_saves_before_it_writes() -> None:
    pool = make_pool()
    decision, memory = plan(pool, Sizing(nodes=9, demand_nodes=3), NOW, 4, None, Memory())
    assert (decision.current, decision.desired) == (4, 9) and memory.last_action_at == NOW
    calls: list[str] = []

    class Fleet:
        def scale(self, desired: int, reason: str) -> str:
            calls.append(f"scale {desired}: {reason}")
            return "clamped to 8"

    ordered = Decision(NOW, 4, 9, 9, ("forecast needs 9", "bounds"))
    said = act(Fleet(), ordered, lambda: calls.append("saved"))  # type: ignore[arg-type]
    assert said == "clamped to 8"
    assert calls == ["saved", "scale 9: forecast needs 9; bounds"]
