"""The daily digest's figures for one pool, from the decision log and the demand series.

Pure: the records, the demand and the pool's settings are arguments. What a day cost
(node-hours at the configured price), the service it delivered (the backtest's
late-request rule, autoscaler/backtest/queue.py), how far the forecast was off, what
was done and overridden, and what two simpler fleets would have cost the same day:
a static fleet sized for the day's peak and a reactive one (the backtest's `hpa`
rule at the pool's target utilization).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from autoscaler.backtest.baselines import reactive_counts
from autoscaler.backtest.queue import queue_lateness, ready_nodes
from autoscaler.policy import nodes_for

MINUTE = pd.Timedelta(minutes=1)
QUEUE_WARMUP = pd.Timedelta(hours=1)
"""The queue (ours and the reactive fleet's) is run from this long before the span, from
its first minute with demand data then: a span opened during a backlog counts the
requests that backlog makes late."""
_OVERRIDE = re.compile(r"override[^(]*\((['\"])(.*?)\1, until ")


@dataclass(frozen=True)
class DigestSettings:
    """What the digest needs to know of a pool (from its config)."""

    per_node_rps: float
    target_utilization: float
    min_nodes: int
    boot_time: timedelta
    horizon: timedelta
    latency_target_s: float
    price_per_node_hour: float | None = None


@dataclass(frozen=True, slots=True)
class LoggedTick:
    """What the digest reads of a decision-log line, and no more. The parsed line (two
    dozen values) took ~2.4 KB in memory, and a day's digest of 1,000 pools ticking each
    minute reads 1.8 M of them: 4 GB in the daemon, once a day (bench/digest_memory.py)."""

    at: pd.Timestamp
    """The line's time, in UTC."""
    pool: str | None
    current: int | None
    desired: int | None
    ready: int | None
    acted: bool
    after: int | None
    """The count the fleet held after the tick, where logged (a clamp read back)."""
    action: str
    """As logged; "" where absent or not text."""
    forecast_rps: float | None
    demand_rps: float | None
    override: str | None
    """The reason of the override that shaped the tick, if one did."""
    errors: bool

    @classmethod
    def of(cls, record: Mapping[str, Any], at: pd.Timestamp | None = None) -> LoggedTick:
        """The line's fields; `at`: its time, where already read (in any zone)."""
        pool, action = record.get("pool"), record.get("action")
        return cls(
            at=record_time(record) if at is None else at.tz_convert("UTC"),
            pool=sys.intern(pool) if isinstance(pool, str) else pool,
            current=record.get("current"),
            desired=record.get("desired"),
            ready=record.get("ready"),
            acted=bool(record.get("acted")),
            after=record.get("after"),
            action=sys.intern(action) if isinstance(action, str) else "",
            forecast_rps=record.get("forecast_rps"),
            demand_rps=record.get("demand_rps"),
            override=_override(record.get("reasons") or ()),
            errors=bool(record.get("errors")),
        )


@dataclass(frozen=True)
class FleetCost:
    node_hours: float
    cost: float | None
    late_share: float | None = None


@dataclass(frozen=True)
class PoolDigest:
    pool: str
    start: datetime
    end: datetime
    fleet: FleetCost
    requests: float
    late_requests: float
    late_minutes: int
    minutes_with_data: int
    minutes: int
    forecast_wape: float | None
    """Sum of |peak forecast - peak demand over the horizon| over the sum of the peaks."""
    forecast_bias: float | None
    """Sum of (forecast - actual) over the sum of actual: above 0 the forecast ran high."""
    forecasts_scored: int
    scale_ups: int
    scale_downs: int
    would_actions: int
    overrides: dict[str, int]
    """Each override's reason, and the ticks it shaped."""
    error_ticks: int
    peak_rps: float | None
    static_nodes: int | None
    static: FleetCost | None
    reactive: FleetCost | None
    frame: pd.DataFrame = field(repr=False)
    """Per minute: demand (req/s), capacity (ready × per-node req/s), nodes (paid), ready."""

    @property
    def service_level(self) -> float | None:
        return 1.0 - self.late_requests / self.requests if self.requests > 0 else None


def pool_digest(
    pool: str,
    records: Iterable[Mapping[str, Any]],
    demand: pd.Series,
    settings: DigestSettings,
    start: datetime,
    end: datetime,
) -> PoolDigest:
    """The digest of [start, end) for one pool. `records`: decision-log lines (the pool's
    earlier ones give the count in force at `start`); `demand`: req/s per minute, NaN
    or absent where unknown (never read as zero)."""
    ticks = [LoggedTick.of(r) for r in records if r.get("pool") == pool and "time" in r]
    return tick_digest(pool, ticks, demand, settings, start, end)


def tick_digest(
    pool: str,
    ticks: Iterable[LoggedTick],
    demand: pd.Series,
    settings: DigestSettings,
    start: datetime,
    end: datetime,
) -> PoolDigest:
    """pool_digest of the pool's lines as read (autoscaler/decision_log_read.py)."""
    minutes = pd.date_range(start, end, freq=MINUTE, inclusive="left")
    # by time alone: two records of one tick are not ordered
    rows = sorted(ticks, key=lambda tick: tick.at)
    frame = _fleet_frame(rows, minutes, settings.per_node_rps)
    frame["demand"] = _readings(demand.reindex(minutes).to_numpy(dtype=float))
    inside = [t for t in rows if start <= t.at < end]
    known = np.isfinite(frame["demand"].to_numpy())
    warm = _warmed(rows, demand, settings.per_node_rps, frame)
    skip = len(warm) - len(frame)
    arrivals = _held(warm["demand"]) * 60.0
    late = queue_lateness(arrivals, warm["capacity"].to_numpy(), settings.latency_target_s).late
    arrivals, late = arrivals[skip:], np.where(known, late[skip:], 0.0)
    node_hours = float(frame["nodes"].sum()) / 60.0
    wape, bias, scored = _forecast_error(inside, frame["demand"], settings.horizon, end)
    # a scale the fleet clamped to the count it had (a MaxSize reached) changed nothing
    actions = Counter(t.action for t in inside if t.acted and t.after != t.current)
    peak = float(np.nanmax(frame["demand"])) if known.any() else None
    static_nodes = (
        max(settings.min_nodes, nodes_for(peak, settings.per_node_rps, settings.target_utilization))
        if peak is not None
        else None
    )
    return PoolDigest(
        pool=pool,
        start=start,
        end=end,
        fleet=FleetCost(node_hours, _cost(node_hours, settings)),
        requests=float(arrivals[known].sum()),
        late_requests=float(late.sum()),
        late_minutes=int(np.count_nonzero(late > 1e-9)),
        minutes_with_data=int(known.sum()),
        minutes=len(minutes),
        forecast_wape=wape,
        forecast_bias=bias,
        forecasts_scored=scored,
        scale_ups=actions["scale_up"],
        scale_downs=actions["scale_down"],
        would_actions=sum(1 for t in inside if t.action.startswith("would_")),
        overrides=dict(Counter(t.override for t in inside if t.override is not None)),
        error_ticks=sum(1 for t in inside if t.errors),
        peak_rps=peak,
        static_nodes=static_nodes,
        static=_static(static_nodes, len(minutes), settings),
        reactive=_reactive(warm["demand"], settings, known, skip) if known.any() else None,
        frame=frame,
    )


def _warmed(
    rows: list[LoggedTick], demand: pd.Series, per_node: float, frame: pd.DataFrame
) -> pd.DataFrame:
    """`frame` with the minutes of QUEUE_WARMUP before it put first, from the first of
    them with demand data (none where they have none). Started empty at the span's start,
    a report opened during a backlog (`--since 6h` at 12:01, after a minute at 20 req/s
    on 15) counted none of the requests it makes late."""
    if frame.empty:
        return frame
    start = frame.index[0]
    before = pd.date_range(start - QUEUE_WARMUP, start, freq=MINUTE, inclusive="left")
    readings = _readings(demand.reindex(before).to_numpy(dtype=float))
    known = np.flatnonzero(np.isfinite(readings))
    if not len(known):
        return frame
    early = _fleet_frame(rows, before[known[0] :], per_node)
    early["demand"] = readings[known[0] :]
    return pd.concat([early, frame])


def _readings(demand: np.ndarray) -> np.ndarray:
    """The demand with what is no reading of it made unknown (NaN), as the daemon's check
    refuses it (metrics.check_demand): an infinite minute (a rate over a zero) failed the
    whole digest, every pool's, and a negative one was read as less than no load (the
    reactive fleet's late share below zero)."""
    return np.where(np.isfinite(demand) & (demand >= 0), demand, np.nan)


def _held(demand: pd.Series) -> np.ndarray:
    """The demand the queue is fed: an unknown minute holds the last known demand (the
    first known before any), as the reactive fleet's queue does. Fed as no requests, a
    minute without data drained the backlog, and the late minutes after it read on time."""
    return np.nan_to_num(demand.ffill().bfill().to_numpy(dtype=float))


def record_time(record: Mapping[str, Any]) -> pd.Timestamp:
    """A decision-log line's time, in UTC (read_records has checked it is one)."""
    return pd.Timestamp(record["time"]).tz_convert("UTC")


def _fleet_frame(
    rows: list[LoggedTick], minutes: pd.DatetimeIndex, per_node: float
) -> pd.DataFrame:
    """Nodes paid and ready in each minute: what the last tick at or before it left;
    before the first tick, what that tick found (not what it ordered: a pool added at
    14:00 whose first tick went from 2 to 5 nodes was 5 nodes all morning)."""
    stamps, paid, ready, found = [], [], [], []
    for tick in rows:
        current = tick.current
        if current is None:
            continue
        stamps.append(tick.at)
        found.append(int(current))
        paid.append(int(_paid(tick, current)))
        ready.append(int(tick.ready if tick.ready is not None else current))
    if not stamps:
        frame = pd.DataFrame({"nodes": 0.0, "ready": 0.0}, index=minutes)
    else:
        # floored all at once, not a Timestamp.floor per tick (bench/digest_memory.py)
        index = pd.DatetimeIndex(stamps).floor("min")
        seen = pd.DataFrame({"nodes": paid, "ready": ready}, index=index)
        seen = seen[~seen.index.duplicated(keep="last")]
        frame = seen.reindex(seen.index.union(minutes)).ffill()
        frame = frame.fillna({"nodes": float(found[0]), "ready": float(ready[0])})
        frame = frame.reindex(minutes)
    frame["capacity"] = frame["ready"] * per_node
    return frame


def _paid(tick: LoggedTick, current: int) -> int:
    """The count a tick left: the one it read back after a clamp (MaxSize, a suspended
    launch), else the one it set, else the one it found. A pool held at a group's MaxSize
    asks above it every tick: its ask counted all day doubled the node-hours."""
    if tick.after is not None:
        return tick.after
    return tick.desired if tick.acted and tick.desired is not None else current


def _forecast_error(
    ticks: list[LoggedTick], demand: pd.Series, horizon: timedelta, end: datetime
) -> tuple[float | None, float | None, int]:
    """Each tick's peak point forecast against the peak demand over its horizon.
    `demand`: per minute, in time order. One pass over the series for all the ticks: a
    filter of it per tick took ~0.15 s a pool-day (bench/digest_memory.py)."""
    kept = [tick for tick in ticks if tick.forecast_rps is not None]
    if not kept:
        return None, None, 0
    at = pd.DatetimeIndex([tick.at for tick in kept]).floor("min")  # whole minutes
    due = np.asarray(at + horizon <= pd.Timestamp(end), dtype=bool)
    at = at[due]
    forecasts = np.array(
        [float(t.forecast_rps) for t, d in zip(kept, due, strict=True) if d], dtype=float
    )
    lo = demand.index.searchsorted(at, side="right")  # the minutes after the tick's...
    hi = demand.index.searchsorted(at + horizon, side="right")  # ...up to its horizon
    values = demand.to_numpy(dtype=float)
    known = np.concatenate([[0], np.cumsum(~np.isnan(values))])
    seen = known[hi] > known[lo]
    peaks = _window_peaks(np.where(np.isnan(values), -np.inf, values), lo, hi)[seen]
    forecasts = forecasts[seen]
    scored = len(peaks)
    # accumulated in tick order from 0.0, as the figures have always been summed
    actual = _running_total(peaks)
    if not scored or actual <= 0:
        return None, None, scored
    absolute = _running_total(np.abs(forecasts - peaks))
    return absolute / actual, _running_total(forecasts - peaks) / actual, scored


def _window_peaks(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo:hi]) for each window (an empty one: undefined), in one reduceat."""
    if not len(lo):
        return np.empty(0)
    padded = np.append(values, -np.inf)  # reduceat's indices must lie inside the array
    return np.maximum.reduceat(padded, np.column_stack([lo, hi]).ravel())[::2]


def _running_total(terms: np.ndarray) -> float:
    """0.0 + terms[0] + terms[1] + ..., left to right (np.sum pairs them up)."""
    return float(np.cumsum(np.concatenate([[0.0], terms]))[-1])


def _override(reasons: Iterable[Any]) -> str | None:
    """The reason given for the first override among a tick's reasons."""
    for reason in reasons:
        found = _OVERRIDE.search(str(reason))
        if found:
            return sys.intern(found.group(2))
    return None


def _cost(node_hours: float, settings: DigestSettings) -> float | None:
    price = settings.price_per_node_hour
    return None if price is None else node_hours * price


def _static(nodes: int | None, minutes: int, settings: DigestSettings) -> FleetCost | None:
    if nodes is None:
        return None
    hours = nodes * minutes / 60.0
    return FleetCost(hours, _cost(hours, settings), late_share=None)


def _reactive(
    demand: pd.Series, settings: DigestSettings, known: np.ndarray, skip: int = 0
) -> FleetCost:
    """The HPA rule on the demand of the minute before (the first minute: its own); an
    unknown minute holds the last known demand, never zero. The first `skip` minutes are
    the warm-up before the span (_warmed): run, not counted."""
    held = _held(demand)
    last = np.concatenate([held[:1], held[:-1]])
    counts = reactive_counts(
        last, settings.per_node_rps, settings.target_utilization, settings.min_nodes
    )
    boot = int(settings.boot_time / timedelta(minutes=1))
    ready = ready_nodes(counts, boot, int(counts[0]))
    arrivals = held * 60.0
    late = queue_lateness(arrivals, ready * settings.per_node_rps, settings.latency_target_s).late
    arrivals, late, counts = arrivals[skip:], late[skip:], counts[skip:]
    requests = float(arrivals[known].sum())
    share = float(late[known].sum()) / requests if requests > 0 else None
    hours = float(counts.sum()) / 60.0
    return FleetCost(hours, _cost(hours, settings), share)
