"""The decide step: a pure function from what was observed to a Decision.

No I/O, no clock: time is an argument. When rules disagree the safest wins
(scale up > hold > scale down), and every rule that shaped the count leaves a
reason. Modelled on nomad-autoscaler's strategy checks and the Kubernetes HPA's
scale-down stabilization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from autoscaler.overrides import Override
from autoscaler.schedules import ScheduleBounds
from autoscaler.signals.weigh import LastGood, SignalReading, weigh


@dataclass(frozen=True)
class Limits:
    """The pool's rules, as the policy needs them."""

    min_nodes: int
    max_nodes: int
    stabilization: timedelta
    max_step_down: int
    cooldown: timedelta
    max_step_up: int | None = None
    """Nodes added per action at most (a GPU quota or a provider's rate limit); None: any."""
    max_percent_up: float | None = None
    """Nodes added per action at most, as a percentage of the current count (rounded up,
    at least one node); with `max_step_up` too, the smaller wins."""


@dataclass(frozen=True)
class Observation:
    """Everything decide() looks at for one pool at one instant."""

    at: datetime
    current: int
    forecast_nodes: int | None
    """Nodes the forecast needs; None when demand data is missing or implausible."""
    missing_reason: str | None = None
    schedule: ScheduleBounds = field(default_factory=lambda: ScheduleBounds(None, None, ()))
    override: Override | None = None
    demand_nodes: int | None = None
    """Nodes the demand seen now needs: if above the forecast's, scale for it now."""
    arrival_nodes: int | None = None
    """Nodes the forecast needs from when nodes ordered now would be ready. When given, a
    scale-up goes only this far (more would arrive after the peak it was for), and
    `forecast_nodes` (the whole horizon) is kept as a floor for scaling down: nodes removed
    now could not be back in time. None: size for `forecast_nodes` both ways."""
    spare_nodes: int = 0
    """Spare nodes already included in `forecast_nodes` and `arrival_nodes` (for reasons)."""
    signals: tuple[SignalReading, ...] = ()
    """The pool's other signals (queue depth, GPU utilization, latency, a node count)."""
    capacity_note: str | None = None
    """Set when the per-node capacity sized with is the measured one (said in reasons)."""
    notes: tuple[str, ...] = ()
    """Said in the decision as they are (e.g. which history the forecast did not learn from)."""


@dataclass(frozen=True)
class Memory:
    """What decide() remembers between ticks: last action and recent recommendations."""

    last_action_at: datetime | None = None
    recommendations: tuple[tuple[datetime, int], ...] = ()
    manual_change_at: datetime | None = None
    """When someone else last changed the count (a person scaling by hand)."""
    signal_counts: LastGood = ()
    """Each signal's last good count, held for a while when its data goes missing."""


@dataclass(frozen=True)
class Decision:
    at: datetime
    current: int
    desired: int
    target: int
    """The count the rules ask for before scale-down stabilization, step limit and cooldown."""
    reasons: tuple[str, ...] = field(default=())

    @property
    def action(self) -> str:
        if self.desired > self.current:
            return "scale_up"
        if self.desired < self.current:
            return "scale_down"
        return "none"


ROUNDING_SLACK = 1e-9
"""Float error that must not buy a node: 20.000000001 req/s on 10 req/s nodes is 2 nodes."""


def nodes_for(demand_rps: float, per_node_rps: float, target_utilization: float) -> int:
    """Nodes that serve `demand_rps` with each node at `target_utilization` of its capacity."""
    if not math.isfinite(demand_rps):
        raise ValueError(f"cannot size a fleet for demand {demand_rps}: missing is not zero")
    if demand_rps <= 0:
        return 0
    return math.ceil(demand_rps / (per_node_rps * target_utilization) - ROUNDING_SLACK)


def nodes_for_each(
    demand_rps: np.ndarray, per_node_rps: float, target_utilization: float = 1.0
) -> np.ndarray:
    """nodes_for over a whole trace at once (the backtest's yardsticks); a minute without a
    sample needs none there, since the trace, not the daemon, is the ground truth."""
    needed = np.nan_to_num(demand_rps, nan=0.0) / (per_node_rps * target_utilization)
    return np.ceil(needed - ROUNDING_SLACK).clip(0).astype(np.int64)


def decide(obs: Observation, limits: Limits, memory: Memory) -> tuple[Decision, Memory]:
    reasons: list[str] = [obs.capacity_note] if obs.capacity_note else []
    target, data_ok = _base_target(obs, reasons)
    reasons.extend(obs.notes)
    if obs.signals or memory.signal_counts:
        target, data_ok, memory, bad_input = _with_signals(obs, target, data_ok, memory, reasons)
        if bad_input:
            return _held_on_bad_input(obs, limits, memory, reasons)
    target = apply_bounds(target, obs, limits, reasons)
    memory = _remember(memory, obs.at, target, limits.stabilization, record=data_ok)
    fixed = obs.override is not None and obs.override.nodes is not None

    if _respecting_manual_change(obs, limits, memory, fixed, target, reasons):
        desired = obs.current
    elif target > obs.current:
        desired = _limited_scale_up(obs.current, target, limits, reasons)
        reasons.append(f"scale up {obs.current} → {desired} at once")
    elif target == obs.current:
        desired = target
    elif obs.current > limits.max_nodes:
        desired = limits.max_nodes
        reasons.append(
            f"above pool max_nodes {limits.max_nodes}: scale down {obs.current} → {desired} at once"
        )
    elif not data_ok:
        desired = obs.current
        reasons.append("hold: never scale down while data is missing (demand data or a signal)")
    elif fixed:
        desired = target
        reasons.append(f"override sets {target}: scale down {obs.current} → {target} at once")
    else:
        desired = _limited_scale_down(obs, limits, memory, target, reasons)

    if desired != obs.current:
        memory = replace(memory, last_action_at=obs.at)
    decision = Decision(obs.at, obs.current, desired, target, tuple(reasons))
    return decision, memory


def _held_on_bad_input(
    obs: Observation, limits: Limits, memory: Memory, reasons: list[str]
) -> tuple[Decision, Memory]:
    """Nothing is scaled on a bad signal input, but for the pool's max_nodes, which holds
    whatever the data (as where demand is missing): lowered, it applies at once."""
    held = min(obs.current, limits.max_nodes)
    if held < obs.current:
        reasons.append(
            f"above pool max_nodes {limits.max_nodes}: scale down {obs.current} → {held} at "
            "once; nothing else is scaled while a signal's input is bad"
        )
        memory = replace(memory, last_action_at=obs.at)
    else:
        reasons.append(f"hold {held}: nothing is scaled while a signal's input is bad")
    memory = _remember(memory, obs.at, held, limits.stabilization, record=False)
    return Decision(obs.at, obs.current, held, held, tuple(reasons)), memory


def _with_signals(
    obs: Observation, target: int, data_ok: bool, memory: Memory, reasons: list[str]
) -> tuple[int, bool, Memory, bool]:
    """The highest of the forecast's target and the signals' counts wins; a signal past
    its hold (no data) blocks scale-down as missing demand does."""
    weighed = weigh(obs.signals, memory.signal_counts, obs.at, obs.current, reasons)
    memory = replace(memory, signal_counts=weighed.last_good)
    if weighed.nodes is not None and weighed.nodes > target:
        reasons.append(
            f"signal {weighed.leader} {weighed.nodes} nodes, more than {target}: "
            "the highest count wins"
        )
        target = weighed.nodes
    return target, data_ok and not weighed.missing, memory, weighed.bad_input


_NO_SHARE_LIMIT = float(2**53)
"""A share of the count above any fleet: a max_percent whose share overflows to infinity
(1e308 % of 2 nodes) limits nothing, where math.ceil failed every tick (and numba's
compiled copy read it as a limit of 1 node)."""


def scale_up_allowance(current: int, limits: Limits) -> int | None:
    """Nodes one scale-up may add under the pool's `scale_up` limits; None: no limit."""
    allowed = allowance(current, *scale_up_limits(limits))
    return None if allowed < 0 else allowed


def scale_up_limits(limits: Limits) -> tuple[int, float]:
    """The pool's scale-up limits as allowance() takes them (-1, NaN: no such limit)."""
    step = -1 if limits.max_step_up is None else limits.max_step_up
    return step, math.nan if limits.max_percent_up is None else float(limits.max_percent_up)


def allowance(current: int, max_step: int, max_percent: float) -> int:
    """scale_up_allowance on plain numbers (-1 and NaN: no such limit; -1 back: none at
    all): the one copy of the rule, also called by the loop replay's compiled decide()."""
    if math.isnan(max_percent):
        return max_step
    share = min(current * max_percent / 100, _NO_SHARE_LIMIT)  # 1e308 % of 2: inf, no limit
    by_share = max(1, math.ceil(share - ROUNDING_SLACK))
    return by_share if max_step < 0 else min(max_step, by_share)


def _limited_scale_up(current: int, target: int, limits: Limits, reasons: list[str]) -> int:
    """At most the allowance per action: the rest comes at the next ticks."""
    allowed = scale_up_allowance(current, limits)
    if allowed is None or target - current <= allowed:
        return target
    rules = []
    if limits.max_step_up is not None:
        rules.append(f"scale_up.max_step {limits.max_step_up}")
    if limits.max_percent_up is not None:
        rules.append(f"scale_up.max_percent {limits.max_percent_up:g} % of {current}")
    reasons.append(
        f"scale up limited to {allowed} nodes per action ({', '.join(rules)}); "
        f"wanted {target}, the rest follows at the next ticks"
    )
    return current + allowed


def _respecting_manual_change(
    obs: Observation, limits: Limits, memory: Memory, fixed: bool, target: int, reasons: list[str]
) -> bool:
    """A count someone set by hand is held for a cooldown, not fought, while it lies within
    every bound in force (the pool's, the schedules' and an override's, fixed or not)."""
    if memory.manual_change_at is None or fixed or target == obs.current:
        return False
    since = obs.at - memory.manual_change_at
    inside_bounds = apply_bounds(obs.current, obs, limits, []) == obs.current
    if not (timedelta(0) <= since < limits.cooldown and inside_bounds):
        return False
    until = memory.manual_change_at + limits.cooldown
    reasons.append(
        f"hold {obs.current}: the count was changed outside the autoscaler at "
        f"{memory.manual_change_at.isoformat()}; not fighting it until {until.isoformat()}"
    )
    return True


def _base_target(obs: Observation, reasons: list[str]) -> tuple[int, bool]:
    if obs.forecast_nodes is None:
        why = obs.missing_reason or "no demand data"
        reasons.append(f"demand data missing ({why}): hold {obs.current}")
        return obs.current, False
    if obs.demand_nodes is not None and obs.demand_nodes > obs.forecast_nodes:
        reasons.append(
            f"demand now needs {obs.demand_nodes} nodes, more than the forecast's "
            f"{obs.forecast_nodes}: reactive floor"
        )
        return obs.demand_nodes, True
    if obs.arrival_nodes is None or obs.arrival_nodes >= obs.forecast_nodes:
        reasons.append(f"forecast needs {obs.forecast_nodes} nodes{_with_spare(obs)}")
        return obs.forecast_nodes, True
    return _arrival_target(obs, obs.arrival_nodes, obs.forecast_nodes, reasons), True


def _with_spare(obs: Observation) -> str:
    return f" (with {obs.spare_nodes} spare)" if obs.spare_nodes else ""


def _arrival_target(obs: Observation, arrival: int, horizon: int, reasons: list[str]) -> int:
    """Scale up to what new nodes arrive for; scale down no lower than the horizon's peak."""
    demand = obs.demand_nodes if obs.demand_nodes is not None else 0
    if demand > arrival:
        reasons.append(
            f"demand now needs {demand} nodes, more than the forecast's {arrival} "
            "once new nodes are ready: reactive floor"
        )
    else:
        reasons.append(f"forecast needs {arrival} nodes{_with_spare(obs)} once new nodes are ready")
    wanted = max(demand, arrival)
    if wanted >= obs.current:
        return wanted
    kept = min(obs.current, horizon)
    if kept > wanted:
        reasons.append(
            f"keep {kept}: the forecast peaks at {horizon} nodes before removed nodes "
            "could be back (scale-down floor)"
        )
    return max(kept, wanted)


def apply_bounds(target: int, obs: Observation, limits: Limits, reasons: list[str]) -> int:
    """Schedules, pool min, the override, and last the pool's max.

    Floors beat ceilings (the safe side wins); a person's override beats schedules and
    min_nodes (it is the most specific and most recent intent); max_nodes beats all.
    """
    names = ", ".join(repr(n) for n in obs.schedule.active)
    if obs.schedule.ceiling is not None and target > obs.schedule.ceiling:
        reasons.append(f"lowered to schedule ceiling {obs.schedule.ceiling} ({names})")
        target = obs.schedule.ceiling
    if obs.schedule.floor is not None and target < obs.schedule.floor:
        reasons.append(f"raised to schedule floor {obs.schedule.floor} ({names})")
        target = obs.schedule.floor
    if target < limits.min_nodes:
        reasons.append(f"raised to pool min_nodes {limits.min_nodes}")
        target = limits.min_nodes
    target = _apply_override(target, obs.override, reasons)
    if target > limits.max_nodes:
        reasons.append(f"capped at pool max_nodes {limits.max_nodes} (wanted {target})")
        target = limits.max_nodes
    return target


def _apply_override(target: int, override: Override | None, reasons: list[str]) -> int:
    if override is None:
        return target
    why = f"{override.reason!r}, until {override.expires.isoformat()}"
    if override.nodes is not None:
        if override.nodes != target:
            reasons.append(
                f"override fixes the count at {override.nodes} ({why}), wins over {target}"
            )
        else:
            reasons.append(f"override fixes the count at {override.nodes} ({why})")
        return override.nodes
    if override.min_nodes is not None and target < override.min_nodes:
        reasons.append(f"raised to override min {override.min_nodes} ({why})")
        target = override.min_nodes
    if override.max_nodes is not None and target > override.max_nodes:
        reasons.append(f"lowered to override max {override.max_nodes} ({why})")
        target = override.max_nodes
    return target


def _remember(
    memory: Memory, at: datetime, target: int, window: timedelta, *, record: bool
) -> Memory:
    """Keep the recommendations inside the window, plus the newest older one as proof that
    the window is fully covered. Missing data restarts the window: after an outage the
    fleet is not shrunk until a whole window of good data agrees."""
    if not record:
        return replace(memory, recommendations=())
    older, inside = (), []  # one pass: a backtest's sweep runs this every simulated minute
    for t, n in [*(kept for kept in memory.recommendations if kept[0] < at), (at, target)]:
        if at - t < window:
            inside.append((t, n))
        else:
            older = ((t, n),)
    return replace(memory, recommendations=older + tuple(inside))


def _limited_scale_down(
    obs: Observation, limits: Limits, memory: Memory, target: int, reasons: list[str]
) -> int:
    """Scale down to the highest recent recommendation, by at most max_step, after cooldown."""
    since_action = obs.at - memory.last_action_at if memory.last_action_at else None
    # A last action in the future means the clock jumped back: it cannot prove a cooldown.
    if since_action is not None and timedelta(0) <= since_action < limits.cooldown:
        until = memory.last_action_at + limits.cooldown
        reasons.append(f"hold {obs.current}: cooldown after last action until {until.isoformat()}")
        return obs.current
    inside = [n for t, n in memory.recommendations if obs.at - t < limits.stabilization]
    stable = max([*inside, target])
    covered = any(obs.at - t >= limits.stabilization for t, _ in memory.recommendations)
    if not covered:
        since = min(t for t, _ in memory.recommendations)
        reasons.append(
            f"hold {obs.current}: scale-down stabilization needs {limits.stabilization} "
            f"of good data (have it since {since.isoformat()})"
        )
        return obs.current
    if stable >= obs.current:
        reasons.append(
            f"hold {obs.current}: scale-down stabilization "
            f"(highest recommendation in the last {limits.stabilization} is {stable})"
        )
        return obs.current
    desired = stable
    if stable > target:
        reasons.append(f"stabilization keeps {stable} (recent high) instead of {target}")
    if obs.current - desired > limits.max_step_down:
        desired = obs.current - limits.max_step_down
        reasons.append(f"scale down limited to {limits.max_step_down} nodes per step")
    reasons.append(f"scale down {obs.current} → {desired}")
    return desired
