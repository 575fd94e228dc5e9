"""Invariants under random faults: a hypothesis property test and a 10,000-tick soak.

Both drive the real PoolTicker against a SimulatedFleet on a SimulatedClock, with
in-memory demand and the cheap linear predictor, injecting metrics failures, NaN,
stale and empty data, 1000x spikes, counter-reset dips, fleet read and scale
failures, overrides appearing and expiring, counts changed by hand and clock jumps.
After every tick:
- the decision stays in [min_nodes, max_nodes];
- it never shrinks the fleet while demand data is missing;
- it never drops more than scale_down.max_step (except a fixed override, or from
  above max_nodes);
and at the end every action is in the decision log with its reasons.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.config.schema import Pool
from autoscaler.decision_log import DecisionLog
from autoscaler.metrics import MetricsError
from autoscaler.overrides import Override, OverridesFile, active_override
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker, TickResult
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from tests.autoscaler.test_tick import START
from tests.support import RecordingNotifier, read_decisions

MINUTE = timedelta(minutes=1)
METRICS_FAULTS = ("unreachable", "timeout", "empty", "nan", "stale", "spike", "reset")
EVENTS = (*METRICS_FAULTS, "fail_read", "fail_scale", "override", "manual", "jump")

POOL = Pool.model_validate(
    {
        "name": "soak",
        "backend": {"kind": "simulated"},
        "demand": {"query": "q", "window": "20m"},
        "capacity": {"per_node_rps": 1.0},
        "target_utilization": 0.8,
        "predictor": {"kind": "linear", "params": {"window": "15m"}},
        "boot_time": "5m",
        "horizon": "5m",
        "min_nodes": 2,
        "max_nodes": 40,
        "scale_down": {"stabilization": "10m", "max_step": 3},
        "cooldown": "4m",
    }
)


class SoakDemand:
    """A daily curve of 0-40 req/s with a little noise; one fault can be armed per tick."""

    def __init__(self, seed: int) -> None:
        self.noise = np.random.default_rng(seed)
        self.fault: str | None = None

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        fault, self.fault = self.fault, None
        if fault in ("unreachable", "timeout"):
            raise MetricsError(fault, query, "injected")  # type: ignore[arg-type]
        if fault == "empty":
            return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
        stamp = end - timedelta(minutes=20) if fault == "stale" else end
        index = pd.date_range(stamp - 19 * MINUTE, stamp, freq="1min")
        minutes = index.asi8 / 6e10
        values = 20 + 18 * np.sin(minutes * 2 * math.pi / 1440) + self.noise.normal(0, 1, 20)
        values = np.clip(values, 0, None)
        if fault == "nan":
            values[-1] = math.nan
        elif fault == "spike":
            values[-1] *= 1000
        elif fault == "reset":
            values[-1] = 0.0
        return pd.Series(values, index=index, dtype=float)


class Soak:
    def __init__(self, tmp_path: Path, seed: int) -> None:
        self.clock = SimulatedClock(START)
        self.metrics = SoakDemand(seed)
        self.fleet = SimulatedFleet(self.clock, 4, timedelta(minutes=5))
        self.log_path = tmp_path / f"soak-{seed}.jsonl"
        self.ticker = PoolTicker(
            POOL,
            self.fleet,
            1.0,
            self.metrics,
            timedelta(minutes=5),
            RecordingNotifier(),
            DecisionLog(self.log_path),
            False,
        )
        self.state = PoolState()
        self.overrides = OverridesFile()
        self.injected: Counter[str] = Counter()
        self.ticks = 0

    def inject(self, event: str, rng: random.Random) -> None:
        self.injected[event] += 1
        now = self.clock.now()
        if event in METRICS_FAULTS:
            self.metrics.fault = event
        elif event == "fail_read":
            self.fleet.fail_reads = 1
        elif event == "fail_scale":
            self.fleet.fail_scales = 1
        elif event == "override":
            expires = now + rng.randint(2, 60) * MINUTE
            if rng.random() < 0.5:
                pin = Override(nodes=rng.randint(2, 40), expires=expires, reason="soak")
            else:
                low = rng.randint(2, 40)
                pin = Override(
                    min_nodes=low, max_nodes=rng.randint(low, 40), expires=expires, reason="soak"
                )
            self.overrides = OverridesFile(overrides={"soak": pin})
        elif event == "manual":
            count = rng.randint(0, 45)  # a person may even go outside the pool's bounds
            self.fleet.ready_at = (self.fleet.ready_at + [now] * count)[:count]
        elif event == "jump":
            minutes = rng.randint(1, 180) if rng.random() < 0.6 else -rng.randint(1, 90)
            self.clock.advance(minutes * MINUTE)

    def tick(self) -> TickResult:
        now = self.clock.now()
        pin = active_override(self.overrides, "soak", now)
        result = self.ticker.tick(now, self.state, self.overrides)
        self.ticks += 1
        check_invariants(result, pin, self.fleet)
        self.clock.advance(MINUTE)
        return result

    def check_log(self) -> None:
        records = read_decisions(self.log_path)
        assert len(records) == self.ticks
        assert sum(r["acted"] for r in records) == self.fleet.writes
        for record in records:
            assert record["reasons"], record
            if record["action"] in ("scale_up", "scale_down"):
                assert any("scale" in r or "override" in r for r in record["reasons"]), record


def check_invariants(result: TickResult, pin: Override | None, fleet: SimulatedFleet) -> None:
    decision = result.decision
    if decision is None:
        assert "backend" in result.errors and not result.acted
        return
    current, desired = decision.current, decision.desired
    fixed = pin is not None and pin.nodes is not None
    assert POOL.min_nodes <= desired <= POOL.max_nodes, decision
    if result.sizing.nodes is None and current <= POOL.max_nodes:
        assert desired >= current, ("shrank on missing data", decision)
    if not fixed and current <= POOL.max_nodes:
        assert current - desired <= POOL.scale_down.max_step, decision
    if result.acted:
        assert fleet.read().desired == desired or fleet.fail_reads
    assert decision.reasons


@settings(
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**16),
    plan=st.lists(st.lists(st.sampled_from(EVENTS), max_size=2), min_size=5, max_size=60),
)
def test_invariants_hold_for_any_sequence_of_faults(
    tmp_path: Path, seed: int, plan: list[list[str]]
) -> None:
    soak = Soak(tmp_path, seed)
    rng = random.Random(seed)
    for events in plan:
        for event in events:
            soak.inject(event, rng)
        soak.tick()
    soak.check_log()
    soak.log_path.unlink()


SOAK_TICKS = 10_000


def test_soak_ten_thousand_ticks_with_random_faults(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    soak = Soak(tmp_path, seed=7)
    chances = {
        **{kind: 0.012 for kind in METRICS_FAULTS},
        "fail_read": 0.02,
        "fail_scale": 0.02,
        "override": 0.01,
        "manual": 0.01,
        "jump": 0.005,
    }
    started = time.monotonic()
    actions = Counter()
    for _ in range(SOAK_TICKS):
        for event, chance in chances.items():
            if rng.random() < chance:
                soak.inject(event, rng)
        result = soak.tick()
        actions[result.decision.action if result.decision else "skipped"] += 1
    soak.check_log()
    faults = sum(soak.injected.values())
    print(
        f"\nsoak: {soak.ticks} ticks, {faults} faults injected {dict(soak.injected)}, "
        f"decisions {dict(actions)}, {time.monotonic() - started:.1f}s"
    )
    assert soak.ticks == SOAK_TICKS
    assert faults > 1000 and all(soak.injected[event] >= 20 for event in EVENTS)
    assert actions["scale_up"] > 100 and actions["scale_down"] > 100
