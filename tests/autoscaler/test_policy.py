"""The decide step, rule by rule: sizing, bounds, schedules, overrides, stabilization,
step limits, cooldown and the fail-safe on missing data (issue 2, "Decide")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler import replay_decide
from autoscaler.config.time_windows import Schedule
from autoscaler.overrides import Override, active_override
from autoscaler.policy import (
    Decision,
    Limits,
    Memory,
    Observation,
    allowance,
    apply_bounds,
    decide,
    nodes_for,
)
from autoscaler.reason_rules import rule_of
from autoscaler.schedules import ScheduleBounds, bounds_at
from common.settings import MAX_NODES

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
NO_SCHEDULE = ScheduleBounds(None, None, ())


def limits(
    min_nodes: int = 1,
    max_nodes: int = 20,
    stabilization: timedelta = 5 * MINUTE,
    max_step_down: int = 2,
    cooldown: timedelta = 10 * MINUTE,
) -> Limits:
    return Limits(min_nodes, max_nodes, stabilization, max_step_down, cooldown)


def override(
    nodes: int | None = None, min_nodes: int | None = None, max_nodes: int | None = None
) -> Override:
    return Override(
        nodes=nodes,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        expires=T0 + timedelta(days=1),
        reason="black friday",
    )


def observe(
    current: int,
    forecast_nodes: int | None,
    at: datetime = T0,
    schedule: ScheduleBounds = NO_SCHEDULE,
    pin: Override | None = None,
    missing_reason: str | None = None,
) -> Observation:
    return Observation(at, current, forecast_nodes, missing_reason, schedule, pin)


def run_ticks(
    forecasts: Sequence[int | None],
    current: int,
    rules: Limits,
    every: timedelta = MINUTE,
    follow: bool = True,
) -> list[Decision]:
    """Feed one forecast per tick through decide, carrying Memory (and the fleet follows)."""
    memory = Memory()
    decisions = []
    for i, forecast in enumerate(forecasts):
        decision, memory = decide(observe(current, forecast, T0 + i * every), rules, memory)
        decisions.append(decision)
        if follow:
            current = decision.desired
    return decisions


def joined(decision: Decision) -> str:
    return " | ".join(decision.reasons)


# ---- sizing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("demand", "per_node", "utilization", "nodes"),
    [
        pytest.param(100.0, 10.0, 1.0, 10, id="exact-fit"),
        pytest.param(101.0, 10.0, 1.0, 11, id="ceil-of-remainder"),
        pytest.param(100.0, 10.0, 0.5, 20, id="utilization-halves-capacity"),
        pytest.param(60.0, 10.0, 0.8, 8, id="ceil-7.5"),
        pytest.param(1.1, 0.1, 1.0, 11, id="float-noise-not-one-extra-node"),
        pytest.param(0.001, 10.0, 0.8, 1, id="any-load-needs-a-node"),
        pytest.param(0.0, 10.0, 0.8, 0, id="zero-demand"),
        pytest.param(-3.0, 10.0, 0.8, 0, id="negative-demand"),
    ],
)
def test_nodes_for(demand: float, per_node: float, utilization: float, nodes: int) -> None:
    assert nodes_for(demand, per_node, utilization) == nodes


@pytest.mark.parametrize("demand", [float("nan"), float("inf"), float("-inf")], ids=str)
def test_nodes_for_refuses_missing_demand(demand: float) -> None:
    with pytest.raises(ValueError, match="missing is not zero"):
        nodes_for(demand, 10.0, 0.8)


# ---- bounds: pool min/max, schedules, overrides ------------------------------------------

BUSINESS = ScheduleBounds(8, None, ("business",))
CAPPED = ScheduleBounds(None, 10, ("night",))
FLOOR_10 = ScheduleBounds(10, None, ("business",))
FLOOR_25 = ScheduleBounds(25, None, ("campaign",))
CEILING_6 = ScheduleBounds(0, 6, ("night",))


@pytest.mark.parametrize(
    ("target", "schedule", "pin", "expected", "said"),
    [
        pytest.param(5, NO_SCHEDULE, None, 5, [], id="inside-bounds-untouched"),
        pytest.param(0, NO_SCHEDULE, None, 1, ["pool min_nodes 1"], id="raised-to-min"),
        pytest.param(
            30, NO_SCHEDULE, None, 20, ["capped at pool max_nodes 20 (wanted 30)"], id="capped"
        ),
        pytest.param(3, BUSINESS, None, 8, ["schedule floor 8 ('business')"], id="floor-raises"),
        pytest.param(9, BUSINESS, None, 9, [], id="floor-below-target-is-silent"),
        pytest.param(15, CAPPED, None, 10, ["schedule ceiling 10 ('night')"], id="ceiling-lowers"),
        pytest.param(4, CAPPED, None, 4, [], id="ceiling-above-target-is-silent"),
        pytest.param(
            3,
            ScheduleBounds(12, 8, ("day", "quiet")),
            None,
            12,
            ["schedule floor 12 ('day', 'quiet')"],
            id="floor-beats-ceiling",
        ),
        pytest.param(
            5,
            ScheduleBounds(0, 0, ("night",)),
            None,
            1,
            ["min_nodes 1"],
            id="pool-min-beats-schedule-ceiling",
        ),
        pytest.param(3, FLOOR_25, None, 20, ["schedule floor 25", "max_nodes 20"], id="max>floor"),
        pytest.param(
            5, NO_SCHEDULE, override(nodes=12), 12, ["override fixes the count at 12"], id="fixed"
        ),
        pytest.param(
            3,
            FLOOR_10,
            override(nodes=4),
            4,
            ["schedule floor 10", "override fixes the count at 4", "wins over 10"],
            id="fixed-beats-schedule-floor",
        ),
        pytest.param(
            3,
            CEILING_6,
            override(nodes=9),
            9,
            ["override fixes the count at 9", "wins over 3"],
            id="fixed-beats-schedule-ceiling",
        ),
        pytest.param(
            5, NO_SCHEDULE, override(nodes=0), 0, ["fixes the count at 0"], id="fixed-beats-min"
        ),
        pytest.param(
            5,
            NO_SCHEDULE,
            override(nodes=25),
            20,
            ["override fixes the count at 25", "capped at pool max_nodes 20 (wanted 25)"],
            id="max-beats-fixed",
        ),
        pytest.param(
            3, NO_SCHEDULE, override(min_nodes=6), 6, ["override min 6"], id="override-min"
        ),
        pytest.param(
            15, NO_SCHEDULE, override(max_nodes=10), 10, ["override max 10"], id="override-max"
        ),
        pytest.param(
            3,
            FLOOR_10,
            override(max_nodes=7),
            7,
            ["schedule floor 10", "override max 7"],
            id="override-max-beats-schedule-floor",
        ),
        pytest.param(
            7, NO_SCHEDULE, override(min_nodes=2, max_nodes=9), 7, [], id="override-bounds-quiet"
        ),
        pytest.param(
            5,
            NO_SCHEDULE,
            override(max_nodes=0),
            0,
            ["override max 0"],
            id="override-max-beats-pool-min",
        ),
        pytest.param(
            5,
            NO_SCHEDULE,
            override(min_nodes=30),
            20,
            ["override min 30", "max_nodes 20"],
            id="max-beats-override-min",
        ),
    ],
)
def test_apply_bounds(
    target: int,
    schedule: ScheduleBounds,
    pin: Override | None,
    expected: int,
    said: list[str],
) -> None:
    reasons: list[str] = []
    got = apply_bounds(
        target, observe(target, target, schedule=schedule, pin=pin), limits(), reasons
    )
    assert got == expected
    for phrase in said:
        assert any(phrase in reason for reason in reasons), (phrase, reasons)
    if not said:
        assert reasons == []
    if pin is not None and said:
        assert any("'black friday'" in reason for reason in reasons if "override" in reason)


def test_overlapping_schedules_floor_beats_ceiling() -> None:
    """Two windows in force at once: the highest floor; a lower ceiling gives way to it."""
    day = Schedule(name="day", start=time(8), end=time(20), min_nodes=12)
    quiet = Schedule(name="quiet", start=time(11), end=time(14), min_nodes=2, max_nodes=8)
    bounds = bounds_at([day, quiet], T0)
    assert bounds.floor == 12
    assert bounds.ceiling is not None and bounds.ceiling >= 12
    assert set(bounds.active) == {"day", "quiet"}
    decision, _ = decide(observe(5, 3, schedule=bounds), limits(), Memory())
    assert decision.desired == 12
    assert "schedule floor 12" in joined(decision)


def test_expired_override_is_ignored() -> None:
    expired = Override(nodes=15, expires=T0 - MINUTE, reason="last week's sale")
    pin = active_override({"gpu": expired}, "gpu", T0)
    assert pin is None
    decision, _ = decide(observe(5, 5, pin=pin), limits(), Memory())
    assert decision.desired == 5
    assert "override" not in joined(decision)


# ---- scaling up, down, cooldown -------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "forecast", "memory", "desired"),
    [
        pytest.param(3, 8, Memory(), 8, id="fresh"),
        pytest.param(3, 8, Memory(last_action_at=T0 - MINUTE), 8, id="during-cooldown"),
        pytest.param(2, 15, Memory(), 15, id="no-step-limit-going-up"),
        pytest.param(3, 40, Memory(), 20, id="up-to-max"),
    ],
)
def test_scale_up_at_once(current: int, forecast: int, memory: Memory, desired: int) -> None:
    decision, after = decide(observe(current, forecast), limits(), memory)
    assert (decision.desired, decision.action) == (desired, "scale_up")
    assert f"scale up {current} → {desired} at once" in decision.reasons
    assert after.last_action_at == T0


def test_steady_forecast_changes_nothing() -> None:
    decision, after = decide(observe(5, 5), limits(), Memory(last_action_at=T0 - 30 * MINUTE))
    assert (decision.desired, decision.action) == (5, "none")
    assert decision.reasons == ("forecast needs 5 nodes",)
    assert after.last_action_at == T0 - 30 * MINUTE  # no action, no new cooldown


def test_scale_down_waits_for_a_full_stabilization_window() -> None:
    rules = limits(stabilization=5 * MINUTE, max_step_down=10, cooldown=timedelta(0))
    decisions = run_ticks([6] * 7, current=10, rules=rules)
    assert [d.desired for d in decisions] == [10, 10, 10, 10, 10, 6, 6]
    for held in decisions[:5]:
        assert held.target == 6
        assert "stabilization needs 0:05:00 of good data" in joined(held)
    assert "scale down 10 → 6" in decisions[5].reasons


def test_stabilization_keeps_the_highest_recent_recommendation() -> None:
    rules = limits(stabilization=5 * MINUTE, max_step_down=10, cooldown=timedelta(0))
    decisions = run_ticks([4, 8, 5, 4, 4, 4, 4, 4, 4], current=10, rules=rules)
    # At minute 5 the window (minutes 1..5) still holds the 8 of minute 1.
    assert decisions[5].desired == 8
    assert "stabilization keeps 8 (recent high) instead of 4" in decisions[5].reasons
    # Then the 8 (minute 1) and the 5 (minute 2) age out of the window in turn.
    assert [d.desired for d in decisions[5:]] == [8, 5, 4, 4]


def test_scale_down_is_limited_per_step() -> None:
    rules = limits(stabilization=timedelta(0), max_step_down=2, cooldown=timedelta(0))
    decisions = run_ticks([3] * 5, current=10, rules=rules)
    assert [d.desired for d in decisions] == [8, 6, 4, 3, 3]
    assert "scale down limited to 2 nodes per step" in decisions[0].reasons
    assert "scale down 10 → 8" in decisions[0].reasons
    assert "limited" not in joined(decisions[3])  # 4 → 3 is within the step


def test_cooldown_after_each_action_blocks_scale_down() -> None:
    rules = limits(stabilization=timedelta(0), max_step_down=2, cooldown=3 * MINUTE)
    decisions = run_ticks([2] * 7, current=10, rules=rules)
    assert [d.desired for d in decisions] == [8, 8, 8, 6, 6, 6, 4]
    assert "cooldown after last action until" in joined(decisions[1])


def test_cooldown_after_scale_up_blocks_the_scale_down_that_follows() -> None:
    rules = limits(stabilization=timedelta(0), cooldown=10 * MINUTE)
    decisions = run_ticks([8, 3, 3], current=5, rules=rules)
    assert [d.desired for d in decisions] == [8, 8, 8]
    expected_until = (T0 + 10 * MINUTE).isoformat()
    assert f"cooldown after last action until {expected_until}" in joined(decisions[1])


@pytest.mark.parametrize(
    ("since_action", "desired"),
    [
        pytest.param(9 * MINUTE, 10, id="inside-cooldown"),
        pytest.param(10 * MINUTE, 8, id="cooldown-just-over"),
        pytest.param(3 * 60 * MINUTE, 8, id="long-ago"),
    ],
)
def test_cooldown_boundary(since_action: timedelta, desired: int) -> None:
    rules = limits(stabilization=timedelta(0), cooldown=10 * MINUTE)
    memory = Memory(last_action_at=T0 - since_action)
    decision, _ = decide(observe(10, 2), rules, memory)
    assert decision.desired == desired


def test_clock_jumping_back_does_not_keep_a_stale_cooldown() -> None:
    rules = limits(stabilization=timedelta(0), cooldown=30 * MINUTE)
    future_action = Memory(
        last_action_at=T0 + 2 * 60 * MINUTE, recommendations=((T0 + 5 * MINUTE, 9),)
    )
    decision, memory = decide(observe(10, 4), rules, future_action)
    assert decision.desired == 8
    assert "cooldown" not in joined(decision)
    assert memory.last_action_at == T0
    assert all(t <= T0 for t, _ in memory.recommendations)  # future samples dropped


def test_clock_jumping_back_restarts_the_window_from_the_new_now() -> None:
    rules = limits(stabilization=5 * MINUTE, max_step_down=10, cooldown=30 * MINUTE)
    memory = Memory()
    current = 10
    later = T0 + 60 * MINUTE
    for i in range(6):  # good data at 13:00..13:05, a scale-down at 13:05
        decision, memory = decide(observe(current, 4, later + i * MINUTE), rules, memory)
        current = decision.desired
    assert current == 4
    current = 10  # the clock is set back an hour; the fleet was reset too
    desired = []
    for i in range(6):
        decision, memory = decide(observe(current, 4, T0 + i * MINUTE), rules, memory)
        desired.append(decision.desired)
    assert desired == [10, 10, 10, 10, 10, 4]


# ---- fail-safe on missing data --------------------------------------------------------

RIPE = Memory(recommendations=tuple((T0 - k * MINUTE, 2) for k in range(10, 0, -1)))
"""Ten minutes of agreeing low recommendations: without the fail-safe this would scale down."""


@pytest.mark.parametrize(
    ("current", "schedule", "pin", "desired", "said"),
    [
        pytest.param(10, NO_SCHEDULE, None, 10, ["hold 10"], id="holds"),
        pytest.param(3, FLOOR_10, None, 10, ["schedule floor 10"], id="schedule-floor-raises"),
        pytest.param(3, NO_SCHEDULE, override(nodes=6), 6, ["fixes the count at 6"], id="pin-up"),
        pytest.param(3, NO_SCHEDULE, override(min_nodes=5), 5, ["override min 5"], id="min-up"),
        pytest.param(10, NO_SCHEDULE, override(nodes=4), 10, ["hold"], id="pin-down-waits"),
        pytest.param(10, CEILING_6, None, 10, ["hold"], id="ceiling-down-waits"),
        pytest.param(0, NO_SCHEDULE, None, 1, ["pool min_nodes 1"], id="pool-min-raises"),
    ],
)
def test_missing_data_never_scales_down(
    current: int, schedule: ScheduleBounds, pin: Override | None, desired: int, said: list[str]
) -> None:
    rules = limits(stabilization=5 * MINUTE, cooldown=timedelta(0))
    obs = observe(current, None, schedule=schedule, pin=pin, missing_reason="stale: 12m old")
    decision, memory = decide(obs, rules, RIPE)
    assert decision.desired == desired
    assert "demand data missing (stale: 12m old)" in joined(decision)
    for phrase in said:
        assert phrase in joined(decision)
    assert memory.recommendations == ()  # the window restarts after the outage


def test_missing_data_without_a_reason_still_says_why() -> None:
    decision, _ = decide(observe(7, None), limits(), Memory())
    assert decision.desired == 7
    assert "demand data missing (no demand data): hold 7" in decision.reasons


def test_missing_data_restarts_the_stabilization_window() -> None:
    rules = limits(stabilization=5 * MINUTE, max_step_down=10, cooldown=timedelta(0))
    forecasts: list[int | None] = [4, 4, 4, 4, None] + [4] * 7
    decisions = run_ticks(forecasts, current=10, rules=rules)
    # Without the gap the fleet would shrink at minute 5; with it, only at 5 + 5 = 10.
    assert [d.desired for d in decisions] == [10] * 10 + [4, 4]
    assert "stabilization needs" in joined(decisions[9])


def test_current_above_max_is_brought_down_to_max() -> None:
    """max_nodes is the one hard limit (a lowered max in the config is obeyed at once)."""
    rules = limits(max_nodes=20, stabilization=5 * MINUTE, cooldown=10 * MINUTE)
    busy = Memory(last_action_at=T0 - MINUTE)
    for forecast in (None, 30, 5):
        decision, _ = decide(observe(25, forecast), rules, busy)
        assert decision.desired == 20, (forecast, decision.reasons)
        assert "max_nodes 20" in joined(decision)


# ---- every Decision explains itself -----------------------------------------------------


@pytest.mark.parametrize(
    ("obs", "memory", "rules", "said"),
    [
        pytest.param(observe(3, 8), Memory(), limits(), ["forecast needs 8", "scale up"], id="up"),
        pytest.param(
            observe(10, 2),
            RIPE,
            limits(cooldown=timedelta(0)),
            ["forecast needs 2", "limited to 2 nodes", "scale down 10 → 8"],
            id="down",
        ),
        pytest.param(
            observe(10, 2), Memory(), limits(), ["forecast needs 2", "stabilization"], id="stab"
        ),
        pytest.param(
            observe(10, 2),
            Memory(last_action_at=T0 - MINUTE),
            limits(),
            ["forecast needs 2", "cooldown"],
            id="cooldown",
        ),
        pytest.param(
            observe(3, 2, schedule=FLOOR_10, pin=override(max_nodes=9)),
            Memory(),
            limits(),
            ["forecast needs 2", "schedule floor 10", "override max 9", "scale up 3 → 9"],
            id="floor-then-override",
        ),
        pytest.param(
            observe(10, 2, pin=override(nodes=3)),
            Memory(last_action_at=T0 - MINUTE),
            limits(),
            ["override fixes the count at 3", "scale down 10 → 3 at once"],
            id="fixed-override-skips-step-cooldown-window",
        ),
    ],
)
def test_reasons_name_each_rule(
    obs: Observation, memory: Memory, rules: Limits, said: list[str]
) -> None:
    decision, _ = decide(obs, rules, memory)
    for phrase in said:
        assert phrase in joined(decision), (phrase, decision.reasons)


@pytest.mark.parametrize(
    ("current", "desired", "action"),
    [(3, 5, "scale_up"), (5, 3, "scale_down"), (4, 4, "none")],
    ids=["up", "down", "none"],
)
def test_decision_action(current: int, desired: int, action: str) -> None:
    assert Decision(T0, current, desired, desired).action == action


# ---- schedules across a DST change, through decide ------------------------------------------

OPENING = Schedule(
    name="stores", start=time(8), end=time(20), timezone="Europe/Berlin", min_nodes=10,
    lead_time="10m",
)  # fmt: skip


@pytest.mark.parametrize(
    ("at", "desired"),
    [
        # Saturday, CET (UTC+1): 08:00 local is 07:00Z, ready-by lead opens it at 06:50Z.
        pytest.param(datetime(2025, 3, 29, 6, 49, tzinfo=UTC), 2, id="sat-before-lead"),
        pytest.param(datetime(2025, 3, 29, 6, 50, tzinfo=UTC), 10, id="sat-lead-opens"),
        # Sunday 30 March, clocks jump to CEST (UTC+2): the window opens an hour earlier in UTC.
        pytest.param(datetime(2025, 3, 30, 5, 49, tzinfo=UTC), 2, id="dst-sun-before-lead"),
        pytest.param(datetime(2025, 3, 30, 5, 50, tzinfo=UTC), 10, id="dst-sun-lead-opens"),
        pytest.param(datetime(2025, 3, 30, 17, 59, tzinfo=UTC), 10, id="dst-sun-last-minute"),
        pytest.param(datetime(2025, 3, 30, 18, 0, tzinfo=UTC), 2, id="dst-sun-closed-20-cest"),
        # Sunday 26 October, back to CET: 08:00 local is 07:00Z again.
        pytest.param(datetime(2025, 10, 26, 6, 49, tzinfo=UTC), 2, id="fall-back-before-lead"),
        pytest.param(datetime(2025, 10, 26, 6, 50, tzinfo=UTC), 10, id="fall-back-lead-opens"),
        pytest.param(datetime(2025, 10, 26, 18, 59, tzinfo=UTC), 10, id="fall-back-open-19-cet"),
    ],
)
def test_schedule_floor_across_dst(at: datetime, desired: int) -> None:
    bounds = bounds_at([OPENING], at)
    decision, _ = decide(observe(2, 1, at=at, schedule=bounds), limits(), Memory())
    assert decision.desired == desired
    if desired == 10:
        assert "schedule floor 10 ('stores')" in joined(decision)


def test_dst_day_through_decide_scales_up_at_lead_and_down_after_close() -> None:
    """Tick every 5 minutes over the spring-forward day; the fleet follows the decisions."""
    rules = limits(min_nodes=2, stabilization=15 * MINUTE, max_step_down=4, cooldown=10 * MINUTE)
    memory, current = Memory(), 2
    start = datetime(2025, 3, 30, 0, 0, tzinfo=UTC)
    history: list[tuple[datetime, int]] = []
    for i in range(24 * 12):
        at = start + i * 5 * MINUTE
        obs = observe(current, 1, at=at, schedule=bounds_at([OPENING], at))
        decision, memory = decide(obs, rules, memory)
        current = decision.desired
        history.append((at, current))
    first_up = next(at for at, n in history if n == 10)
    assert first_up == datetime(2025, 3, 30, 5, 50, tzinfo=UTC)
    # Closes at 18:00Z (20:00 CEST). Good data since 17:55 covers the 15-minute window at
    # 18:10, when every recommendation inside it says 2: 10 → 6, then → 2 a cooldown later.
    counts = dict(history)
    assert max(at for at, n in history if n == 10) == datetime(2025, 3, 30, 18, 5, tzinfo=UTC)
    assert counts[datetime(2025, 3, 30, 18, 10, tzinfo=UTC)] == 6
    assert counts[datetime(2025, 3, 30, 18, 15, tzinfo=UTC)] == 6
    assert counts[datetime(2025, 3, 30, 18, 20, tzinfo=UTC)] == 2


# ---- properties over random tick sequences ------------------------------------------------

schedules = st.one_of(
    st.just(NO_SCHEDULE),
    st.integers(0, 30).flatmap(
        lambda floor: st.builds(
            ScheduleBounds,
            st.just(floor),
            st.one_of(st.none(), st.integers(floor, 40)),
            st.just(("s",)),
        )
    ),
)
pins = st.one_of(
    st.none(),
    st.integers(0, 30).map(lambda n: override(nodes=n)),
    st.tuples(st.integers(0, 20), st.integers(0, 20)).map(
        lambda b: override(min_nodes=min(b), max_nodes=max(b))
    ),
)
ticks = st.lists(
    st.tuples(
        st.integers(-3, 20),  # minutes since the last tick; a few clock jumps back
        st.one_of(st.none(), st.integers(0, 40)),
        schedules,
        pins,
    ),
    min_size=1,
    max_size=40,
)
rule_sets = st.integers(0, 5).flatmap(
    lambda low: st.builds(
        Limits,
        st.just(low),
        st.integers(low, low + 20),
        st.integers(0, 15).map(lambda m: m * MINUTE),
        st.integers(1, 5),
        st.integers(0, 15).map(lambda m: m * MINUTE),
    )
)


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets, steps=ticks, start=st.integers(0, 25), data=st.data())
def test_random_ticks_respect_bounds_fail_safe_and_step(
    rules: Limits, steps: list, start: int, data: st.DataObject
) -> None:
    current = min(max(start, rules.min_nodes), rules.max_nodes)
    memory, at = Memory(), T0
    for minutes, forecast, schedule, pin in steps:
        at += minutes * MINUTE
        obs = observe(current, forecast, at=at, schedule=schedule, pin=pin)
        decision, after = decide(obs, rules, memory)
        assert decide(obs, rules, memory) == (decision, after)  # pure: same in, same out
        memory = after
        desired = decision.desired
        fixed = pin is not None and pin.nodes is not None
        assert decision.reasons, decision
        assert desired <= rules.max_nodes
        if rules.min_nodes <= current <= rules.max_nodes and not fixed:
            # A person's override max may ask for less than the pool's min; nothing else may.
            lowest = rules.min_nodes
            if pin is not None and pin.max_nodes is not None:
                lowest = min(lowest, pin.max_nodes)
            assert lowest <= desired, decision.reasons
        if forecast is None and current <= rules.max_nodes:
            assert desired >= current, decision.reasons
        if not fixed:
            assert current - desired <= rules.max_step_down, decision.reasons
        # Either follow the decision, or (sometimes) the fleet did not manage it.
        if data.draw(st.booleans(), label="fleet follows"):
            current = desired


def test_reactive_floor_scales_for_demand_seen_now_when_the_forecast_is_lower() -> None:
    obs = Observation(at=T0, current=4, forecast_nodes=5, demand_nodes=9)
    decision, _ = decide(obs, limits(), Memory())
    assert decision.desired == 9
    assert any("reactive floor" in r for r in decision.reasons)
    calm = Observation(at=T0, current=4, forecast_nodes=5, demand_nodes=3)
    decision, _ = decide(calm, limits(), Memory())
    assert decision.desired == 5 and not any("reactive" in r for r in decision.reasons)


def test_every_reason_maps_to_a_named_rule() -> None:
    """Self-metrics count decisions by rule: no reason may fall through to 'other'."""
    fixed = Override(nodes=3, expires=T0 + timedelta(hours=1), reason="pin")
    bounds = Override(min_nodes=2, max_nodes=4, expires=T0 + timedelta(hours=1), reason="cap")
    scenarios = [
        Observation(at=T0, current=4, forecast_nodes=9),
        Observation(at=T0, current=4, forecast_nodes=5, demand_nodes=9),
        Observation(at=T0, current=4, forecast_nodes=None, missing_reason="stale"),
        Observation(
            at=T0,
            current=4,
            forecast_nodes=0,
            schedule=ScheduleBounds(floor=6, ceiling=None, active=("day",)),
        ),
        Observation(
            at=T0,
            current=4,
            forecast_nodes=30,
            schedule=ScheduleBounds(floor=None, ceiling=8, active=("night",)),
        ),
        Observation(at=T0, current=4, forecast_nodes=30, override=fixed),
        Observation(at=T0, current=4, forecast_nodes=30, override=bounds),
        Observation(at=T0, current=25, forecast_nodes=30),
        Observation(at=T0, current=4, forecast_nodes=0),
        Observation(at=T0, current=12, forecast_nodes=10, arrival_nodes=6),
    ]
    seen = set()
    for obs in scenarios:
        decision, _ = decide(obs, limits(), Memory())
        seen |= {rule_of(r) for r in decision.reasons}
    memory = Memory()
    for minute in range(30):  # a long quiet spell: stabilization, step limit, cooldown
        obs = Observation(at=T0 + timedelta(minutes=minute), current=12, forecast_nodes=1)
        decision, memory = decide(obs, limits(), memory)
        seen |= {rule_of(r) for r in decision.reasons}
    manual = Memory(manual_change_at=T0 - timedelta(minutes=1))
    decision, _ = decide(Observation(at=T0, current=4, forecast_nodes=9), limits(), manual)
    seen |= {rule_of(r) for r in decision.reasons}
    assert "other" not in seen
    assert {
        "forecast",
        "reactive_floor",
        "missing_data",
        "schedule_floor",
        "schedule_ceiling",
        "override",
        "max_nodes",
        "min_nodes",
        "stabilization",
        "step_limit",
        "cooldown",
        "manual_change",
        "scale_up",
        "scale_down",
        "forecast_floor",
    } <= seen


def test_scale_up_only_for_what_arrives_in_time_and_keep_the_horizon_peak() -> None:
    """Nodes ordered now serve from boot_time on: a scale-up goes to the forecast there,
    while a scale-down keeps the horizon's peak (removed nodes could not be back in time)."""
    up = Observation(at=T0, current=4, forecast_nodes=10, arrival_nodes=6)
    decision, _ = decide(up, limits(), Memory())
    assert decision.desired == 6
    assert any("once new nodes are ready" in r for r in decision.reasons)
    down = Observation(at=T0, current=12, forecast_nodes=10, arrival_nodes=6)
    decision, _ = decide(down, limits(), Memory())
    assert decision.target == 10
    assert any("scale-down floor" in r for r in decision.reasons)
    between = Observation(at=T0, current=8, forecast_nodes=10, arrival_nodes=6)
    decision, _ = decide(between, limits(), Memory())
    assert decision.desired == 8 and decision.target == 8
    burst = Observation(at=T0, current=4, forecast_nodes=10, arrival_nodes=6, demand_nodes=9)
    decision, _ = decide(burst, limits(), Memory())
    assert decision.desired == 9
    assert any("reactive floor" in r for r in decision.reasons)


# ---- scale-up limits (a GPU quota per action) --------------------------------------------


def test_scale_up_limited_to_max_step_per_action_until_target() -> None:
    rules = replace(limits(max_nodes=40), max_step_up=4)
    decisions = run_ticks([17] * 5, current=2, rules=rules)
    assert [d.desired for d in decisions] == [6, 10, 14, 17, 17]
    assert "scale up limited to 4 nodes per action (scale_up.max_step 4); wanted 17" in joined(
        decisions[0]
    )
    assert "limited" not in joined(decisions[3])
    assert rule_of(decisions[0].reasons[-2]) == "scale_up_limit"


def test_scale_up_limited_by_percent_rounds_up_and_adds_at_least_one() -> None:
    rules = replace(limits(max_nodes=100), max_percent_up=50.0)
    assert [d.desired for d in run_ticks([30] * 4, current=5, rules=rules)] == [8, 12, 18, 27]
    from_zero = replace(limits(min_nodes=0), max_percent_up=50.0)
    assert run_ticks([3], current=0, rules=from_zero)[0].desired == 1


def test_scale_up_smaller_of_step_and_percent_wins() -> None:
    rules = replace(limits(max_nodes=100), max_step_up=3, max_percent_up=100.0)
    # 100 % of 2 is 2 (smaller than 3); 100 % of 4 is 4, so the step (3) wins.
    assert [d.desired for d in run_ticks([20] * 3, current=2, rules=rules)] == [4, 7, 10]


def test_scale_up_limit_applies_to_schedule_floors_and_overrides_too() -> None:
    rules = replace(limits(), max_step_up=2)
    floor, _ = decide(observe(3, 3, schedule=FLOOR_10), rules, Memory())
    assert (floor.target, floor.desired) == (10, 5)
    pinned, _ = decide(observe(3, 3, pin=override(nodes=12)), rules, Memory())
    assert (pinned.target, pinned.desired) == (12, 5)


def test_scale_up_limit_never_slows_scale_down() -> None:
    rules = replace(limits(stabilization=timedelta(0), cooldown=timedelta(0)), max_step_up=1)
    decision, _ = decide(observe(9, 3), rules, Memory())
    assert decision.desired == 7  # the scale-down step (2), not the scale-up limit


@given(
    current=st.integers(0, 200),
    target=st.integers(0, 300),
    step=st.none() | st.integers(1, 50),
    percent=st.none() | st.floats(1, 300),
)
@settings(max_examples=200, deadline=None)
def test_scale_up_never_exceeds_either_limit(
    current: int, target: int, step: int | None, percent: float | None
) -> None:
    rules = replace(limits(min_nodes=0, max_nodes=1000), max_step_up=step, max_percent_up=percent)
    decision, _ = decide(observe(current, target), rules, Memory())
    if target <= current:
        return
    added = decision.desired - current
    assert 1 <= added <= target - current
    if step is not None:
        assert added <= step
    if percent is not None:
        assert added <= max(1, -(-current * percent // 100))


@settings(max_examples=200, deadline=None)
@given(
    kept=st.lists(st.tuples(st.integers(-90, 30), st.integers(0, 30)), max_size=12),
    window_minutes=st.integers(0, 40),
)
def test_memory_keeps_the_window_and_the_newest_older_recommendation(
    kept: list[tuple[int, int]], window_minutes: int
) -> None:
    """What decide() remembers, in any order the saved ones come (a state file, a clock set
    back): those before now and inside the window, this tick's last, and before them the
    newest older one (in their order) as proof that the window is covered."""
    window = window_minutes * MINUTE
    memory = Memory(recommendations=tuple((T0 + k * MINUTE, n) for k, n in kept))
    decision, remembered = decide(observe(5, 5), limits(stabilization=window), memory)
    before = [(t, n) for t, n in memory.recommendations if t < T0] + [(T0, decision.target)]
    older = [(t, n) for t, n in before if T0 - t >= window]
    inside = [(t, n) for t, n in before if T0 - t < window]
    assert remembered.recommendations == (*older[-1:], *inside)


# ---- a count changed by hand, and the bounds in force ----------------------------------


@pytest.mark.parametrize(
    ("current", "forecast", "schedule", "pin", "desired", "said"),
    [
        pytest.param(5, 2, FLOOR_10, None, 10, "schedule floor 10", id="below-schedule-floor"),
        pytest.param(8, 30, CEILING_6, None, 6, "schedule ceiling 6", id="above-schedule-ceiling"),
        pytest.param(3, 2, NO_SCHEDULE, override(min_nodes=6), 6, "override min 6", id="below-min"),
        pytest.param(
            9, 30, NO_SCHEDULE, override(max_nodes=7), 7, "override max 7", id="above-max"
        ),
    ],
)
def test_a_count_changed_by_hand_is_not_held_outside_the_bounds_in_force(
    current: int,
    forecast: int,
    schedule: ScheduleBounds,
    pin: Override | None,
    desired: int,
    said: str,
) -> None:
    """Bounds are fail-safe rules: a person scaling by hand below a schedule's floor (say,
    just before the window's lead time) must not keep the fleet under it for a cooldown.
    Before, only the pool's min/max and a fixed override ended the hold."""
    rules = limits(stabilization=timedelta(0), max_step_down=10, cooldown=10 * MINUTE)
    manual = Memory(manual_change_at=T0 - MINUTE)
    obs = observe(current, forecast, schedule=schedule, pin=pin)
    decision, _ = decide(obs, rules, manual)
    assert decision.desired == desired, decision.reasons
    assert said in joined(decision)
    assert "outside the autoscaler" not in joined(decision)


def test_a_count_changed_by_hand_within_the_bounds_is_still_held() -> None:
    manual = Memory(manual_change_at=T0 - MINUTE)
    for current, forecast in ((14, 2), (12, 30)):  # above the floor 10, the forecast aside
        obs = observe(current, forecast, schedule=FLOOR_10)
        decision, _ = decide(obs, limits(cooldown=10 * MINUTE), manual)
        assert decision.desired == current, decision.reasons
        assert "outside the autoscaler" in joined(decision)


def test_a_percent_whose_share_overflows_limits_nothing() -> None:
    """scale_up.max_percent 1e308 (finite, so validate took it) made current x percent
    infinite: every tick failed on math.ceil (OverflowError), the pool never scaled, and
    the loop replay's compiled copy read it as 1 node per action. It limits nothing."""
    rules = replace(limits(max_nodes=100), max_percent_up=1e308)
    assert [d.desired for d in run_ticks([30] * 2, current=5, rules=rules)] == [30, 30]
    compiled = replay_decide._compiled()[1]
    for allowed in (allowance, compiled):
        assert allowed(5, 40, 1e308) == 40
        assert allowed(5, -1, 1e308) > MAX_NODES
