"""A daemon's first and steady ticks of 1,000 pools: in one process, and with fit workers.

Each pool is a PoolTicker as the daemon builds it (the seasonal forecaster with the default
margin, `widen`, and policy `auto`; a simulated fleet; a dry run), its 14 days of 1-minute
demand served from memory (the bundled traces at random offsets and scales, with noise,
as bench/predictor_speed.py makes them). On the same pools and histories, in one run:

1. the first tick in one process: every pool ticked one after another (observe, fit,
   forecast, size, decide, log), as the daemon did before autoscaler.fit_workers;
2. the same with the seed's linear predictor: the baseline the issue's ratio is to;
3. the first tick with the fit workers: the workers started first, as the daemon starts
   them when it starts (their start timed apart: it overlaps the daemon's own start and
   its first queries), then FitWorkers.send, and each pool's take and tick. Each pool's
   decision must be the one run 1 made; the script says if one differs;
4. the steady ticks after a first tick: every pool ticked again a minute later, and the
   next minutes (`--steady-ticks`), as the daemon ticks them: in one process (seasonal
   beside linear), and with the fit workers doing the hourly refits that fall on each
   minute (about 1/60 of the pools, by their refit phases; a fresh set of workers, as the
   daemon keeps its own). Decisions compared as in 3.

Medians of `--repeats` runs, each on fresh tickers; wall seconds (the workers' CPU is
not the parent's), and the parent's CPU seconds.

    python bench/first_tick.py [--pools 1000] [--workers N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from predictor_speed import FORTNIGHT, pool_histories  # run from bench/: on sys.path

from autoscaler.config.schema import Pool
from autoscaler.daemon import Daemon
from autoscaler.decision_log import DecisionLog
from autoscaler.fit_workers import FitWorkers, worker_count
from autoscaler.notify import LogNotifier
from autoscaler.overrides import OverridesFile
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from autoscaler.tick_result import TickResult, decision_record
from backends.simulated import SimulatedFleet
from common.clock import SimulatedClock
from common.collector import tune_collector
from common.secrets import RedactingJsonFormatter, install_log_redaction

NOW = datetime(2025, 6, 16, 0, 0, tzinfo=UTC)  # pool_histories' 14 days end here


class ServedHistories:
    """Each pool's history (by its query) up to the asked end, as a metrics source."""

    def __init__(self, histories: dict[str, pd.Series]) -> None:
        # Named by their queries, as the Prometheus adapter names what it answers.
        self.histories = {name: h.rename(name) for name, h in histories.items()}
        self._stamps = {name: h.index.as_unit("ns").asi8 for name, h in histories.items()}

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        """Two binary searches on the sorted times: about what a cache in front of the
        daemon would cost, so that the tick's own work is what is timed."""
        stamps = self._stamps[query]
        first = np.searchsorted(stamps, pd.Timestamp(start).value, side="left")
        last = np.searchsorted(stamps, pd.Timestamp(end).value, side="right")
        return self.histories[query].iloc[first:last].copy()


def pool_settings(number: int, name: str, kind: str) -> dict[str, object]:
    """The config of the bench's pool `number` (its query is its name)."""
    return {
        "name": name,
        "backend": {"kind": "simulated", "initial_nodes": 4},
        "demand": {"query": name, "window": "14d"},
        "capacity": {"per_node_rps": 0.05 * (1 + number % 5)},
        "predictor": {"kind": kind},
        "max_nodes": 400,
    }


def make_tickers(kind: str, metrics: ServedHistories, folder: Path) -> list[PoolTicker]:
    clock = SimulatedClock(NOW)
    notifier = LogNotifier()
    log = DecisionLog(folder / f"{kind}.jsonl")  # one for every pool, as the daemon's
    tickers = []
    for number, name in enumerate(metrics.histories):
        pool = Pool.model_validate(pool_settings(number, name, kind))
        fleet = SimulatedFleet(clock, initial_nodes=4, boot_delay=timedelta(minutes=10))
        per_node = pool.capacity.per_node_rps
        assert per_node is not None
        tickers.append(
            PoolTicker(pool, fleet, per_node, metrics, timedelta(minutes=5), notifier, log, True)
        )
    return tickers


def tick_all(
    tickers: list[PoolTicker], at: datetime = NOW, states: list[PoolState] | None = None
) -> list[dict[str, object]]:
    """Each pool's tick, and its decision as the log has it (to compare runs)."""
    overrides = OverridesFile()
    states = states or [PoolState() for _ in tickers]
    return [
        decision_record(t.tick(at, state, overrides))
        for t, state in zip(tickers, states, strict=True)
    ]


def tick_only(
    tickers: list[PoolTicker], at: datetime, states: list[PoolState], fits: FitWorkers | None
) -> list[TickResult]:
    """Each pool's tick, nothing more: as the daemon ticks them (with `fits`: the heavy fits
    due sent to the workers first, each taken before its pool's tick)."""
    overrides = OverridesFile()
    if fits is not None:
        fits.send([t for t in tickers if t.heavy_fit_due(at)], at, 30.0)
    results = []
    for ticker, state in zip(tickers, states, strict=True):
        if fits is not None:
            fits.take(ticker)
        results.append(ticker.tick(at, state, overrides))
    if fits is not None:
        fits.finish()
    return results


def steady_ticks(
    kind: str, served: ServedHistories, folder: Path, count: int, workers: int = 0
) -> tuple[list[float], list[float], list[dict[str, object]], int]:
    """Wall and CPU seconds of each of `count` ticks a minute apart after the pools' first
    tick (in one process), every decision of those ticks, and the fits the workers made
    in them (with `workers`: fit workers do the heavy fits)."""
    tickers = make_tickers(kind, served, folder)
    states = [PoolState() for _ in tickers]
    tick_all(tickers, NOW, states)
    fits = FitWorkers(workers) if workers > 1 else None
    if fits is not None:
        wait(fits.starting, timeout=60.0)
    walls, cpus, records, fitted = [], [], [], 0
    try:
        for minute in range(1, count + 1):
            at = NOW + timedelta(minutes=minute)
            wall, cpu, results = timed(partial(tick_only, tickers, at, states, fits))
            assert isinstance(results, list)
            walls.append(wall)
            cpus.append(cpu)
            records += [decision_record(r) for r in results]
            fitted += fits.fitted if fits is not None else 0
    finally:
        if fits is not None:
            fits.close()
    return walls, cpus, records, fitted


def daemon_ticks(
    served: ServedHistories,
    folder: Path,
    count: int,
    workers: int,
    kind: str = "seasonal",
    after_first: Callable[[Daemon], None] | None = None,
) -> tuple[list[float], list[dict[str, object]], tuple[float, int]]:
    """Wall seconds of `count` ticks of a real Daemon a minute apart after its first (its
    own loop: each pool under its deadline, the telemetry, the decision log, the state
    file written every tick and each decision's JSON log line; `workers` fit workers; not a
    dry run, on simulated
    fleets), every decision of them, and the first tick's wall seconds and acting pools.
    Its pools are those of make_tickers, configured in YAML, their metrics served as
    above; `after_first` is called on the daemon between its first tick and the next."""
    config = folder / f"daemon-{kind}-{workers}.yaml"
    pools = [pool_settings(number, name, kind) for number, name in enumerate(served.histories)]
    trace = folder / "trace.csv"  # the config's metrics: replaced by `served` below
    end = NOW + timedelta(minutes=count + 1)
    trace.write_text(f"timestamp,requests\n2025-06-15T00:00:00Z,60\n{end:%Y-%m-%dT%H:%M}:00Z,60\n")
    settings = {
        "interval": "1m",
        "state_dir": str(folder / f"state-{kind}-{workers}"),
        "decision_log": str(folder / f"decisions-{kind}-{workers}.jsonl"),
        "simulation": {"start": NOW.isoformat(), "end": end.isoformat()},
        "metrics": {"kind": "replay", "trace": str(trace)},
        "fit_workers": workers,
        "pools": pools,
    }
    config.write_text(yaml.safe_dump(settings))
    tune_collector()  # as `autoscaler run` does
    with logged_as_the_daemon():
        return _ticked(Daemon(config), served, count, after_first)


def _ticked(
    daemon: Daemon,
    served: ServedHistories,
    count: int,
    after_first: Callable[[Daemon], None] | None,
) -> tuple[list[float], list[dict[str, object]], tuple[float, int]]:
    for ticker in daemon.runtime.tickers:
        ticker.metrics = served
    if daemon._fit_workers is not None:
        wait(daemon._fit_workers.starting, timeout=60.0)
    walls, records = [], []
    try:
        first_wall, _, first = timed(daemon.tick)
        assert isinstance(first, list)
        first_tick = (first_wall, sum(result.acted for result in first))
        if after_first is not None:
            after_first(daemon)
        for _ in range(count):
            wall, _, results = timed(daemon.tick)
            assert isinstance(results, list)
            walls.append(wall)
            records += [decision_record(r) for r in results]
    finally:
        daemon._let_fit_workers_go()
    return walls, records, first_tick


@contextmanager
def logged_as_the_daemon() -> Iterator[None]:
    """Each decision logged at INFO as a JSON line, redacted, as the daemon logs them to
    journald (here to /dev/null): part of the daemon's own tick, ~0.06 s of 1,000 pools'."""
    root = logging.getLogger()
    saved = root.level, root.handlers[:]
    with open(os.devnull, "w", encoding="utf-8") as sink:
        handler = logging.StreamHandler(sink)
        fields = "%(levelname)s %(name)s %(message)s"
        handler.setFormatter(RedactingJsonFormatter(fields, timestamp=True))
        install_log_redaction()
        logging.disable(logging.NOTSET)
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.handlers[:] = saved[1]
            root.setLevel(saved[0])
            logging.disable(logging.INFO)


def timed(run: Callable[[], object]) -> tuple[float, float, object]:
    started, cpu = time.perf_counter(), time.process_time()
    value = run()
    return time.perf_counter() - started, time.process_time() - cpu, value


def with_fit_workers(fits: FitWorkers, tickers: list[PoolTicker]) -> list[dict[str, object]]:
    """As the daemon's first tick: all sent, then each pool takes its fit and ticks."""
    fits.send(tickers, NOW, 60.0)
    overrides = OverridesFile()
    records = []
    for ticker in tickers:
        fits.take(ticker)
        records.append(decision_record(ticker.tick(NOW, PoolState(), overrides)))
    fits.finish()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=worker_count(None))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steady-ticks", type=int, default=15)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # a decision logged per pool: not what is timed here
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    histories = pool_histories(args.pools, extra=args.steady_ticks)
    served = ServedHistories({f"pool-{n}": h for n, h in enumerate(histories)})
    assert all(h.index[FORTNIGHT - 1] < NOW for h in histories)
    folder = Path(tempfile.mkdtemp(prefix="first-tick-"))
    plain, linear, helped, starts, plain_cpu, helped_cpu = [], [], [], [], [], []
    differ = 0
    for _ in range(args.repeats):
        wall, cpu, expected = timed(lambda: tick_all(make_tickers("seasonal", served, folder)))
        plain.append(wall)
        plain_cpu.append(cpu)
        linear.append(timed(lambda: tick_all(make_tickers("linear", served, folder)))[0])
        started = time.perf_counter()
        fits = FitWorkers(args.workers)
        wait(fits.starting, timeout=60.0)
        starts.append(time.perf_counter() - started)
        tickers = make_tickers("seasonal", served, folder)
        try:
            wall, cpu, got = timed(partial(with_fit_workers, fits, tickers))
        finally:
            fits.close()
        helped.append(wall)
        helped_cpu.append(cpu)
        differ += sum(a != b for a, b in zip(expected, got, strict=True))
    one, two = statistics.median(plain), statistics.median(helped)
    base = statistics.median(linear)
    print(
        f"first tick of {args.pools} pools (14 d of minutes each), median of {args.repeats}:\n"
        f"  one process:      {one:.3f} s wall ({statistics.median(plain_cpu):.2f} s CPU), "
        f"{one / base:.1f} x linear's {base:.2f} s\n"
        f"  {args.workers} fit workers:    {two:.3f} s wall "
        f"({statistics.median(helped_cpu):.2f} s CPU in the daemon), {two / base:.1f} x linear, "
        f"{two / one:.2f} x one process\n"
        f"  (the workers' start, before the tick: {statistics.median(starts):.2f} s wall)\n"
        f"  decisions that differ from one process's: {differ} of {args.pools * args.repeats}"
    )
    count = args.steady_ticks
    alone, alone_cpu, expected, _ = steady_ticks("seasonal", served, folder, count)
    linear_steady = statistics.median(steady_ticks("linear", served, folder, count)[0])
    helped, helped_cpu, got, fitted = steady_ticks("seasonal", served, folder, count, args.workers)
    steady_differ = sum(a != b for a, b in zip(expected, got, strict=True))
    one, two = statistics.median(alone), statistics.median(helped)
    print(
        f"steady ticks of those {args.pools} pools (a minute apart), median of {count}:\n"
        f"  one process:      {one:.3f} s wall ({statistics.median(alone_cpu):.2f} s CPU), "
        f"{one / linear_steady:.2f} x linear's {linear_steady:.3f} s\n"
        f"  {args.workers} fit workers:    {two:.3f} s wall "
        f"({statistics.median(helped_cpu):.2f} s CPU in the daemon), "
        f"{two / linear_steady:.2f} x linear, {two / one:.2f} x one process\n"
        f"  hourly refits the workers made in those ticks: {fitted}\n"
        f"  decisions that differ from one process's: {steady_differ} of {len(expected)}"
    )
    whole, whole_got, (first_wall, first_acted) = daemon_ticks(served, folder, count, args.workers)
    forecast = ("time", "pool", "demand_rps", "forecast_rps", "forecast_upper_rps")
    whole_differ = sum(  # its fleets act (not a dry run) on its own clock: forecasts compared
        [a[k] for k in forecast] != [b[k] for k in forecast]
        for a, b in zip(expected, whole_got, strict=True)
    )
    daemon = statistics.median(whole)
    linear_daemon = statistics.median(daemon_ticks(served, folder, count, 0, "linear")[0])
    acted = sum(bool(record["acted"]) for record in whole_got) / count
    print(
        f"  the daemon's own tick, {args.workers} fit workers (Daemon.tick: deadline thread, "
        f"telemetry, decision log, state file, JSON log lines; {acted:.0f} pools act a tick): "
        f"{daemon:.3f} s "
        f"wall, {daemon / linear_daemon:.2f} x linear's {linear_daemon:.3f} s\n"
        f"  its forecasts that differ from one process's: {whole_differ} of {len(expected)}\n"
        f"  its own first tick: {first_wall:.3f} s wall ({first_acted} pools acted)"
    )


if __name__ == "__main__":
    main()
