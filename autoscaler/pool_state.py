"""A pool's memory across restarts (PoolState) and its JSON form in the state file.

Reading is strict where a wrong value would mislead a tick (a naive time, a count that is
no count: ValueError naming the pool, its line and the field, and the store sets the file
aside) and lenient where a hand edit only loses a convenience (a last decision `status`
shows, a loop calibration that is then made afresh: dropped or made readable, logged).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autoscaler.policy import Memory

log = logging.getLogger("autoscaler.state")  # the store's logger: what it read, it says

UNREADABLE = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    OverflowError,
    RecursionError,
)
"""What reading a saved object can raise: besides the wrong shapes, a number JSON reads
as infinite (`1e999`) that `int` cannot take, and nesting deeper than the parser goes."""


@dataclass
class PoolState:
    memory: Memory = field(default_factory=Memory)
    failing: dict[str, datetime] = field(default_factory=dict)
    """Failure kinds in an ongoing episode, with the time each started."""
    reported_expired: list[str] = field(default_factory=list)
    """Expired overrides already announced, as 'expiry ISO time'."""
    last_decision: dict[str, Any] | None = None
    last_known_desired: int | None = None
    """The count the fleet had when the last tick ended: a different count now means
    someone else changed it."""
    fleet: str | None = None
    """Which fleet that count is of (backends.settings.Fleet.key): a reload or a restart
    that moves the pool to another fleet must not take its count for a change by hand."""
    write_failing: bool = False
    """The backend failure going on began at (or came to) a fleet write that has not
    succeeded since: only a write, or a tick needing none, ends it (not a read alone)."""
    capacity_alerted: bool = False
    """A capacity drift was told and has not come back within the tolerance since."""
    capacity: dict[str, Any] | None = None
    """The capacity check's figure as last measured (measured, samples, busy_gate and the
    profile it was measured against; autoscaler.capacity_watch): a restart, or `forecast`,
    at a quiet hour has no busy sample to measure it again from."""
    others_told: list[str] = field(default_factory=list)
    """The other autoscalers on the fleet last told on Slack (autoscaler.other_autoscalers):
    a restart, a reload or a `--once` from cron tells them again only once they change."""
    loop: dict[str, Any] | None = None
    """The loop calibration last used (margin, member, aim, at, the static member's
    held_level, under `margin: widen` its floor, and when each member last had a day over
    the target; autoscaler.loop_restarts), so that a restart resumes it instead of the
    band as the forecaster made it (None before the first calibration)."""


def last_count_of(state: PoolState, fleet: str | None) -> int | None:
    """The count the last tick left, where it is of `fleet` (a fleet key): None where a
    reload or a restart moved the pool to another fleet since (another fleet's count is no
    change by hand); a state saved before it said which fleet it counted: that count."""
    return state.last_known_desired if state.fleet in (None, fleet) else None


def pool_to_json(state: PoolState) -> dict[str, Any]:
    memory = state.memory
    return {
        "last_action_at": _iso(memory.last_action_at),
        "recommendations": [[_text(t), n] for t, n in memory.recommendations],
        "failing": {kind: _text(since) for kind, since in state.failing.items()},
        "reported_expired": state.reported_expired,
        "last_decision": state.last_decision,
        "last_known_desired": state.last_known_desired,
        "fleet": state.fleet,
        "write_failing": state.write_failing,
        "capacity_alerted": state.capacity_alerted,
        "capacity": state.capacity,
        "others_told": state.others_told,
        "manual_change_at": _iso(memory.manual_change_at),
        "signal_counts": [[name, _text(at), n] for name, at, n in memory.signal_counts],
        "loop": state.loop,
    }


def pool_named(name: str, data: Any, text: str) -> PoolState:
    """A pool of the state file, or ValueError naming it and its line (the file has a line
    a pool) besides the field: a hand edit said only "'list' object has no attribute
    'items'", and the whole file was set aside without saying where."""
    try:
        return pool_from_json(data)
    except UNREADABLE as exc:
        start = text.find(f"\n{json.dumps(name)}: ") + 1  # 0: not at a line's start
        number = text.count("\n", 0, start) + 1
        raise ValueError(f"pool {name!r}{f' (line {number})' if start else ''}: {exc}") from exc


def pool_from_json(data: dict[str, Any]) -> PoolState:
    """A pool's saved state; ValueError naming the field that does not read."""
    if not isinstance(data, dict):
        raise ValueError(f"a {type(data).__name__}, not a mapping")

    def read(key: str, convert: Any, default: Any = None) -> Any:
        try:
            return convert(data.get(key, default))
        except UNREADABLE as exc:
            raise ValueError(f"{key}: {exc}") from None

    memory = Memory(
        last_action_at=read("last_action_at", _from_iso),
        manual_change_at=read("manual_change_at", _from_iso),
        recommendations=read(
            "recommendations", lambda v: tuple((aware_time(t), _count(n)) for t, n in v), []
        ),
        signal_counts=read(
            "signal_counts",
            lambda v: tuple((str(name), aware_time(t), _count(n)) for name, t, n in v),
            [],
        ),
    )
    return PoolState(
        memory=memory,
        failing=read("failing", lambda v: {str(k): aware_time(t) for k, t in v.items()}, {}),
        reported_expired=read("reported_expired", lambda v: [str(x) for x in v], []),
        last_decision=_decision(data.get("last_decision")),
        last_known_desired=read("last_known_desired", lambda v: None if v is None else _count(v)),
        fleet=read("fleet", lambda v: None if v is None else str(v)),
        write_failing=data.get("write_failing", False) is True,
        capacity_alerted=data.get("capacity_alerted", False) is True,
        capacity=_capacity(data.get("capacity")),
        others_told=read("others_told", lambda v: [str(x) for x in v], []),
        loop=_loop(data.get("loop")),
    )


def _loop(value: Any) -> dict[str, Any] | None:
    """The saved loop calibration if every field has its type (a hand edit is dropped:
    the pool then calibrates afresh, as on a first start)."""
    if value is None:
        return None
    try:
        loop = {
            "margin": float(value["margin"]),
            "member": str(value["member"]),
            "aim": float(value["aim"]),
            "at": aware_time(value["at"]).isoformat(),
        }
        if "held_level" in value:  # the static member's level (autoscaler.portfolio)
            loop["held_level"] = float(value["held_level"])
        if "floor" in value:  # under `margin: widen`, the floor the margin was set above
            loop["floor"] = float(value["floor"])
        if "day_over" in value:  # each member's last day over the target (portfolio.choose)
            if not isinstance(value["day_over"], dict):
                raise ValueError("day_over is not a mapping")
            loop["day_over"] = {
                str(m): aware_time(t).isoformat() for m, t in value["day_over"].items()
            }
        if "budget" in value:  # the last recalibration's budget, as its reasons said it
            loop["budget"] = _loop_budget(value["budget"])
    except (TypeError, KeyError, ValueError, OverflowError) as exc:
        log.warning("state: loop calibration %r unreadable (%s); ignored", value, exc)
        return None
    return loop


def _loop_budget(value: Any) -> dict[str, float | str]:
    """A saved loop's budget (LoopRestarts._budget_said): numbers, and the choice's text."""
    if not isinstance(value, dict):
        raise ValueError("budget is not a mapping")
    return {str(k): str(v) if k == "choice" else float(v) for k, v in value.items()}


def _capacity(value: Any) -> dict[str, Any] | None:
    """The measured capacity if every field has its type (a hand edit is dropped: the
    check then measures afresh, as on a first start)."""
    if value is None:
        return None
    try:
        saved = {
            "measured": float(value["measured"]),
            "samples": _count(value["samples"]),
            "busy_gate": value["busy_gate"],
            "profile": float(value["profile"]),
        }
        if not isinstance(saved["busy_gate"], bool):
            raise ValueError("busy_gate is not true or false")
        if not all(math.isfinite(saved[k]) and saved[k] > 0 for k in ("measured", "profile")):
            raise ValueError("not a positive number of req/s")
    except (TypeError, KeyError, ValueError, OverflowError) as exc:
        log.warning("state: measured capacity %r unreadable (%s); ignored", value, exc)
        return None
    return saved


def _decision(value: Any) -> dict[str, Any] | None:
    """The last decision as `status` reads it; a hand-edited field of the wrong type is
    made readable (reasons a list of text, errors a mapping of text) or dropped."""
    if not isinstance(value, dict):
        if value is not None:
            log.warning(
                "state: last_decision is a %s, not a mapping; ignored", type(value).__name__
            )
        return None
    decision = dict(value)
    reasons, errors, signals = (decision.get(k) for k in ("reasons", "errors", "signals"))
    if "reasons" in decision:  # null too: `status` joins them
        listed = [] if reasons is None else reasons if isinstance(reasons, list) else [reasons]
        decision["reasons"] = [str(r) for r in listed]
    if errors is not None:
        pairs = errors.items() if isinstance(errors, dict) else [("?", errors)]
        decision["errors"] = {str(k): str(v) for k, v in pairs}
    if signals is not None:
        listed = signals if isinstance(signals, list) else []
        decision["signals"] = [s for s in listed if isinstance(s, dict)]
    return decision


def _iso(moment: datetime | None) -> str | None:
    return _text(moment) if moment else None


def _text(moment: datetime) -> str:
    """`moment.isoformat()`, kept for UTC times: every pool's memory holds the same tick
    times (~30 each, a stabilization window's), and formatting them anew was most of
    writing the state file of 1,000 pools (~20 of ~35 ms a tick)."""
    return _utc_text(moment) if moment.tzinfo is UTC else moment.isoformat()


@functools.lru_cache(maxsize=8192)
def _utc_text(moment: datetime) -> str:
    return moment.isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return aware_time(text) if text else None


def aware_time(text: str) -> datetime:
    """A naive time would pass loading and then break every tick's comparisons."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return moment


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"node count {value!r} is not a non-negative integer")
    return value
