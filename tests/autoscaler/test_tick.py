"""The tick as a whole: act, tell and remember, with in-process collaborators.

The fleet is the simulated backend, metrics an in-memory series, and notifications
are recorded; the Nomad and Slack paths are exercised against their HTTP doubles in
test_tick_doubles.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscaler.config.schema import Pool
from autoscaler.daily_report import digest_settings
from autoscaler.decision_log import DecisionLog
from autoscaler.digest import pool_digest
from autoscaler.metrics import MetricsError
from autoscaler.overrides import Override, OverridesFile
from autoscaler.sizing import size_fleet
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from backends.nomad_job import NomadJobBackend, NomadJobGroup
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from predictors import Forecast
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, nomad_api
from tests.support import RecordingNotifier, daily_wave, read_decisions

__all__ = ["nomad_api"]  # the fixture, used by name below

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class FlatDemand:
    """Demand history at a constant rate up to the clock's now; can be told to fail."""

    def __init__(self, clock: SimulatedClock, rps: float) -> None:
        self.clock = clock
        self.rps = rps
        self.failure: MetricsError | None = None
        self.failing_query: str | None = None  # this query alone fails (a signal's)

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        if self.failure is not None:
            raise self.failure
        if query == self.failing_query:
            raise MetricsError("unreachable", query, "connection refused")
        index = pd.date_range(end - timedelta(minutes=59), end, freq="1min")
        return pd.Series(self.rps, index=index, dtype=float)


def make_pool(**changes: object) -> Pool:
    data: dict[str, object] = {
        "name": "ocr",
        "backend": {"kind": "simulated", "initial_nodes": 2, "boot_delay": "10m"},
        "demand": {"query": "sum(rate(requests_total[2m]))"},
        "capacity": {"per_node_rps": 1.0},
        "target_utilization": 0.8,
        # exact on flat demand: counts are easy to check; its band as made (loop: below)
        "predictor": {"kind": "linear", "margin": "band"},
        "max_nodes": 50,
        "scale_down": {"stabilization": "10m", "max_step": 2},
        "cooldown": "5m",
    }
    data.update(changes)
    return Pool.model_validate(data)


class Harness:
    def __init__(self, tmp_path: Path, rps: float = 10.0, dry_run: bool = False, **pool) -> None:
        self.clock = SimulatedClock(START)
        self.metrics = FlatDemand(self.clock, rps)
        self.fleet = SimulatedFleet(self.clock, initial_nodes=2, boot_delay=timedelta(minutes=10))
        self.notifier = RecordingNotifier()
        self.log_path = tmp_path / "decisions.jsonl"
        self.pool = make_pool(**pool)
        self.ticker = PoolTicker(
            self.pool,
            self.fleet,
            1.0,
            self.metrics,
            timedelta(minutes=5),
            self.notifier,
            DecisionLog(self.log_path),
            dry_run,
        )
        self.state = PoolState()
        self.overrides = OverridesFile()

    def tick(self):
        result = self.ticker.tick(self.clock.now(), self.state, self.overrides)
        self.clock.advance(timedelta(minutes=1))
        return result


def test_scales_up_to_what_the_forecast_needs_and_says_so_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)  # 10 req/s / (1 req/s × 0.8) = 12.5 → 13 nodes
    first = h.tick()
    assert first.decision is not None and first.decision.desired == 13
    assert h.fleet.read().desired == 13 and first.acted
    assert len(h.notifier.messages) == 1
    assert "2 → 13" in h.notifier.messages[0].text
    for _ in range(5):  # steady: same decision, no write, no message
        h.tick()
    assert h.fleet.writes == 1
    assert len(h.notifier.messages) == 1
    records = read_decisions(h.log_path)
    assert len(records) == 6
    assert records[0]["action"] == "scale_up" and records[0]["desired"] == 13
    assert all(r["reasons"] for r in records)
    assert h.state.last_decision == records[-1]  # what `status` shows: the log's last line


def test_dry_run_decides_logs_and_notifies_but_never_writes(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0, dry_run=True)
    result = h.tick()
    assert result.decision is not None and result.decision.desired == 13
    assert h.fleet.writes == 0 and h.fleet.read().desired == 2 and not result.acted
    assert "would" in h.notifier.messages[0].text
    assert read_decisions(h.log_path)[0]["action"] == "would_scale_up"


def test_a_dry_run_pool_tells_what_it_would_do_once_not_every_tick(tmp_path: Path) -> None:
    """A pool with `dry_run: true` in the running daemon decides every tick what it would
    do, and the fleet never follows, so each tick's decision differs from the count:
    Slack got "would scale up 2 → 13" every minute for as long as the pool stayed in dry
    run (README: one message per change, never one per tick). It is told once, and again
    when what it would do changes."""
    h = Harness(tmp_path, rps=10.0, dry_run=True)
    for _ in range(6):
        result = h.tick()
        assert result.decision is not None and result.decision.desired == 13
    assert [t.splitlines()[0] for t in h.notifier.texts] == [
        ":arrow_up: ocr 2 → 13 nodes: would scale up (dry-run, nothing changed)"
    ]
    h.metrics.rps = 20.0  # 25 nodes now
    for _ in range(3):
        h.tick()
    assert [t.splitlines()[0] for t in h.notifier.texts[1:]] == [
        ":arrow_up: ocr 2 → 25 nodes: would scale up (dry-run, nothing changed)"
    ]
    assert len(read_decisions(h.log_path)) == 9  # every decision still in the log


def test_a_failure_is_not_said_to_clear_by_a_tick_that_could_not_check_it(
    tmp_path: Path,
) -> None:
    """A queue-depth signal's query fails, then the fleet cannot be read for two ticks:
    the signals are read only with the fleet, so those ticks had no signal error, and
    Slack was told "signals recovered", then "signals failing" again once the fleet read,
    though the signal never came back. A tick that did not check a step (its fleet not
    read; a surprise that stopped it) neither starts nor clears that step's failure."""
    backlog = {"name": "backlog", "kind": "queue_depth", "query": "queue", "drain_within": "60s"}
    h = Harness(tmp_path, rps=10.0, signals=[backlog])
    h.metrics.failing_query = "queue"
    h.tick()
    h.fleet.fail_reads = 2
    h.tick()
    h.tick()
    h.tick()  # the fleet reads again; the signal still fails
    said = [t.split(": ")[2] for t in h.notifier.texts if "failing" in t or "recovered" in t]
    assert said == ["signals failing", "backend failing", "backend recovered after 2m"]

    def surprise() -> None:
        raise RuntimeError("a library's surprise")

    told = len(h.notifier.texts)
    h.fleet.read = surprise  # type: ignore[method-assign]
    h.tick()
    assert [t.split(": ")[2] for t in h.notifier.texts[told:]] == ["tick failing"]
    assert set(h.state.failing) == {"signals", "tick"}


def test_metrics_failure_holds_and_alerts_once_per_episode(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.tick()  # 13 nodes
    h.metrics.failure = MetricsError("unreachable", "q", "connection refused")
    for _ in range(6):
        result = h.tick()
        assert result.decision is not None and result.decision.desired == 13
        assert any("missing" in r for r in result.decision.reasons)
    texts = h.notifier.texts
    assert sum("metrics" in t and "recovered" not in t for t in texts[1:]) == 1
    h.metrics.failure = None
    h.tick()
    h.tick()
    assert sum("recovered" in t for t in h.notifier.texts) == 1
    assert h.fleet.read().desired == 13


def test_missing_data_never_reads_as_zero_load(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.tick()
    h.metrics.failure = MetricsError("empty", "q", "no samples")
    for _ in range(30):  # long past stabilization and cooldown
        h.tick()
    assert h.fleet.read().desired == 13


def test_slack_down_changes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.ticker.notifier = RecordingNotifier(succeed=False)
    result = h.tick()
    assert result.acted and h.fleet.read().desired == 13

    class Exploding:
        def send(self, message: object) -> bool:
            raise RuntimeError("boom")

    h.ticker.notifier = Exploding()  # type: ignore[assignment]
    h.metrics.rps = 20.0
    result = h.tick()
    assert result.acted and h.fleet.read().desired == 25


def test_backend_failure_is_reported_once_and_nothing_is_decided(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.fleet.fail_reads = 3
    for _ in range(3):
        result = h.tick()
        assert result.decision is None and "backend" in result.errors
    assert sum("backend" in t for t in h.notifier.texts) == 1
    h.tick()
    assert h.fleet.read().desired == 13
    assert any("recovered" in t for t in h.notifier.texts)


def test_a_failed_scale_starts_a_cooldown_but_does_not_block_a_retry_up(
    tmp_path: Path,
) -> None:
    """A failed write may have landed (a lost answer): it counts as an action for the
    cooldown, which only delays scale-downs; the scale-up is retried at once."""
    h = Harness(tmp_path, rps=10.0)
    h.fleet.fail_scales = 1
    saved: list[int | None] = []
    h.ticker.persist = lambda: saved.append(h.state.last_known_desired)
    result = h.tick()
    assert not result.acted and "backend" in result.errors
    assert h.state.memory.last_action_at == START
    assert saved == [None]  # state saved before the write, with the count marked unknown
    assert h.tick().acted


def _failed_scale_down(h: Harness) -> None:
    """Tick a fleet of 13 on 4 req/s (5 nodes) until its scale-down write fails."""
    h.tick()  # 2 → 13
    h.metrics.rps = 4.0
    h.fleet.fail_scales = 1
    for _ in range(20):
        if "backend" in h.tick().errors:
            return
    raise AssertionError("no scale-down was written")


def test_a_failed_write_is_not_said_recovered_by_a_tick_that_only_read(
    tmp_path: Path,
) -> None:
    """After a scale-down whose write failed, the cooldown it started holds the next
    ticks (they read the fleet, write nothing): the count is still not the one asked
    for, so the backend is not "recovered" until a write succeeds."""
    h = Harness(tmp_path, rps=10.0)
    _failed_scale_down(h)
    held = h.tick()
    assert held.decision is not None and held.decision.action == "none" and not held.errors
    assert not any("recovered" in t for t in h.notifier.texts)
    assert "backend" in h.state.failing
    for _ in range(10):
        if h.tick().acted:
            break
    assert h.fleet.read().desired < 13
    assert sum("backend recovered" in t for t in h.notifier.texts) == 1
    assert not h.state.failing and not h.state.write_failing


def test_a_failed_write_no_longer_needed_is_said_recovered(tmp_path: Path) -> None:
    """Demand back where the fleet is: no write is needed any more, so the failure ends."""
    h = Harness(tmp_path, rps=10.0)
    _failed_scale_down(h)
    h.metrics.rps = 10.0
    result = h.tick()
    assert result.decision is not None and result.decision.target == 13 and not result.acted
    assert sum("backend recovered" in t for t in h.notifier.texts) == 1


def test_override_wins_and_expiry_is_reported_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.overrides = OverridesFile(
        overrides={
            "ocr": Override(nodes=4, expires=START + timedelta(minutes=3), reason="load test")
        }
    )
    result = h.tick()
    assert result.decision is not None and result.decision.desired == 4
    assert any("override" in r for r in result.decision.reasons)
    for _ in range(6):
        h.tick()
    assert sum("expired" in t for t in h.notifier.texts) == 1
    assert h.fleet.read().desired == 13


@pytest.mark.parametrize("rps", [0.0, 0.5])
def test_low_demand_respects_min_nodes(tmp_path: Path, rps: float) -> None:
    h = Harness(tmp_path, rps=rps, min_nodes=3)
    result = h.tick()
    assert result.decision is not None and result.decision.desired == 3


def test_pool_level_dry_run_never_writes(tmp_path: Path) -> None:
    pool_dry = Harness(tmp_path, rps=10.0)
    pool_dry.ticker = PoolTicker(
        make_pool(dry_run=True),
        pool_dry.fleet,
        1.0,
        pool_dry.metrics,
        timedelta(minutes=5),
        pool_dry.notifier,
        DecisionLog(None),
        False,
    )
    result = pool_dry.tick()
    assert result.dry_run and not result.acted and pool_dry.fleet.writes == 0


def test_a_change_made_by_hand_is_reported_and_not_fought(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.tick()  # 2 → 13
    h.fleet.ready_at = h.fleet.ready_at[:5]  # a person scales down to 5 by hand
    writes = h.fleet.writes
    for _ in range(4):  # inside the 5-minute cooldown: held, not fought
        result = h.tick()
        assert result.decision is not None and result.decision.desired == 5
    assert h.fleet.writes == writes
    manual = [t for t in h.notifier.texts if "outside the autoscaler" in t]
    assert len(manual) == 1 and "13 to 5" in manual[0]
    h.clock.advance(timedelta(minutes=2))
    result = h.tick()  # cooldown over: the forecast wins again
    assert result.decision is not None and result.decision.desired == 13


def test_a_change_by_hand_outside_the_bounds_is_not_said_to_be_held(tmp_path: Path) -> None:
    """Nodes added by hand above the pool's max_nodes (at 3 a.m., the pool capped while
    demand grows) are taken back at once, as README says: Slack was told "holding it until
    ... (cooldown)" in the same post as the scale-down that undid it. It says the count
    lies outside the bounds in force and what the autoscaler sets it to."""
    h = Harness(tmp_path, rps=10.0, max_nodes=10)
    h.tick()  # 2 → 10, capped
    h.fleet.scale(16, "by hand")
    result = h.tick()
    assert result.decision is not None and result.decision.desired == 10
    (manual,) = [t for t in h.notifier.texts if "outside the autoscaler" in t]
    assert "10 to 16" in manual and "holding" not in manual
    assert "outside the bounds in force" in manual and "sets it to 10" in manual


def test_our_own_changes_are_not_taken_for_manual_ones(tmp_path: Path) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.tick()
    h.metrics.rps = 20.0
    h.tick()
    h.tick()
    assert not [t for t in h.notifier.texts if "outside the autoscaler" in t]


class ClampedAtSix(SimulatedFleet):
    """A cloud group whose MaxSize is 6: a larger count is clamped, and said so."""

    def scale(self, desired: int, reason: str) -> str | None:
        super().scale(min(desired, 6), reason)
        return None if desired <= 6 else f"asked for {desired}, clamped to 6: MaxSize 6"


def test_what_the_fleet_made_of_a_request_is_reported(tmp_path: Path) -> None:
    """A cloud group clamps to its MaxSize and says so (what scale() returns)."""
    h = Harness(tmp_path, rps=10.0)

    class ClampingFleet(SimulatedFleet):
        def scale(self, desired: int, reason: str) -> str | None:
            super().scale(min(desired, 6), reason)
            return f"asked for {desired}, clamped to 6: above the group's MaxSize 6"

    fleet = ClampingFleet(h.clock, initial_nodes=2, boot_delay=timedelta(minutes=10))
    h.ticker.backend = fleet
    h.tick()
    (record,) = read_decisions(h.log_path)
    assert "clamped to 6" in record["backend_note"]
    assert "clamped to 6" in h.notifier.messages[0].text


def test_a_count_the_fleet_clamped_is_not_taken_for_a_change_by_hand(tmp_path: Path) -> None:
    """The group clamps 13 to its MaxSize 6: the next ticks read 6 and must not alert a
    change outside the autoscaler, nor hold it for the cooldown (a scale-down as demand
    falls goes ahead). Before, the tick remembered 13 as the count it had set: an alert
    "changed from 13 to 6 outside the autoscaler" and a hold after every clamped write."""
    h = Harness(tmp_path, rps=10.0)

    h.ticker.backend = ClampedAtSix(h.clock, initial_nodes=2, boot_delay=timedelta(minutes=10))
    h.tick()
    h.metrics.rps = 1.0  # 2 nodes are enough now
    results = [h.tick() for _ in range(20)]
    assert not [t for t in h.notifier.texts if "outside the autoscaler" in t]
    reasons = [r for result in results if result.decision for r in result.decision.reasons]
    assert not [r for r in reasons if "changed outside the autoscaler" in r]
    assert h.ticker.backend.read().desired < 6


def test_a_fleet_held_at_its_bound_is_told_once_not_every_tick(tmp_path: Path) -> None:
    """Demand asks for 13 at every tick against a group whose MaxSize is 6: the first tick
    scales 2 -> 6 (told, with the clamp); from then on each write changes nothing. Before,
    every tick posted "6 -> 13 nodes: scaling up" to Slack, a change that never happened,
    once a minute for as long as the peak lasted. Now the held count is told once; the
    decision log still carries the clamp at every tick."""
    h = Harness(tmp_path, rps=10.0)

    h.ticker.backend = ClampedAtSix(h.clock, initial_nodes=2, boot_delay=timedelta(minutes=10))
    for _ in range(6):
        h.tick()
    scaled = [t for t in h.notifier.texts if "scaling up" in t]
    assert len(scaled) == 2
    assert "ocr 2 → 13 nodes" in scaled[0] and "ocr 6 → 13 nodes" in scaled[1]
    notes = [record["backend_note"] for record in read_decisions(h.log_path)]
    assert len(notes) == 6 and all("clamped to 6" in note for note in notes)


def test_the_digest_counts_the_nodes_a_clamped_fleet_holds(tmp_path: Path) -> None:
    """13 asked at every tick of a group whose MaxSize is 6: the first tick takes it from 2
    to 6, the other nine change nothing. The decision log now says what the fleet holds
    after each tick ('after'), and the digest pays for those 6 nodes: 10 minutes x 6 = 1
    node-hour and one scale-up. Before, it paid for the 13 asked (2.17 node-hours, as a
    pool held at MaxSize all day read at double its cost) and counted 10 scale-ups."""
    h = Harness(tmp_path, rps=10.0)
    h.ticker.backend = ClampedAtSix(h.clock, initial_nodes=2, boot_delay=timedelta(minutes=10))
    for _ in range(10):
        h.tick()
    records = read_decisions(h.log_path)
    assert [r["after"] for r in records] == [6] * 10
    settings = digest_settings(h.pool, 1.0)
    digest = pool_digest("ocr", records, pd.Series(dtype=float), settings, START, h.clock.now())
    assert digest.fleet.node_hours == pytest.approx(10 * 6 / 60)
    assert (digest.scale_ups, digest.scale_downs) == (1, 0)


def test_a_nomad_deployment_blocking_the_scale_is_a_hold_told_once(
    tmp_path: Path, nomad_api: NomadApiDouble
) -> None:
    """A Nomad job group at 2 while 13 are needed, its deployment active: Nomad answers
    every scale with HTTP 400 "job scaling blocked due to active deployment" (the Nomad API
    double, through python-nomad). Before, each tick failed: "backend failing" on Slack and
    in every tick's errors until the deployment ended. Now the count is held and told once
    with why; once the deployment ends the next tick scales."""
    h = Harness(tmp_path, rps=10.0)
    job = nomad_api.add_job("ocr", {"gpu": 2}, active_deployment=True)
    config = NomadJobBackend(kind="nomad_job", job="ocr", group="gpu", address=nomad_api.url)
    env = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
    h.ticker.backend = NomadJobGroup(config, env=env, sleep=lambda _: None, clock=h.clock)
    results = [h.tick() for _ in range(5)]
    assert all("backend" not in r.errors for r in results) and job.groups["gpu"] == 2
    assert not any("failing" in text for text in h.notifier.texts)
    (told,) = h.notifier.texts
    assert "2 → 13" in told and "deployment" in told
    job.active_deployment = False
    assert h.tick().acted and job.groups["gpu"] == 13


def test_a_change_by_hand_while_the_fleet_clamps_every_write_is_noticed(tmp_path: Path) -> None:
    """Demand asks for more than the group's MaxSize at every tick, so every write is
    clamped; someone lowers the group from 6 to 4 by hand. The tick reads the clamped
    count back after each write, so the change is noticed and held for the cooldown
    rather than written over (with no count remembered after a clamped write, it was
    not seen, and the next write put 6 back)."""
    h = Harness(tmp_path, rps=10.0)

    fleet = ClampedAtSix(h.clock, initial_nodes=2, boot_delay=timedelta(minutes=10))
    h.ticker.backend = fleet
    for _ in range(3):
        h.tick()
    assert fleet.read().desired == 6
    assert not [t for t in h.notifier.texts if "outside the autoscaler" in t]
    SimulatedFleet.scale(fleet, 4, "by hand")
    h.tick()
    assert [t for t in h.notifier.texts if "changed from 6 to 4 outside the autoscaler" in t]
    assert fleet.read().desired == 4


class FixedForecast:
    """A predictor whose upper band is given per step: a peak early, lower from boot on."""

    name = "fixed"

    def __init__(self, upper: list[float]) -> None:
        self.upper = upper

    def fit(self, history: pd.Series) -> FixedForecast:
        self.end = history.index[-1]
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        times = pd.date_range(self.end + timedelta(minutes=1), periods=len(self.upper), freq="1min")
        upper = np.asarray(self.upper, dtype=float)
        return Forecast(times, upper, upper, self.name)


def test_size_fleet_buys_for_the_forecast_from_boot_time_and_keeps_the_horizon_peak() -> None:
    """Nodes ordered now serve from boot_time (10 min) on: an early peak sets only the floor
    for scaling down (`nodes`), not what a scale-up buys (`arrival_nodes`)."""
    pool = make_pool(boot_time="10m", horizon="15m")
    history = pd.Series(5.0, index=pd.date_range(START - timedelta(minutes=59), START, freq="1min"))
    upper = [5.0, 16.0, 12.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 6.0, 7.2, 6.0, 6.0, 6.0]
    sizing = size_fleet(pool, FixedForecast(upper), history, 1.0)
    assert sizing.nodes == 20  # 16 / 0.8
    assert sizing.arrival_nodes == 9  # 7.2 / 0.8: steps 10 minutes after the first on
    assert sizing.demand_nodes == 7  # 5 / 0.8, rounded up


def test_spare_nodes_sit_on_top_of_the_forecast_and_are_named_in_the_reason() -> None:
    """A fixed cushion above the forecast's counts (both ways); the reactive floor stays what
    demand now needs, so a burst beyond forecast and spare still scales up at once."""
    from autoscaler.plan import limits_of, observe
    from autoscaler.policy import Memory, decide

    history = pd.Series(5.0, index=pd.date_range(START - timedelta(minutes=59), START, freq="1min"))
    upper = [5.0, 16.0, 12.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 6.0, 7.2, 6.0, 6.0, 6.0]
    pool = make_pool(boot_time="10m", horizon="15m", spare_nodes=3)
    sizing = size_fleet(pool, FixedForecast(upper), history, 1.0)
    assert (sizing.nodes, sizing.arrival_nodes, sizing.demand_nodes) == (23, 12, 7)
    limits = limits_of(pool)
    decision, _ = decide(observe(pool, sizing, START, 4, None), limits, Memory())
    assert decision.desired == 12
    assert "forecast needs 12 nodes (with 3 spare) once new nodes are ready" in decision.reasons
    burst = pd.concat([history.iloc[:-1], pd.Series([40.0], index=history.index[-1:])])
    sizing = size_fleet(pool, FixedForecast(upper), burst, 1.0)
    decision, _ = decide(observe(pool, sizing, START, 4, None), limits, Memory())
    assert decision.desired == 50  # 40 / 0.8: demand now beats forecast plus spare


def test_a_loop_calibrated_pool_keeps_its_calibration_in_state_for_a_restart(
    tmp_path: Path,
) -> None:
    """Each tick saves the loop calibration in the pool's state (none before the first
    calibration: a restart then starts from the band as made, as the run did); a new
    ticker (a restart) takes it up at its first tick instead of starting afresh."""
    loop = {"kind": "linear", "margin": "loop"}
    h = Harness(tmp_path, rps=10.0, predictor=loop)
    h.tick()
    assert h.state.loop is None  # not calibrated yet
    h.ticker.predictor._calibrated = True  # as a calibration to 0.6 would have left it
    h.ticker.predictor.margin = 0.6
    h.clock.advance(timedelta(minutes=1))
    h.tick()
    assert h.state.loop is not None and h.state.loop["margin"] == 0.6
    restarted = Harness(tmp_path, rps=10.0, predictor=loop)
    restarted.state = h.state
    restarted.clock = h.clock
    result = restarted.ticker.tick(h.clock.now(), restarted.state, restarted.overrides)
    assert restarted.ticker.predictor.margin == 0.6
    assert result.sizing.forecast is not None and result.sizing.forecast.calibration is not None
    assert result.sizing.forecast.calibration.margin == 0.6


class EvaluatedLikePrometheus:
    """A double of Prometheus's range evaluation times (as the Prometheus tests check them):
    the client rounds the start to the second (prometheus-api-client), and the answer
    holds start + k x step up to the end, here tests.support.daily_wave."""

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        seconds = np.arange(round(start.timestamp()), round(end.timestamp()) + 1, step.seconds)
        index = pd.to_datetime(seconds, unit="s", utc=True)
        return pd.Series(daily_wave(seconds.astype(float)), index=index)


@pytest.mark.parametrize(("interval_s", "phase_s"), [(60, 0.49), (90, 0.2), (30, 0.0)])
def test_ticks_at_jittered_times_append_to_the_forecasters_history(
    tmp_path: Path, interval_s: int, phase_s: float
) -> None:
    """Ticks a few ms late by varying amounts (about half a second into the minute, where
    the client's rounding flips), every 90 s, or every 30 s, on a 1-minute step: the
    forecaster is fitted once and then only appends, and the loop calibration keeps one
    tick per new sample. With ranges ending at the tick's own time, 13, 30 and 30 of these
    30 ticks were fresh fits from scratch, their bands provisional."""
    h = Harness(tmp_path, predictor={"kind": "seasonal"}, demand={"query": "q", "window": "8d"})
    h.ticker.metrics = EvaluatedLikePrometheus()
    jitter = np.random.default_rng(0).uniform(0.0, 0.03, 30)
    minutes_seen = set()
    for k, late in enumerate(jitter):
        now = START + timedelta(seconds=k * interval_s + phase_s + late)
        minutes_seen.add(now.replace(second=0, microsecond=0))
        result = h.ticker.tick(now, h.state, h.overrides)
        assert result.sizing.forecast is not None, result.errors
    assert h.ticker.forecaster.heavy_fits == 1
    assert len(h.ticker.predictor._ticks) == len(minutes_seen)  # none cleared


class Recorded(EvaluatedLikePrometheus):
    """EvaluatedLikePrometheus, recording the ranges asked for; can be told to fail."""

    def __init__(self) -> None:
        self.asked: list[timedelta] = []
        self.failure: MetricsError | None = None

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        self.asked.append(end - start)
        if self.failure is not None:
            raise self.failure
        return super().demand(query, start, end, step)


def test_a_pool_asks_for_its_whole_window_once_then_only_for_what_came_since(
    tmp_path: Path,
) -> None:
    """Also across a metrics outage (the next answer reaches back to the last one kept) and
    a config reload that keeps the pool as it was."""
    h = Harness(tmp_path, predictor={"kind": "seasonal"}, demand={"query": "q", "window": "8d"})
    source = h.ticker.metrics = Recorded()
    for minute in range(3):
        h.ticker.tick(START + timedelta(minutes=minute, seconds=1), h.state, h.overrides)
    assert source.asked == [timedelta(days=8)] + [timedelta(minutes=6)] * 2
    source.failure = MetricsError("unreachable", "q", "down")
    for minute in range(3, 13):
        held = h.ticker.tick(START + timedelta(minutes=minute, seconds=1), h.state, h.overrides)
        assert "metrics" in held.errors
    source.failure = None
    back = h.ticker.tick(START + timedelta(minutes=13, seconds=1), h.state, h.overrides)
    assert back.sizing.forecast is not None and source.asked[-1] == timedelta(minutes=16)
    reloaded = PoolTicker(
        h.pool, h.fleet, 1.0, source, timedelta(minutes=5), h.notifier, h.ticker.decision_log, False
    )
    assert reloaded.carry_over(h.ticker)
    reloaded.tick(START + timedelta(minutes=14, seconds=1), h.state, h.overrides)
    assert source.asked[-1] == timedelta(minutes=6)
    assert h.ticker.forecaster.heavy_fits == 1
