"""Queueing theory for the harness's own batching rule: a discrete-event M/D/c simulation.

Poisson arrivals, `workers` servers sharing one FIFO queue, each taking batches the way
`gpu_bench.workers._collect_batch` does: take the first waiting request, then more until
the batch holds `max_batch` or `max_wait_s` has passed since the first, then compute for
a fixed `service_s` whatever the batch size. An idle worker is blocked in `get()` holding
the queue's read lock, so it gets an arrival before a worker that is still collecting.
The edge is the highest rate whose long-run latency percentile holds the target.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Batching:
    workers: int
    max_batch: int
    max_wait_s: float
    service_s: float


def simulate_latencies(rate_rps: float, rule: Batching, requests: int, seed: int) -> list[float]:
    """Latency (arrival to end of its batch's compute) of each of `requests` arrivals."""
    rng = random.Random(seed)
    arrivals, moment = [], 0.0
    for _ in range(requests):
        moment += rng.expovariate(rate_rps)
        arrivals.append(moment)
    latency = [math.nan] * requests
    waiting: deque[int] = deque()
    idle = list(range(rule.workers))
    collecting: dict[int, tuple[float, list[int]]] = {}  # worker -> (deadline, batch)
    events: list[tuple[float, int, int]] = []  # (time, kind 0=done 1=deadline, worker)
    running: dict[int, list[int]] = {}

    def start(worker: int, batch: list[int], now: float) -> None:
        collecting.pop(worker, None)
        running[worker] = batch
        heapq.heappush(events, (now + rule.service_s, 0, worker))

    def begin(worker: int, first: int, now: float) -> None:
        batch = [first]
        while waiting and len(batch) < rule.max_batch:
            batch.append(waiting.popleft())
        if len(batch) >= rule.max_batch:
            start(worker, batch, now)
        else:
            collecting[worker] = (now + rule.max_wait_s, batch)
            heapq.heappush(events, (now + rule.max_wait_s, 1, worker))

    index = 0
    while index < requests or events:
        next_arrival = arrivals[index] if index < requests else math.inf
        if events and events[0][0] <= next_arrival:
            now, kind, worker = heapq.heappop(events)
            if kind == 0:
                for request in running.pop(worker):
                    latency[request] = now - arrivals[request]
                if waiting:
                    begin(worker, waiting.popleft(), now)
                else:
                    idle.append(worker)
            elif worker in collecting and collecting[worker][0] == now:
                start(worker, collecting[worker][1], now)
            continue
        now = next_arrival
        if idle:
            begin(idle.pop(0), index, now)
        elif collecting:
            worker = min(collecting, key=lambda w: collecting[w][0])
            collecting[worker][1].append(index)
            if len(collecting[worker][1]) >= rule.max_batch:
                start(worker, collecting[worker][1], now)
        else:
            waiting.append(index)
        index += 1
    return latency


def tail_share(latencies: list[float], target_s: float, skip: float = 0.05) -> float:
    """Share of requests over the target, after the first `skip` of them (the warm-up)."""
    kept = latencies[int(len(latencies) * skip) :]
    return sum(1 for value in kept if value > target_s) / len(kept)


def edge_rate(
    rule: Batching,
    target_s: float,
    percentile: float = 0.95,
    requests: int = 100_000,
    seed: int = 1,
    precision: float = 0.005,
) -> float:
    """Highest rate whose long-run share over `target_s` is at most 1 - percentile."""
    allowed = 1 - percentile
    low, high = 0.0, rule.workers * rule.max_batch / rule.service_s
    while high - low > precision * high:
        middle = (low + high) / 2
        share = tail_share(simulate_latencies(middle, rule, requests, seed), target_s)
        low, high = (middle, high) if share <= allowed else (low, middle)
    return low
