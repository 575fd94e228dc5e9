"""Reading the signals in the tick's observe step, through metrics.fetch_latest's checks.

Several series is bad input (the query must aggregate); no data, old data or an
unreachable server is missing data (the policy holds the last good count for a while).
A value that cannot be right (negative, NaN, over 100 %) is bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from autoscaler.config.schema import Pool
from autoscaler.metrics import MetricsError, MetricsSource, fetch_latest
from autoscaler.policy import nodes_for
from autoscaler.signals.base import BadSignalInput, SignalContext
from autoscaler.signals.settings import SignalConfig
from autoscaler.signals.weigh import SignalReading
from backends.base import FleetState

BAD_INPUT_KINDS = frozenset({"ambiguous"})
"""Query answers that are a mistake in the query, not an outage: nothing is scaled."""


def read_signal(
    signal: SignalConfig,
    metrics: MetricsSource,
    now: datetime,
    max_staleness: timedelta,
    context: SignalContext,
) -> SignalReading:
    try:
        value = fetch_latest(metrics, signal.query, now, max_staleness)
    except MetricsError as exc:
        return SignalReading(
            signal.name,
            signal.kind,
            None,
            f"{exc.kind}: {exc.reason}; query {exc.query!r}",
            bad=exc.kind in BAD_INPUT_KINDS,
            hold_for=signal.hold_for,
        )
    return reading_of(signal, value, context)


def reading_of(signal: SignalConfig, value: float, context: SignalContext) -> SignalReading:
    """One observed value to the signal's reading (pure: the backtest replays through it)."""
    try:
        nodes, detail = signal.count(value, context)
    except (BadSignalInput, ValueError, ArithmeticError) as exc:  # or no fleet is that big
        why = exc if isinstance(exc, BadSignalInput) else f"{value:g} gives no node count: {exc}"
        return SignalReading(
            signal.name,
            signal.kind,
            None,
            f"{why}; query {signal.query!r}",
            value,
            bad=True,
            hold_for=signal.hold_for,
        )
    return SignalReading(signal.name, signal.kind, nodes, detail, value, hold_for=signal.hold_for)


def read_signals(
    signals: Sequence[SignalConfig],
    metrics: MetricsSource,
    now: datetime,
    max_staleness: timedelta,
    context: SignalContext,
) -> tuple[SignalReading, ...]:
    return tuple(read_signal(s, metrics, now, max_staleness, context) for s in signals)


class _Demand(Protocol):
    demand_now: float | None


def observe_signals(
    pool: Pool,
    metrics: MetricsSource,
    now: datetime,
    max_staleness: timedelta,
    fleet: FleetState,
    sizing: _Demand,
    per_node_rps: float,
) -> tuple[SignalReading, ...]:
    """The pool's signals at this tick (the daemon and `forecast`); none configured: ()."""
    if not pool.signals:
        return ()
    context = context_of(pool, fleet, sizing.demand_now, per_node_rps)
    return read_signals(pool.signals, metrics, now, max_staleness, context)


def context_of(
    pool: Pool, fleet: FleetState, demand_now: float | None, per_node_rps: float
) -> SignalContext:
    return SignalContext(
        fleet.desired, fleet.ready, demand_now, per_node_rps, pool.target_utilization, nodes_for
    )


def signal_problems(readings: Sequence[SignalReading]) -> str | None:
    """The signals without a count this tick, for the tick's errors (one alert an episode)."""
    problems = [
        f"{r.label}: {'bad input' if r.bad else 'no data'}: {r.detail}"
        for r in readings
        if r.nodes is None
    ]
    return "; ".join(problems) or None
