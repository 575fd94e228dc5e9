"""The fast replay of decide() gives exactly decide()'s counts.

replay_decide is a second copy of decide()'s rules for the loop calibration's inner loop,
so it is checked against decide() itself on thousands of random runs: random forecast,
demand and arrival counts with missing ticks, irregular tick times (in UTC, a zone with
daylight saving and naive), random schedule floors and ceilings and random limits
(cooldown, stabilization, small scale-down steps, scale-up limits, bounds the start is
outside of). The boundaries (a gap exactly the stabilization or the cooldown, a target
equal to the count) are made likely by drawing small counts and whole-minute spans.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import autoscaler.replay_decide as replay_module
from autoscaler.policy import Limits, Memory, allowance, decide
from autoscaler.reason_rules import rule_of
from autoscaler.replay_decide import (
    ReplayedTicks,
    decide_each,
    observation_at,
    replay_decide,
)
from autoscaler.schedules import ScheduleBounds

GAPS_S = (1, 30, 59, 60, 60, 60, 61, 90, 120, 300)
"""Tick gaps: mostly a minute, sometimes irregular, so spans equal to a limit happen."""
ZONES = (UTC, ZoneInfo("Europe/Berlin"), None)
START = datetime(2026, 3, 29, 0, 30)
"""A night when Berlin's clocks jump forward: wall-clock arithmetic must agree too."""


@st.composite
def limits_st(draw: st.DrawFn) -> Limits:
    low = draw(st.integers(0, 5))
    return Limits(
        min_nodes=low,
        max_nodes=draw(st.integers(low, 30)),
        stabilization=timedelta(seconds=draw(st.sampled_from((0, 30, 60, 120, 300, 900)))),
        max_step_down=draw(st.integers(0, 6) | st.just(1000)),
        cooldown=timedelta(seconds=draw(st.sampled_from((0, 0, 60, 90, 180, 600)))),
        max_step_up=draw(st.none() | st.integers(1, 5)),
        max_percent_up=draw(st.none() | st.floats(1.0, 200.0) | st.sampled_from((10.0, 50.0))),
    )


@st.composite
def runs(draw: st.DrawFn) -> tuple[ReplayedTicks, int]:
    n = draw(st.integers(1, 60))
    counts = st.lists(st.integers(0, 25), min_size=n, max_size=n)
    missing_at = draw(st.integers(0, 4))  # no missing data, or up to 4 ticks in 10
    zone = draw(st.sampled_from(ZONES))
    gaps = draw(st.lists(st.sampled_from(GAPS_S), min_size=n, max_size=n))
    start = START.replace(tzinfo=zone)
    bounds = st.lists(st.none() | st.integers(0, 25), min_size=n, max_size=n)
    ticks = ReplayedTicks(
        times=[start + timedelta(seconds=s) for s in np.cumsum(gaps).tolist()],
        forecast_nodes=np.array(draw(counts), dtype=np.int64),
        demand_nodes=np.array(draw(counts), dtype=np.int64),
        arrival_nodes=np.array(draw(counts), dtype=np.int64),
        ok=np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))) >= missing_at,
        schedules=[
            ScheduleBounds(floor, ceiling, ("s",))
            for floor, ceiling in zip(draw(bounds), draw(bounds), strict=True)
        ],
        spare_nodes=draw(st.integers(0, 2)),
    )
    return ticks, draw(st.integers(0, 40))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=runs(), limits=limits_st())
def test_the_fast_replay_gives_decides_counts(
    run: tuple[ReplayedTicks, int], limits: Limits
) -> None:
    ticks, current = run
    expected = decide_each(ticks, limits, current)
    np.testing.assert_array_equal(replay_decide(ticks, limits, current), expected)


def decided_with_rules(ticks: ReplayedTicks, limits: Limits, current: int, rules: Counter) -> list:
    """decide() tick by tick, counting the rules its reasons name (which branches ran)."""
    memory, counts = Memory(), []
    for i in range(len(ticks.times)):
        decision, memory = decide(observation_at(ticks, i, current), limits, memory)
        rules.update(rule_of(reason) for reason in decision.reasons)
        current = decision.desired
        counts.append(current)
    return counts


def random_walk_run(rng: np.random.Generator, n: int) -> tuple[ReplayedTicks, Limits, int]:
    """A long run shaped like a calibration window: a wandering demand, a forecast band
    above it, its arrival part at most the horizon's peak, outages and schedules."""
    demand = np.maximum(0, 12 + np.cumsum(rng.integers(-2, 3, n))).astype(np.int64)
    forecast = demand + rng.integers(-3, 6, n)
    arrival = np.minimum(forecast, demand + rng.integers(-3, 4, n))
    ok = np.ones(n, dtype=bool)
    for start in rng.integers(0, n, 3):
        ok[start : start + int(rng.integers(1, 30))] = False
    floors = rng.choice([-1, -1, -1, 8, 15], n)
    ceilings = rng.choice([-1, -1, -1, 10, 30], n)
    times = np.cumsum(rng.choice([60, 60, 60, 30, 90, 120], n)).tolist()
    low = int(rng.integers(0, 4))
    limits = Limits(
        min_nodes=low,
        max_nodes=int(rng.integers(20, 60)),
        stabilization=timedelta(minutes=int(rng.choice([0, 5, 10, 30]))),
        max_step_down=int(rng.choice([1, 2, 5, 1000])),
        cooldown=timedelta(minutes=int(rng.choice([0, 0, 3, 10]))),
        max_step_up=None if rng.random() < 0.5 else int(rng.integers(1, 6)),
        max_percent_up=None if rng.random() < 0.5 else float(rng.choice([10.0, 25.0, 100.0])),
    )
    ticks = ReplayedTicks(
        times=[START.replace(tzinfo=UTC) + timedelta(seconds=s) for s in times],
        forecast_nodes=np.maximum(forecast, 0),
        demand_nodes=demand,
        arrival_nodes=np.maximum(arrival, 0),
        ok=ok,
        schedules=[
            ScheduleBounds(None if f < 0 else int(f), None if c < 0 else int(c), ("s",))
            for f, c in zip(floors, ceilings, strict=True)
        ],
    )
    return ticks, limits, int(rng.integers(0, 70))


def test_seeded_runs_give_decides_counts_through_every_rule() -> None:
    """Seeded runs, 1,000 short and 40 long (a day of ticks each), and proof that they
    reach every rule the replay models: agreement must not come from one branch."""
    rng = np.random.default_rng(15)
    rules: Counter = Counter()
    for n in [*rng.integers(5, 80, 1000).tolist(), *[1500] * 40]:
        ticks, limits, current = random_walk_run(rng, n)
        expected = decided_with_rules(ticks, limits, current, rules)
        np.testing.assert_array_equal(replay_decide(ticks, limits, current), expected)
    modelled = {
        "reactive_floor",
        "forecast_floor",
        "forecast",
        "missing_data",
        "schedule_ceiling",
        "schedule_floor",
        "min_nodes",
        "max_nodes",
        "cooldown",
        "stabilization",
        "step_limit",
        "scale_up_limit",
        "scale_up",
        "scale_down",
    }
    assert modelled <= {rule for rule, seen in rules.items() if seen >= 10}


def test_the_fast_path_runs_without_decide_and_time_going_back_falls_back_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """decide() is not called where the run is modelled; where the clock goes back (or
    time zones mix) decide() replays it, one call a tick."""
    ticks, limits, current = random_walk_run(np.random.default_rng(1), 200)
    expected = decide_each(ticks, limits, current)
    calls = Counter()

    def counted(*args: object) -> object:
        calls["decide"] += 1
        return decide(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(replay_module, "decide", counted)
    np.testing.assert_array_equal(replay_decide(ticks, limits, current), expected)
    assert calls["decide"] == 0
    times = list(ticks.times)
    times[100] = times[98]  # a clock stepping back
    backward = ReplayedTicks(**{**ticks.__dict__, "times": times})
    replay_decide(backward, limits, current)
    assert calls["decide"] == len(times)
    mixed = [
        t.astimezone(ZoneInfo("Europe/Berlin")) if i % 2 else t for i, t in enumerate(ticks.times)
    ]
    replay_decide(ReplayedTicks(**{**ticks.__dict__, "times": mixed}), limits, current)
    assert calls["decide"] == 2 * len(times)


def test_the_replay_loop_is_compiled_where_numba_can_compile() -> None:
    """Here (no W^X restriction) the loop is numba's compiled dispatcher, not the Python
    function: the speed bench/loop_speed.py measures is the one the daemon gets."""
    import numba.core.registry

    replay_module._compiled.cache_clear()
    loop, allowed = replay_module._compiled()
    assert isinstance(loop, numba.core.registry.CPUDispatcher)
    assert isinstance(allowed, numba.core.registry.CPUDispatcher)


def test_where_numba_cannot_compile_the_same_loop_runs_as_python(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under systemd's MemoryDenyWriteExecute= (as config/autoscaler.service sets) or
    SELinux, llvmlite refuses at numba's import (PermissionError: cannot allocate
    executable memory). The replay then runs the same loop as plain Python, says so
    once, and gives decide()'s counts."""
    import builtins

    real_import = builtins.__import__

    def refused(name: str, *args: object, **kwargs: object) -> object:
        if name == "numba":
            raise PermissionError(13, "cannot allocate executable memory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refused)
    replay_module._compiled.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert replay_module._compiled() == (replay_module.replay_loop, allowance)
        assert "plain Python" in caplog.text and "executable memory" in caplog.text
        for seed in range(5):
            ticks, limits, current = random_walk_run(np.random.default_rng(seed), 300)
            expected = decide_each(ticks, limits, current)
            assert replay_decide(ticks, limits, current).tolist() == expected.tolist()
    finally:
        replay_module._compiled.cache_clear()


def test_under_a_real_w_x_restriction_the_replay_still_answers() -> None:
    """The real thing, where the kernel has it (Linux 6.3+: prctl PR_SET_MDWE, the
    restriction systemd's MemoryDenyWriteExecute= asks for): a child process that may
    not map executable memory replays a run and prints decide()'s counts."""
    import subprocess
    import sys

    code = """
import ctypes, sys
import numpy as np
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    print("unsupported"); sys.exit(0)
sys.path.insert(0, "tests/autoscaler")
from test_replay_decide import random_walk_run
from autoscaler.replay_decide import decide_each, replay_decide
ticks, limits, current = random_walk_run(np.random.default_rng(3), 300)
fast = replay_decide(ticks, limits, current).tolist()
print("same" if fast == decide_each(ticks, limits, current).tolist() else "different")
"""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=root,
    )
    if done.stdout.strip() == "unsupported":
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "same", done.stdout + done.stderr[-2000:]
    assert "plain Python" in done.stderr
