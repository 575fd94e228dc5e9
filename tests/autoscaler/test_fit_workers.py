"""Heavy fits in worker processes: the same forecasts, and no way to hold a fleet.

Real worker processes (spawned, as the daemon spawns them) fit real seasonal forecasters
on eight days of minutes; each pool is then ticked, and its decision compared with the
same pool ticked without the workers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from autoscaler import daemon_fits
from autoscaler.calibration import LoopCalibrated
from autoscaler.config.schema import Pool
from autoscaler.daemon import Daemon
from autoscaler.decision_log import DecisionLog
from autoscaler.fit_workers import FitWorkers, _batch_size, _packed, _unpacked, worker_count
from autoscaler.metrics import MetricsError
from autoscaler.overrides import OverridesFile
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from autoscaler.tick_result import decision_record
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from predictors import Forecast
from tests.support import RecordingNotifier, daily_wave

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def daily_demand(start: datetime, end: datetime, step: timedelta, scale: float) -> pd.Series:
    """`scale` x tests.support.daily_wave at each step from start to end."""
    index = pd.date_range(start, end, freq=step)
    return pd.Series(scale * daily_wave(index.asi8 / 1e9), index=index, dtype=float)


class DailyDemand:
    """The pool's demand up to the asked end; counts the queries; can fail or be empty."""

    def __init__(self, scale: float, failure: MetricsError | None = None) -> None:
        self.scale = scale
        self.failure = failure
        self.queries = 0

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        self.queries += 1
        if self.failure is not None:
            raise self.failure
        return daily_demand(start, end, step, self.scale)


def make_ticker(tmp_path: Path, name: str, metrics: DailyDemand, **predictor: object) -> PoolTicker:
    pool = Pool.model_validate(
        {
            "name": name,
            "backend": {"kind": "simulated", "initial_nodes": 4},
            "demand": {"query": f"demand_{name}", "window": "8d"},
            "capacity": {"per_node_rps": 2.0},
            "predictor": {"kind": "seasonal", **predictor},
            "max_nodes": 100,
        }
    )
    fleet = SimulatedFleet(SimulatedClock(NOW), initial_nodes=4, boot_delay=timedelta(0))
    log = DecisionLog(tmp_path / f"{name}.jsonl")
    notifier = RecordingNotifier()
    return PoolTicker(pool, fleet, 2.0, metrics, timedelta(minutes=5), notifier, log, True)


def decisions(tickers: list[PoolTicker], now: datetime) -> list[dict[str, object]]:
    records = []
    for ticker in tickers:
        result = ticker.tick(now, PoolState(), OverridesFile())
        records.append(decision_record(result))
    return records


def fits_of(tickers: list[PoolTicker], seconds: float = 60.0) -> FitWorkers:
    """Sent and taken as the daemon's first tick does, the workers closed."""
    fits = FitWorkers(2)
    try:
        fits.send(tickers, NOW, seconds)
        for ticker in tickers:
            fits.take(ticker)
        fits.finish()
    finally:
        fits.close()
    return fits


def test_forecasters_fitted_in_workers_decide_as_the_pools_would_alone(tmp_path: Path) -> None:
    """Each pool's first decision (its forecast, band and margin included) is the one it
    makes without workers, to the last digit; its tick asks the metrics nothing more."""
    pools = [("a", 1.0, {}), ("b", 3.0, {"margin": "band"}), ("c", 0.5, {"policy": "forecast"})]
    (tmp_path / "alone").mkdir()
    (tmp_path / "workers").mkdir()
    alone = [make_ticker(tmp_path / "alone", n, DailyDemand(s), **p) for n, s, p in pools]
    metrics = [DailyDemand(s) for _, s, _ in pools]
    helped = [
        make_ticker(tmp_path / "workers", n, m, **p)
        for (n, _, p), m in zip(pools, metrics, strict=True)
    ]
    fresh = [t.forecaster for t in helped]
    fits = fits_of(helped)
    assert (fits.fitted, fits.missed) == (3, {})
    assert [m.queries for m in metrics] == [1, 1, 1]
    installed = [t.forecaster for t in helped]
    assert not any(f is g for f, g in zip(installed, fresh, strict=True))  # from the workers
    expected, got = decisions(alone, NOW), decisions(helped, NOW)
    assert [m.queries for m in metrics] == [1, 1, 1]  # the tick used the fit workers' answer
    assert got == expected
    assert all(t.forecaster is f for t, f in zip(helped, installed, strict=True))
    assert [f.heavy_fits for f in installed] == [1, 1, 1]  # the workers' fit, not redone
    assert all(record["forecast_upper_rps"] is not None for record in got)
    # the next tick queries again, and still agrees
    later = NOW + timedelta(minutes=1)
    assert decisions(helped, later) == decisions(alone, later)
    assert [m.queries for m in metrics] == [2, 2, 2]


def test_a_loop_recalibration_that_falls_due_is_made_in_a_worker_as_the_pool_would(
    tmp_path: Path,
) -> None:
    """The replay of the kept ticks (~15-45 ms a pool) goes to the workers with the
    forecaster's fit on the ticks it falls on: the whole predictor comes back, and each
    decision is the one the pool makes alone, to the last digit."""
    from dataclasses import replace

    (tmp_path / "alone").mkdir()
    (tmp_path / "workers").mkdir()
    alone = make_ticker(tmp_path / "alone", "a", DailyDemand(1.0))
    helped = make_ticker(tmp_path / "workers", "a", DailyDemand(1.0))
    states = {id(alone): PoolState(), id(helped): PoolState()}
    fits = FitWorkers(2)
    came_back = []
    try:
        for minute in range(12):
            now = NOW + timedelta(minutes=minute)
            if minute == 1:  # from 2 minutes of kept ticks, every 3 minutes
                for ticker in (alone, helped):
                    loop = ticker.predictor
                    assert isinstance(loop, LoopCalibrated)
                    loop.settings = replace(
                        loop.settings,
                        min_span=timedelta(minutes=2),
                        refit_every=timedelta(minutes=3),
                    )
            before = helped.predictor
            fits.send([helped] if helped.heavy_fit_due(now) else [], now, 60.0)
            fits.take(helped)
            if helped.predictor is not before:
                came_back.append(minute)
            got = decision_record(helped.tick(now, states[id(helped)], OverridesFile()))
            fits.finish()
            assert got == decision_record(alone.tick(now, states[id(alone)], OverridesFile()))
    finally:
        fits.close()
    assert len(came_back) >= 3  # the recalibrations: every 3 minutes, from the second tick
    loop = helped.predictor
    assert isinstance(loop, LoopCalibrated) and loop._refit_at is not None


@pytest.mark.parametrize("margin", ["widen", "band"])
def test_each_worker_compiles_the_replay_once_after_the_first_tick_where_a_pool_recalibrates(
    tmp_path: Path, margin: str
) -> None:
    """The replay's compile (~0.7-0.9 s) is sent to the workers once the first tick is
    over, so that no tick of a recalibration waits for it; only where a pool is
    loop-calibrated (the default margin), and only once."""
    tickers = [make_ticker(tmp_path, name, DailyDemand(1.0), margin=margin) for name in "ab"]
    fits = FitWorkers(2)
    try:
        for minute in range(2):
            now = NOW + timedelta(minutes=minute)
            fits.send(tickers if minute == 0 else [], now, 60.0)
            if minute == 0:
                assert fits.warming == []  # not before the first tick's fits
            for ticker in tickers:
                fits.take(ticker)
                ticker.tick(now, PoolState(), OverridesFile())
            fits.finish()
            warming = list(fits.warming)
            assert len(warming) == (2 if margin == "widen" else 0)
        compiled = [future.result(timeout=60) for future in warming]
        assert compiled == ([True, True] if margin == "widen" else [])
        assert fits.warming == warming  # the second tick sent none again
    finally:
        fits.close()


def test_a_pool_without_history_is_told_as_missing_not_fitted(tmp_path: Path) -> None:
    """A failed query is that pool's observation: its tick holds on it (no second query),
    the other pools are fitted as usual."""
    broken = DailyDemand(1.0, MetricsError("unreachable", "demand_x", "connection refused"))
    tickers = [make_ticker(tmp_path, "x", broken), make_ticker(tmp_path, "y", DailyDemand(1.0))]
    fresh = [t.forecaster for t in tickers]
    fits = fits_of(tickers)
    assert (fits.fitted, fits.missed) == (1, {})
    assert tickers[0].forecaster is fresh[0] and tickers[1].forecaster is not fresh[1]
    result = tickers[0].tick(NOW, PoolState(), OverridesFile())
    assert "connection refused" in result.errors["metrics"]
    assert result.decision is not None and result.decision.desired == result.decision.current
    assert broken.queries == 1


class DiesInAWorker:
    """A forecaster whose fit kills the process it runs in (a worker, never the test)."""

    name = "dies"

    def __init__(self) -> None:
        self.parent = os.getpid()

    def fit(self, history: pd.Series) -> DiesInAWorker:
        if os.getpid() != self.parent:
            os._exit(3)
        return self

    def forecast(self, horizon: timedelta) -> Forecast:
        raise ValueError("not used")


class SlowInAWorker(DiesInAWorker):
    """A forecaster whose fit outlasts any deadline in a worker."""

    def fit(self, history: pd.Series) -> SlowInAWorker:
        if os.getpid() != self.parent:
            time.sleep(30)
        return self


@pytest.mark.parametrize("kind", [DiesInAWorker, SlowInAWorker])
def test_a_worker_that_dies_or_lags_leaves_its_pools_to_their_own_ticks(
    tmp_path: Path, kind: type
) -> None:
    """No exception and no forecaster for those pools, within the deadline; their ticks
    fit as if there had been no workers."""
    tickers = [make_ticker(tmp_path, name, DailyDemand(1.0)) for name in ("p", "q")]
    for ticker in tickers:
        ticker.predictor.inner = kind()
    fits = FitWorkers(2)
    started = time.monotonic()
    try:
        fits.send(tickers, NOW, 4.0)
        for ticker in tickers:
            fits.take(ticker)
        workers = list(fits._executor._processes.values())
    finally:
        fits.close()
    assert time.monotonic() - started < 8.0
    assert fits.fitted == 0 and sum(fits.missed.values()) == 2
    assert all(isinstance(t.predictor.inner, kind) for t in tickers)
    observed = [t._observed for t in tickers]  # what each tick uses instead of a query
    assert all(o is not None and isinstance(o[1], pd.Series) for o in observed)
    for worker in workers:  # none left fitting: it would hold the daemon's exit
        assert _ends_within(worker.pid, 5.0)


class AnswersNever(DailyDemand):
    """A metrics source whose call never returns until released (no deadline of its own)."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.released = threading.Event()

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        self.released.wait()
        return super().demand(query, start, end, step)


def test_a_query_that_never_answers_holds_the_fit_workers_no_longer_than_their_deadline(
    tmp_path: Path,
) -> None:
    """As a pool's own tick is: the call is left behind, and that pool and the ones after
    it are observed in their own ticks."""
    stuck = AnswersNever()
    tickers = [make_ticker(tmp_path, "p", stuck), make_ticker(tmp_path, "q", DailyDemand(1.0))]
    started = time.monotonic()
    try:
        fits = fits_of(tickers, seconds=1.0)
    finally:
        stuck.released.set()
    assert time.monotonic() - started < 4.0
    assert fits.missed == {"not observed in time": 2}
    assert all(t._observed is None for t in tickers)


def test_a_stop_ends_the_wait_for_a_lagging_worker(tmp_path: Path) -> None:
    """The daemon's stop grace (5 s) holds for the first tick too: a pool waiting for its
    batch stops waiting once the stop is set, whatever the fit workers' deadline."""
    ticker = make_ticker(tmp_path, "p", DailyDemand(1.0))
    ticker.predictor.inner = SlowInAWorker()
    stop = threading.Event()
    fits = FitWorkers(2, stop)
    try:
        fits.send([ticker], NOW, 60.0)
        threading.Timer(1.0, stop.set).start()
        started = time.monotonic()
        fits.take(ticker)
        waited = time.monotonic() - started
    finally:
        fits.close()
    assert waited < 5.0
    assert fits.missed == {"not back in time": 1}
    assert isinstance(ticker.predictor.inner, SlowInAWorker)


def _ends_within(pid: int, seconds: float) -> bool:
    """The process is gone or a zombie (read from /proc: Process.is_alive() races the
    executor's own thread reaping it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_past_the_deadline_pools_are_not_observed_at_all(tmp_path: Path) -> None:
    metrics = DailyDemand(1.0)
    tickers = [make_ticker(tmp_path, name, metrics) for name in ("p", "q")]
    fits = fits_of(tickers, seconds=0.0)
    assert metrics.queries == 0 and fits.missed == {"not observed in time": 2}
    assert all(t._observed is None for t in tickers)


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin"])
@pytest.mark.parametrize("unit", ["s", "ns"])
def test_a_history_travels_to_a_worker_as_it_is(tz: str | None, unit: str) -> None:
    regular = daily_demand(NOW, NOW + timedelta(hours=3), timedelta(minutes=1), 1.0)
    regular.index = regular.index.tz_convert(tz) if tz else regular.index.tz_localize(None)
    regular.index = regular.index.as_unit(unit)
    regular.name = "q"
    irregular = regular.drop(regular.index[5])
    for history in (regular, irregular):
        back = _unpacked(_packed(history))
        pd.testing.assert_series_equal(back, history, check_freq=False)  # nothing reads freq
        assert back.index.unit == unit and str(back.index.tz) == str(history.index.tz)
    assert not isinstance(_packed(regular), pd.Series)  # only the values travel


def test_few_pools_go_in_small_batches_many_in_batches_of_eight() -> None:
    """A steady tick's few refits come back one or two at a time, soon after it starts."""
    assert [_batch_size(pools, 2) for pools in (1, 3, 17, 64, 1000)] == [1, 1, 2, 8, 8]


def test_worker_count_is_the_setting_or_the_usable_cpus() -> None:
    assert worker_count(0) == 0 and worker_count(3) == 3
    assert worker_count(None) == min(8, len(os.sched_getaffinity(0)))


def many_pools_config(tmp_path: Path, workers: int) -> Path:
    trace = tmp_path / "trace.csv"
    demand = daily_demand(NOW - timedelta(days=9), NOW + timedelta(days=1), timedelta(minutes=1), 1)
    pd.DataFrame(
        {"timestamp": demand.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "requests": demand * 60}
    ).to_csv(trace, index=False)
    pools = [
        {
            "name": f"pool-{i}",
            "backend": {"kind": "simulated", "initial_nodes": 3},
            "demand": {"query": "demand", "window": "8d"},
            "capacity": {"per_node_rps": 1.0 + i},
            "max_nodes": 60,
        }
        for i in range(3)
    ]
    config = {
        "interval": "1m",
        "state_dir": str(tmp_path / f"state{workers}"),
        "simulation": {"start": NOW.isoformat(), "end": (NOW + timedelta(hours=2)).isoformat()},
        "metrics": {"kind": "replay", "trace": str(trace)},
        "fit_workers": workers,
        "pools": pools,
    }
    path = tmp_path / f"config{workers}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def ticked_alike(plain: Daemon, helped: Daemon, ticks: int) -> list[list[object]]:
    """`ticks` ticks of both daemons, each tick's decisions compared; the forecasters each
    of the helped daemon's pools had in turn (a new one is one from a worker)."""
    forecasters: list[list[object]] = [[t.forecaster] for t in helped.runtime.tickers]
    for _ in range(ticks):
        expected = [decision_record(r) for r in plain.tick()]
        got = [decision_record(r) for r in helped.tick()]
        assert got == expected
        for had, ticker in zip(forecasters, helped.runtime.tickers, strict=True):
            if ticker.forecaster is not had[-1]:
                had.append(ticker.forecaster)
    return forecasters


def test_the_daemon_fits_in_workers_its_first_tick_then_each_hourly_refit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Over an hour of ticks it decides as the same daemon without workers does, tick by
    tick; each pool's first fit and its hourly refit (on the pool's phase, one tick each)
    come from the workers, which the daemon keeps; no other tick sends one."""
    monkeypatch.setattr(daemon_fits, "WORKERS_FROM", 2)
    plain = Daemon(many_pools_config(tmp_path, 0), dry_run=True)
    helped = Daemon(many_pools_config(tmp_path, 2), dry_run=True)
    assert plain._fit_workers is None and helped._fit_workers is not None
    caplog.set_level("DEBUG", logger="autoscaler.daemon")
    try:
        forecasters = ticked_alike(plain, helped, 62)
        assert helped._fit_workers is not None  # kept
    finally:
        helped._let_fit_workers_go()
    assert all(len(had) == 3 for had in forecasters)  # fresh, first fit, refit
    assert [had[-1].heavy_fits for had in forecasters] == [2, 2, 2]  # type: ignore[attr-defined]
    alone = [t.forecaster.heavy_fits for t in plain.runtime.tickers]  # type: ignore[attr-defined]
    assert alone == [2, 2, 2]
    assert "first tick: 3 of 3 pools' forecasters fitted in 2 worker processes" in caplog.text
    sent = re.findall(r"heavy fits: (\d+) of (\d+) pools' forecasters fitted", caplog.text)
    assert sum(int(fitted) for fitted, _ in sent) == 3  # each refit, and nothing else
    assert all(fitted == pools for fitted, pools in sent)


def test_a_fit_worker_that_dies_leaves_the_daemon_to_refit_in_its_ticks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker killed between ticks (the OOM killer): the next heavy fit finds the workers
    broken, its pool refits in its own tick, and the daemon lets the workers go and says
    so. Every decision is the one the daemon without workers makes."""
    monkeypatch.setattr(daemon_fits, "WORKERS_FROM", 2)
    plain = Daemon(many_pools_config(tmp_path, 0), dry_run=True)
    helped = Daemon(many_pools_config(tmp_path, 2), dry_run=True)
    try:
        ticked_alike(plain, helped, 1)
        assert helped._fit_workers is not None
        executor = helped._fit_workers._executor
        victim = next(iter(executor._processes.values()))
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while not executor._broken and time.monotonic() < deadline:  # seen by its thread
            time.sleep(0.05)
        caplog.set_level("INFO", logger="autoscaler.daemon")
        forecasters = ticked_alike(plain, helped, 61)
    finally:
        helped._let_fit_workers_go()
    assert "a fit worker died; each pool fits in its own ticks from now" in caplog.text
    assert helped._fit_workers is None
    assert [had[-1].heavy_fits for had in forecasters] == [2, 2, 2]  # type: ignore[attr-defined]
    assert all(len(had) == 1 for had in forecasters)  # refitted in place, not by a worker


def test_workers_that_cannot_start_leave_the_daemon_to_fit_in_its_ticks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A sandbox that refuses them (no /dev/shm, a process limit) costs speed, not the
    daemon: it starts, says so, and its pools fit and decide in their own ticks."""

    def refused(workers: int, stop: object) -> FitWorkers:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(daemon_fits, "WORKERS_FROM", 2)
    monkeypatch.setattr(daemon_fits, "FitWorkers", refused)
    daemon = Daemon(many_pools_config(tmp_path, 2), dry_run=True)
    assert daemon._fit_workers is None
    assert "no fit workers ([Errno 13] Permission denied)" in caplog.text
    results = daemon.tick()
    assert len(results) == 3 and all(r.sizing.forecast is not None for r in results)


def test_pools_observed_for_the_workers_skip_a_prometheus_that_did_not_answer(
    tmp_path: Path,
) -> None:
    """The real Prometheus client against the query_range HTTP double, which stalls: the
    first pool's query times out, and the pools after it are not asked this tick (the
    daemon's circuit for the tick, common.tick_circuit); each holds on that, its tick
    asking no second time."""
    from autoscaler.config.metrics_source import PrometheusMetrics
    from autoscaler.metrics_prometheus import PrometheusSource
    from common.tick_circuit import TickCircuit
    from tests.doubles.prometheus_server import PrometheusApiDouble, Reply

    with PrometheusApiDouble([Reply(delay=30.0)]) as prom:
        source = PrometheusSource(PrometheusMetrics(url=prom.url, timeout=timedelta(seconds=0.3)))
        tickers = [make_ticker(tmp_path, name, DailyDemand(1.0)) for name in ("p", "q", "r")]
        for ticker in tickers:
            ticker.metrics = source  # type: ignore[assignment]
        fits = FitWorkers(2)
        try:
            fits.send(tickers, NOW, 60.0, TickCircuit())
            for ticker in tickers:
                fits.take(ticker)
        finally:
            fits.close()
        assert len(prom.requests) == 1
    observed = [t._observed[1] if t._observed else None for t in tickers]
    assert isinstance(observed[0], str) and observed[0].startswith("timeout:")
    for why in observed[1:]:
        assert isinstance(why, str) and f"{prom.url} did not answer pool p's call" in why


def test_what_a_worker_logs_is_a_json_line_as_the_daemons_are(tmp_path: Path) -> None:
    """Under the shipped unit's MemoryDenyWriteExecute=yes numba's import is refused, and
    each fit worker said so as it warmed, through Python's last-resort handler: a bare
    line among the daemon's JSON ones, that journald filed at info. The workers now log
    as the daemon does. The demo's pool 33 times, loop-calibrated, on its simulated clock
    for an hour (`autoscaler run` as a child process; numba refused at import, as llvmlite
    refuses it under that restriction)."""
    refusing = tmp_path / "refusing"
    refusing.mkdir()
    (refusing / "numba.py").write_text(
        'raise PermissionError(1, "cannot allocate executable memory")\n'
    )
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config.update(state_dir=str(tmp_path / "state"), fit_workers=2)
    config["decision_log"] = str(tmp_path / "decisions.jsonl")
    config["metrics"]["trace"] = str(ROOT / "config" / "traces" / "nasa_jul95_demo.csv")
    config["simulation"]["end"] = "1995-07-11T05:00:00Z"
    (pool,) = config["pools"]
    pool["predictor"]["margin"] = "loop"
    config["pools"] = [{**pool, "name": f"gpu-{n}"} for n in range(daemon_fits.WORKERS_FROM)]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(refusing), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli.main", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # each one JSON
    said = [line for line in lines if "numba cannot compile here" in line["message"]]
    assert said and all(line["levelname"] == "WARNING" for line in said)
