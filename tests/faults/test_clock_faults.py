"""Clock faults: jumps forward and back, and a tick slower than the interval.

DST changes for schedules are tested where schedules are: tests/autoscaler/test_policy.py
(test_schedule_floor_across_dst, test_dst_day_through_decide_scales_up_at_lead_and_down_
after_close) and tests/autoscaler/test_schedules.py.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from autoscaler.daemon import Daemon
from autoscaler.metrics import MetricsError
from autoscaler.tick_result import TickResult
from tests.autoscaler.test_daemon import write_config
from tests.autoscaler.test_tick import Harness
from tests.support import RecordingNotifier

MINUTE = timedelta(minutes=1)


def settle(h: Harness) -> None:
    for _ in range(15):
        h.tick()
    assert h.fleet.read().desired == 13


def check_steps(h: Harness, results: list[TickResult]) -> list[tuple[object, int, int]]:
    """Every tick within bounds and the step limit; returns the scale-downs (time, from, to)."""
    downs = []
    for result in results:
        decision = result.decision
        assert decision is not None and decision.reasons
        assert h.pool.min_nodes <= decision.desired <= h.pool.max_nodes
        assert decision.current - decision.desired <= h.pool.scale_down.max_step
        if decision.desired < decision.current:
            downs.append((result.at, decision.current, decision.desired))
    return downs


def test_clock_jump_forward_scales_down_one_step_at_a_time(tmp_path: Path) -> None:
    """Three hours vanish (a suspended VM). The history is Prometheus's, so the forecast is
    still grounded; the shrink proceeds by max_step per action, a cooldown apart."""
    h = Harness(tmp_path, rps=10.0)
    settle(h)
    h.metrics.rps = 2.0  # 3 nodes' worth
    h.clock.advance(timedelta(hours=3))
    results = [h.tick() for _ in range(40)]
    downs = check_steps(h, results)
    assert downs and downs[0][1] - downs[0][2] <= 2
    for (earlier, _, _), (later, _, _) in itertools.pairwise(downs):
        assert later - earlier >= h.pool.cooldown  # type: ignore[operator]
    assert h.fleet.read().desired == 3


def test_clock_jump_back_restarts_the_stabilization_window(tmp_path: Path) -> None:
    """Two hours back (an NTP correction): the remembered recommendations and last action
    lie in the future and prove nothing, so nothing shrinks for a whole window."""
    h = Harness(tmp_path, rps=10.0)
    settle(h)
    h.metrics.rps = 2.0
    h.clock.advance(-timedelta(hours=2))
    jumped_at = h.clock.now()
    results = [h.tick() for _ in range(30)]
    downs = check_steps(h, results)
    window = h.pool.scale_down.stabilization
    assert downs and all(at - jumped_at >= window for at, _, _ in downs)  # type: ignore[operator]
    held = [r for r in results if r.at - jumped_at < window]
    assert all(r.decision and r.decision.desired == 13 for r in held)
    assert any("stabilization needs" in reason for reason in held[0].decision.reasons)  # type: ignore[union-attr]


def test_failure_episode_across_a_jump_back_still_alerts_once_and_recovers_once(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, rps=10.0)
    settle(h)
    h.metrics.failure = MetricsError("unreachable", "q", "connection refused")
    h.tick()
    h.clock.advance(-timedelta(hours=1))
    for _ in range(3):
        assert h.tick().decision.desired == 13  # type: ignore[union-attr]
    h.metrics.failure = None
    h.tick()
    texts = h.notifier.texts
    assert sum("metrics failing" in t for t in texts) == 1
    (recovered,) = [t for t in texts if "metrics recovered" in t]
    assert "after 0s" in recovered  # a negative span is shown as zero, not as garbage


def test_ticks_never_overlap_when_a_tick_outlasts_the_interval(tmp_path: Path) -> None:
    """The real apscheduler loop fires every 0.2 s (1 m simulated at 300×); each tick takes
    0.5 s. Ticks run one after another, and missed runs are coalesced, not queued."""
    simulation = {"start": "1995-07-05T12:00:00Z", "end": "1995-07-06T12:00:00Z", "speed": 300}
    daemon = Daemon(write_config(tmp_path, simulation=simulation), notifier=RecordingNotifier())
    spans: list[tuple[float, float]] = []
    real_tick = daemon.tick

    def slow_tick() -> list[TickResult]:
        started = time.monotonic()
        time.sleep(0.5)
        results = real_tick()
        spans.append((started, time.monotonic()))
        return results

    daemon.tick = slow_tick  # type: ignore[method-assign]
    loop = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    began = time.monotonic()
    loop.start()
    time.sleep(3.2)
    daemon.stop()
    loop.join(timeout=10)
    stopped = time.monotonic()
    assert not loop.is_alive()
    assert len(spans) >= 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two ticks ran at once"
        assert start - end < 0.45, "the next tick waited for a full backlog"
    assert len(spans) <= (stopped - began) / 0.5 + 1  # no burst of queued runs
    assert daemon.ticks == len(spans)


def test_the_wall_clock_stepped_back_an_hour_does_not_stop_the_ticks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """apscheduler's interval trigger counts in wall-clock time: an NTP step back of an
    hour left the next tick an hour and an interval ahead, and no pool ticked until the
    clock caught up. The step is made here as the scheduler sees it (the system clock is
    not the test's to move): the next run moved an hour further ahead than the interval.
    The daemon ticks on within moments, and says why."""
    schedulers = kept_schedulers(monkeypatch)
    daemon = Daemon(write_config(tmp_path, interval="1s"), notifier=RecordingNotifier())
    loop = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    caplog.set_level(logging.WARNING, logger="autoscaler.daemon")
    loop.start()
    try:
        assert wait_for(lambda: daemon.ticks >= 1)
        (scheduler,) = schedulers
        stepped = datetime.now(UTC) + timedelta(hours=1)
        scheduler.modify_job("tick", next_run_time=stepped)
        before = daemon.ticks
        ticked_on = wait_for(lambda: daemon.ticks >= before + 2)  # one may have been in flight
    finally:
        daemon.stop()
        loop.join(timeout=30)
    assert ticked_on and not loop.is_alive()
    assert "the system clock went back: the next tick was due in 1:00:00" in caplog.text


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Whether `condition` came true within `seconds` (a bound for a hang, not a timing)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_host_suspended_over_the_digest_time_sends_the_day_once_it_wakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host suspended (a VM paused, a laptop shut) or a clock stepped forward across the
    digest's `at` wakes with the digest's run three hours past, as the scheduler sees it
    here (its next run moved into the past; the system clock is not the test's to move).
    apscheduler's default 1 s misfire grace dropped it with a log line: no digest that day.
    It is now sent at once, covering the local day that ended at its `at`, not the 24
    hours before the late send (which the next digest would count again). Slack is the
    double of its documented Web API (tests/doubles/slack_api.py)."""
    from common.clock import SimulatedClock
    from tests.autoscaler.cli.test_report import setup_day
    from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

    schedulers = kept_schedulers(monkeypatch)
    with SlackApiDouble() as slack_api:
        config = setup_day(tmp_path, slack_api.base_url)
        digest = 'digest: {plot: false, at: "00:00", timezone: UTC}'
        config.write_text(config.read_text().replace("digest: {currency: EUR}", digest))
        woke = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)  # three hours after the digest's 00:00
        env = {"SLACK_BOT_TOKEN": DEFAULT_TOKEN}
        daemon = Daemon(config, env=env, clock=SimulatedClock(woke))
        loop = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
        loop.start()

        def digests() -> list[str]:
            return [m.text or "" for m in slack_api.messages if "Daily digest" in (m.text or "")]

        try:
            assert wait_for(lambda: daemon.ticks >= 1)
            (scheduler,) = schedulers
            scheduler.modify_job("digest", next_run_time=datetime.now(UTC) - timedelta(hours=3))
            sent = wait_for(lambda: bool(digests()), 20)
        finally:
            daemon.stop()
            loop.join(timeout=30)
    assert sent, "the digest due while the host slept was never sent"
    (text,) = digests()
    assert text.startswith("Daily digest 2026-11-26 00:00 to 2026-11-27 00:00 UTC")


def kept_schedulers(monkeypatch: pytest.MonkeyPatch) -> list[BackgroundScheduler]:
    """The daemon's schedulers as it starts them, for a test to move their jobs' times."""
    import autoscaler.daemon as daemon_module

    schedulers: list[BackgroundScheduler] = []

    class Kept(BackgroundScheduler):
        def start(self, *args: Any, **kwargs: Any) -> None:
            schedulers.append(self)
            super().start(*args, **kwargs)

    monkeypatch.setattr(daemon_module, "BackgroundScheduler", Kept)
    return schedulers
