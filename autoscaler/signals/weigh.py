"""Weighing the signals' counts (pure, called by policy.decide): the highest count wins.

A signal without data holds its last good count for its `hold_for`, then asks to hold
the fleet where it is (never zero, never a scale-down); a signal with bad input stops
all scaling until it is fixed. Like nomad-autoscaler's checks, the safest action wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from common.durations import format_duration

LastGood = tuple[tuple[str, datetime, int], ...]
"""Each signal's last good count and when it was seen: (name, at, nodes)."""


@dataclass(frozen=True)
class SignalReading:
    """One signal at one tick, as the observe step saw it."""

    name: str
    kind: str
    nodes: int | None
    """The count it asks for; None when it has none this tick (no data, or bad input)."""
    detail: str
    """What was seen and how it became a count, or what went wrong."""
    value: float | None = None
    bad: bool = False
    """The input cannot be right (several series, a negative or NaN queue, over 100 %)."""
    hold_for: timedelta = timedelta(minutes=10)

    @property
    def label(self) -> str:
        return f"signal {self.name} ({self.kind})"

    def record(self) -> dict[str, object]:
        """For the decision log."""
        return {
            "name": self.name,
            "kind": self.kind,
            "nodes": self.nodes,
            "value": self.value,
            "bad_input": self.bad,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Weighed:
    nodes: int | None
    """The highest count of the signals that have one (held counts included)."""
    leader: str | None
    """The signal that asks for `nodes`, and how: "asks for", "holds its last good count
    of" (no data, within its hold) or "(no data) holds the fleet at"."""
    bad_input: bool
    """A signal's input is bad: nothing is scaled."""
    missing: bool
    """A signal is without data past its hold: the fleet is held (no scale-down)."""
    last_good: LastGood


def weigh(
    readings: tuple[SignalReading, ...],
    last_good: LastGood,
    at: datetime,
    current: int,
    reasons: list[str],
) -> Weighed:
    """Each signal's count and reason (into `reasons`), the highest, and the memory."""
    remembered = {name: (seen, nodes) for name, seen, nodes in last_good}
    counts: list[tuple[int, str]] = []  # (nodes, "name verb")
    bad = missing = False
    kept: list[tuple[str, datetime, int]] = []
    for reading in readings:
        previous = remembered.get(reading.name)
        if reading.nodes is not None and not reading.bad:
            kept.append((reading.name, at, reading.nodes))
            counts.append((reading.nodes, f"{reading.name} asks for"))
            reasons.append(f"{reading.label} needs {reading.nodes} nodes: {reading.detail}")
            continue
        if previous is not None:
            kept.append((reading.name, *previous))
        if reading.bad:
            bad = True
            reasons.append(f"{reading.label}: bad input: {reading.detail}")
            continue
        held = _held(reading, previous, at, current, reasons)
        missing = missing or held is None
        if held is None:
            counts.append((current, f"{reading.name} (no data) holds the fleet at"))
        else:
            counts.append((held, f"{reading.name} holds its last good count of"))
    best = max(counts, key=lambda count: count[0], default=None)  # a tie: the first listed
    return Weighed(
        nodes=best[0] if best else None,
        leader=best[1] if best else None,
        bad_input=bad,
        missing=missing,
        last_good=tuple(kept),
    )


def _held(
    reading: SignalReading,
    last: tuple[datetime, int] | None,
    at: datetime,
    current: int,
    reasons: list[str],
) -> int | None:
    """The last good count while it is recent enough, else None (and say which)."""
    if last is not None and timedelta(0) <= at - last[0] <= reading.hold_for:
        seen, nodes = last
        until = seen + reading.hold_for
        reasons.append(
            f"{reading.label}: no data ({reading.detail}); holding its last good count "
            f"{nodes} from {seen.isoformat()} until {until.isoformat()}"
        )
        return nodes
    since = "" if last is None else f" since {last[0].isoformat()}"
    reasons.append(
        f"{reading.label}: no data ({reading.detail}){since}, past its hold of "
        f"{format_duration(reading.hold_for)}: hold the fleet at {current} (never zero)"
    )
    return None
