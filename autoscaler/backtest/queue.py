"""The backtest's fleet and queue models: what a count of nodes per minute costs and serves.

Fleet. A decision at the start of minute j sets the count `desired[j]`, paid for in
minute j whether the nodes are ready or booting. New nodes are ready `boot` minutes
after they were ordered; removed nodes stop at once, the newest (still booting)
first, as the simulated backend (backends/simulated.py) does. So the nodes ready in minute j are
those ordered at or before j - boot that no removal has reached since:
ready[j] = min(desired[j - boot], ..., desired[j]).

Queue (a fluid model, per minute). The requests of a minute arrive evenly spread over
it, at a/s; the ready nodes serve c = ready * per_node_rps req/s. Requests beyond that
wait in one FIFO backlog carried across minutes (Lindley's recursion, solved in closed
form with a running minimum). A request is late when the backlog it joins, drained at
c, takes longer than the latency target L: queue ahead > L * c. Within a minute the
queue is linear in time, so the late share of the minute has a closed form. With no
ready node every arriving request is late. Per-node capacity is measured at the
latency SLO (gpu_bench), so a queue under L * c is within the target by definition.
Approximations, both small at minute scale: arrivals are even within the minute (no
Poisson bursts inside it), and a queue joined in the last L seconds of a minute is
drained at that minute's rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SECONDS = 60.0


def ready_nodes(desired: np.ndarray, boot_minutes: int, initial_ready: int) -> np.ndarray:
    """Ready nodes per minute for the counts `desired` set at each minute's start.

    Before the first minute the fleet had `initial_ready` nodes, all ready.
    """
    desired = np.asarray(desired, dtype=np.int64)
    if boot_minutes <= 0 or len(desired) == 0:
        return desired.copy()
    padded = np.concatenate([np.full(boot_minutes, initial_ready, dtype=np.int64), desired])
    return sliding_window_view(padded, boot_minutes + 1).min(axis=1)


@dataclass(frozen=True)
class QueueResult:
    late: np.ndarray
    """Late requests in each minute (fluid: may be fractional)."""
    backlog: np.ndarray
    """Requests waiting at the start of each minute."""


def queue_lateness(
    arrivals: np.ndarray,
    capacity_rps: np.ndarray,
    latency_target_s: float,
    step_s: float = SECONDS,
) -> QueueResult:
    """Late requests per minute for `arrivals` (requests per minute) served at `capacity_rps`;
    per step of `step_s` seconds, arrivals per step, where the rates hold that long (the
    loop's replay of ticks an interval apart: the same as its minutes one by one)."""
    arrivals = np.asarray(arrivals, dtype=float)
    service = np.asarray(capacity_rps, dtype=float)
    if arrivals.shape != service.shape:
        raise ValueError("arrivals and capacity must cover the same minutes")
    net = arrivals - service * step_s
    level = np.concatenate([[0.0], np.cumsum(net)])
    backlog_all = level - np.minimum.accumulate(level)  # Lindley: W_n = S_n - min_{k<=n} S_k
    backlog = np.maximum(backlog_all[:-1], 0.0)
    rate_in = arrivals / step_s
    threshold = latency_target_s * service
    late_seconds = np.zeros_like(arrivals)
    with np.errstate(divide="ignore", invalid="ignore"):
        growing = rate_in > service  # queue(t) = backlog + (a - c) t rises
        start = (threshold - backlog) / (rate_in - service)
        late_seconds = np.where(growing, step_s - np.clip(start, 0.0, step_s), late_seconds)
        shrinking = rate_in < service  # queue(t) falls: late until it is under L * c
        end = (backlog - threshold) / (service - rate_in)
        late_seconds = np.where(shrinking, np.clip(end, 0.0, step_s), late_seconds)
        steady = rate_in == service
        late_seconds = np.where(steady & (backlog > threshold), step_s, late_seconds)
    late = rate_in * late_seconds
    return QueueResult(late=np.minimum(late, arrivals), backlog=backlog)


@dataclass(frozen=True)
class Score:
    """One policy's cost and service over the scored minutes."""

    node_hours: float
    late_share: float
    late_minutes: int
    scale_actions: int
    requests: float

    def meets(self, service_target: float) -> bool:
        return self.late_share <= service_target + 1e-12


def score_fleet(
    arrivals: np.ndarray,
    desired: np.ndarray,
    ready: np.ndarray,
    per_node_rps: float,
    latency_target_s: float,
    scored_from: int,
    previous_count: int | None = None,
) -> Score:
    """Score the minutes from `scored_from` on (the queue runs over all of them).

    Scale actions count changes of the count inside the scored minutes.
    """
    queue = queue_lateness(
        arrivals, np.asarray(ready, dtype=float) * per_node_rps, latency_target_s
    )
    late = queue.late[scored_from:]
    requests = float(np.sum(arrivals[scored_from:]))
    counts = np.asarray(desired, dtype=np.int64)
    before = counts[scored_from - 1] if scored_from > 0 else previous_count
    scored = counts[scored_from:]
    changes = np.count_nonzero(np.diff(scored)) if len(scored) else 0
    if before is not None and len(scored) and scored[0] != before:
        changes += 1
    return Score(
        node_hours=float(np.sum(scored)) / 60.0,
        late_share=float(np.sum(late)) / requests if requests > 0 else 0.0,
        late_minutes=int(np.count_nonzero(late > 1e-9)),
        scale_actions=int(changes),
        requests=requests,
    )
