"""A steady tick's demand read from a real Prometheus: the whole window, or only what is new.

    python bench/demand_read.py [--ticks 20] [--days 7 14]

Starts Debian's Prometheus on a loopback port with 14 days of the bundled NASA trace
backfilled (as the integration tests do: tests/doubles/prometheus_server.py), then, for
each window, reads one pool's demand on `--ticks` ticks a minute apart two ways, as
`metrics.fetch_demand` does: asking for the whole window every tick (as the daemon did
before it kept its history), and asking only from a few steps before the newest sample
it kept. Each tick's two answers must be the same samples; the script says if one
differs. Prints the medians (wall milliseconds a pool a tick) and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the Prometheus harness lives with the tests

from autoscaler.config.metrics_source import PrometheusMetrics  # noqa: E402
from autoscaler.config.schema import DemandQuery  # noqa: E402
from autoscaler.kept_demand import KeptDemand  # noqa: E402
from autoscaler.metrics import fetch_demand  # noqa: E402
from autoscaler.metrics_prometheus import PrometheusSource  # noqa: E402
from tests.doubles.prometheus_server import DEMAND_QUERY, build_history  # noqa: E402

STALENESS = timedelta(minutes=5)


def timed(read: Callable[[], KeptDemand]) -> tuple[float, KeptDemand]:
    started = time.perf_counter()
    answer = read()
    return (time.perf_counter() - started) * 1e3, answer


def compare(source: PrometheusSource, days: int, ticks: int, now: datetime) -> str:
    demand = DemandQuery(query=DEMAND_QUERY, window=timedelta(days=days))
    kept = fetch_demand(source, demand, now, STALENESS)
    whole_ms, kept_ms, differ = [], [], 0
    for minute in range(1, ticks + 1):
        at = now + timedelta(minutes=minute, seconds=1)
        spent, read = timed(lambda at=at: fetch_demand(source, demand, at, STALENESS))
        whole_ms.append(spent)
        whole = read.series
        spent, kept = timed(lambda at=at, k=kept: fetch_demand(source, demand, at, STALENESS, k))
        kept_ms.append(spent)
        got = kept.series
        same = whole.index.equals(got.index) and (whole.to_numpy() == got.to_numpy()).all()
        differ += not same
    one, other = statistics.median(whole_ms), statistics.median(kept_ms)
    return (
        f"{days:>2} d window ({len(whole)} samples), median of {ticks} ticks: whole window "
        f"{one:.1f} ms, kept window {other:.2f} ms a pool a tick, {one / other:.0f} x less; "
        f"answers that differ: {differ} of {ticks}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--days", type=int, nargs="+", default=[7, 14])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="demand-read-"))
    history, server = build_history(folder)
    try:
        # Ticks end before the backfilled history does: every answer is a whole one.
        now = history.last_sample - timedelta(minutes=args.ticks + 10)
        with PrometheusSource(PrometheusMetrics(url=history.url)) as source:
            for days in args.days:
                print(compare(source, days, args.ticks, now))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
