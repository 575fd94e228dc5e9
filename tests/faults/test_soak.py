"""Invariants under random faults: a hypothesis property test and a 10,000-tick soak.

Both drive the real PoolTicker against a SimulatedFleet on a SimulatedClock, with
in-memory demand and the cheap linear predictor, injecting metrics failures, NaN,
stale and empty data, 1000x spikes, counter-reset dips, fleet read and scale
failures, overrides appearing and expiring, counts changed by hand and clock jumps, and
(issue 17) odd answers through the real parser (samples after the query's end, a time
twice, JSON false, a scalar result), answers past their total deadline, and failures
that quote a credential. After every tick:
- the decision stays in [min_nodes, max_nodes];
- it never shrinks the fleet while demand data is missing;
- it never drops more than scale_down.max_step (except a fixed override, or from
  above max_nodes);
- a failure that lasts longer than a tick is in an alerted episode;
and at the end every action is in the decision log with its reasons, and no secret is in
the decision log or any message. A third test breaks and mends the real daemon's files.
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
from autoscaler.metrics import MetricsError, series_from_matrix
from autoscaler.notify import redacted
from autoscaler.overrides import Override, OverridesFile, active_override
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from autoscaler.tick_result import TickResult
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from common.deadline import DeadlineExceeded, call_within
from common.secrets import install_log_redaction, remember
from tests.autoscaler.test_tick import START
from tests.support import RecordingNotifier, read_decisions

MINUTE = timedelta(minutes=1)
METRICS_FAULTS = ("unreachable", "timeout", "empty", "nan", "stale", "spike", "reset")
ODD_ANSWERS = ("future", "duplicate", "json_false", "scalar", "slow")  # issue 17
METRICS_FAULTS = (*METRICS_FAULTS, *ODD_ANSWERS)
SECRET = "soak-bearer-5e1f0a9c7d"  # quoted by the failing answers; must reach no output
remember(SECRET)
install_log_redaction()  # as the daemon does when it starts
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
            reason = f"injected; the proxy said: Authorization: Bearer {SECRET}"
            raise MetricsError(fault, query, reason)  # type: ignore[arg-type]
        if fault == "slow":  # an answer that drips past its total deadline
            try:
                return call_within(
                    0.02, lambda: time.sleep(0.2) or self.demand(query, start, end, step)
                )
            except DeadlineExceeded as exc:
                raise MetricsError("timeout", query, str(exc)) from None
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
        return series_from_matrix(query, odd_answer(fault, index, values))


def odd_answer(fault: str | None, index: pd.DatetimeIndex, values: np.ndarray) -> object:
    """The samples as Prometheus's `data.result`, or one of the odd answers of issue 17
    (each would read as a low load if let through), for the real parser."""
    stamps = ((index - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).tolist()
    pairs = [[t, f"{v:.17g}"] for t, v in zip(stamps, values, strict=True)]
    if fault == "future":
        pairs = [[t + 1800, "0"] for t, _ in pairs]
    elif fault == "duplicate":
        pairs.append([stamps[-1], "0"])
    elif fault == "json_false":
        pairs = [[t, False] for t, _ in pairs]
    elif fault == "scalar":
        return [stamps[-1], "0"]
    return [{"metric": {}, "values": pairs}]


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
        self.previous_errors: set[str] = set()

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
        self.check_alerted(result)
        self.clock.advance(MINUTE)
        return result

    def check_alerted(self, result: TickResult) -> None:
        """Wrong for longer than a tick: the failure is in an episode that was alerted."""
        errors = set(result.errors)
        texts = self.ticker.notifier.texts
        for kind in errors & self.previous_errors:
            assert kind in self.state.failing, (kind, result.errors)
            assert any(f"{kind} failing" in text for text in texts), kind
        self.previous_errors = errors

    def check_no_secret(self) -> None:
        # Messages leave through the notifier's send, which redacts (autoscaler.notify).
        sent = [redacted(message).text for message in self.ticker.notifier.messages]
        outputs = [self.log_path.read_text(), *sent]
        assert not any(SECRET in text for text in outputs)

    def check_log(self) -> None:
        self.check_no_secret()
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
    assert soak.injected["unreachable"] + soak.injected["timeout"] > 0  # the secret was quoted
    assert faults > 1000 and all(soak.injected[event] >= 20 for event in EVENTS)
    assert actions["scale_up"] > 100 and actions["scale_down"] > 100


def test_files_broken_while_running_never_fail_a_tick_and_are_told_once(tmp_path: Path) -> None:
    """The real Daemon (replayed trace, simulated fleet) while its overrides file and its
    config are broken and mended at random: every tick decides within bounds, the last
    good override keeps holding, and each broken episode is alerted once."""
    from tests.autoscaler.test_daemon import write_config
    from tests.faults.test_uncaught import DEEP, daemon_for

    path = write_config(tmp_path)
    good_config = path.read_text()
    overrides = tmp_path / "overrides.yaml"
    pinned = "overrides:\n  image-gen:\n    nodes: 9\n    expires: 2099-01-01T00:00:00Z\n"
    overrides.write_text(pinned + "    reason: soak\n")
    daemon, notifier = daemon_for(path)
    rng = random.Random(17)
    broken = ["overrides: [oops\n", DEEP, "\x00\x01", "overrides: {image-gen: {nodes: -1}}\n"]
    episodes = {"overrides": 0, "config": 0}
    state = {"overrides": False, "config": False}
    for i in range(60):
        roll = rng.random()
        if roll < 0.15:
            episodes["overrides"] += not state["overrides"]
            state["overrides"] = True
            overrides.write_text(rng.choice(broken) + " " * i)  # a new problem each time
        elif roll < 0.25:
            overrides.write_text(pinned + f"    reason: soak {i}\n")
            state["overrides"] = False
        elif roll < 0.35:
            path.write_text(rng.choice([DEEP, "pools: [oops\n", good_config + "bogus: 1\n"]))
            daemon.request_reload()
            episodes["config"] += 1
        elif roll < 0.4:
            path.write_text(good_config)
            daemon.request_reload()
        (result,) = daemon.tick()
        assert result.decision is not None, result.errors
        assert result.decision.desired == 9, result.decision  # the last good override holds
    texts = notifier.texts
    assert sum("reload failed" in t for t in texts) == episodes["config"]
    broken_alerts = sum("overrides file is broken" in t for t in texts)
    assert episodes["overrides"] <= broken_alerts  # at least one per episode, told on change
    assert broken_alerts <= sum(1 for t in texts if "overrides" in t)
