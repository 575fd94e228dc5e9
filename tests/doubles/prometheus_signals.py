"""A REAL Prometheus (Debian's package) holding series for every kind of signal.

Backfilled with `promtool tsdb create-blocks-from openmetrics` (as prometheus_server.py
does for the demand trace), one sample a minute from 3 hours before the wall clock to
`LEAD` after it, so queries at "now" see what a live server would:

- demand: `http_requests_total{job="face"}` grows by 20 req/s;
- queue depth: `rabbitmq_queue_messages_ready` for queue="face-match" (1,200), "ocr"
  (300, so a query without sum gives two series), "broken" (-5) and "nan" (NaN);
- GPU utilization: `DCGM_FI_DEV_GPU_UTIL` of four GPUs at 90, 95, 100 and 95 % (average
  95; their sum, 380, is what a query that forgot avg gives);
- latency: the histogram `request_duration_seconds` for job="face" (per minute 50
  requests ≤ 0.5 s, 20 more ≤ 1 s, 10 more ≤ 2 s, 20 more ≤ 4 s: p95 = 3.5 s) and
  job="fast" (all ≤ 0.5 s: p95 = 0.475 s) and job="idle" (no requests at all: Prometheus's
  histogram_quantile gives NaN, 0/0);
- a node count: `face_nodes_wanted` 6.3;
- capacity: `requests_served_total{pool="face"}` grows by 28 req/s served by
  `workers_ready{pool="face"}` 4 nodes (7 req/s each at 95 % GPU utilization);
- `old_signal`, whose samples stop two hours before the wall clock (stale).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.doubles.prometheus_server import backfill, require_prometheus, start_prometheus

LEAD = timedelta(minutes=30)
SPAN = timedelta(hours=3)

DEMAND = 'sum(rate(http_requests_total{job="face"}[5m]))'
QUEUE = 'sum(rabbitmq_queue_messages_ready{queue="face-match"})'
QUEUE_TWO_SERIES = 'rabbitmq_queue_messages_ready{queue=~"face-match|ocr"}'
QUEUE_NEGATIVE = 'sum(rabbitmq_queue_messages_ready{queue="broken"})'
QUEUE_NAN = 'sum(rabbitmq_queue_messages_ready{queue="nan"})'
GPU_UTIL = 'avg(DCGM_FI_DEV_GPU_UTIL{pool="face"})'
GPU_UTIL_SUMMED = 'sum(DCGM_FI_DEV_GPU_UTIL{pool="face"})'
LATENCY = (
    'histogram_quantile(0.95, sum by (le) (rate(request_duration_seconds_bucket{job="face"}[5m])))'
)
LATENCY_FAST = (
    'histogram_quantile(0.95, sum by (le) (rate(request_duration_seconds_bucket{job="fast"}[5m])))'
)
LATENCY_IDLE = (
    'histogram_quantile(0.95, sum by (le) (rate(request_duration_seconds_bucket{job="idle"}[5m])))'
)
NODES_WANTED = "max(face_nodes_wanted)"
NOTHING = 'sum(rabbitmq_queue_messages_ready{queue="no-such-queue"})'
STALE = "max(old_signal)"
SERVED = 'sum(rate(requests_served_total{pool="face"}[5m]))'
READY = 'sum(workers_ready{pool="face"})'

BUCKETS = {
    "face": [(0.5, 50), (1, 70), (2, 80), (4, 100), (math.inf, 100)],
    "fast": [(0.5, 100), (1, 100), (2, 100), (4, 100), (math.inf, 100)],
    "idle": [(0.5, 0), (1, 0), (2, 0), (4, 0), (math.inf, 0)],
}


@dataclass(frozen=True)
class SignalPrometheus:
    url: str
    now: datetime
    """The wall-clock minute the series were written around (data runs LEAD past it)."""


def _value(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.17g}"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def openmetrics(now: datetime) -> str:
    start = int((now - SPAN).timestamp())
    stamps = list(range(start, int((now + LEAD).timestamp()) + 1, 60))
    lines: list[str] = []

    def gauge(name: str, series: dict[str, float], until: int | None = None) -> None:
        lines.append(f"# TYPE {name} gauge")
        for labels, value in series.items():
            lines.extend(
                f"{name}{labels} {_value(value)} {t}" for t in stamps if not until or t < until
            )

    def counter(name: str, labels: str, per_second: float) -> None:
        lines.append(f"# TYPE {name} counter")
        lines.extend(
            f"{name}_total{labels} {i * per_second * 60:.17g} {t}" for i, t in enumerate(stamps)
        )

    counter("http_requests", '{job="face"}', 20.0)
    counter("requests_served", '{pool="face"}', 28.0)
    gauge(
        "rabbitmq_queue_messages_ready",
        {'{queue="face-match"}': 1200, '{queue="ocr"}': 300, '{queue="broken"}': -5,
         '{queue="nan"}': math.nan},
    )  # fmt: skip
    gauge(
        "DCGM_FI_DEV_GPU_UTIL",
        {f'{{pool="face",Hostname="gpu-{n}"}}': u for n, u in enumerate((90, 95, 100, 95))},
    )
    gauge("face_nodes_wanted", {"": 6.3})
    gauge("workers_ready", {'{pool="face"}': 4})
    gauge("old_signal", {"": 3}, until=int((now - timedelta(hours=2)).timestamp()))
    lines.append("# TYPE request_duration_seconds histogram")
    for job, buckets in BUCKETS.items():
        for i, t in enumerate(stamps):
            n = i + 1
            lines += [
                f'request_duration_seconds_bucket{{job="{job}",le="{_le(le)}"}} {c * n} {t}'
                for le, c in buckets
            ]
            total = buckets[-1][1]
            lines.append(f'request_duration_seconds_count{{job="{job}"}} {total * n} {t}')
            lines.append(f'request_duration_seconds_sum{{job="{job}"}} {1.5 * total * n:g} {t}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def signal_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignalPrometheus]:
    prometheus, promtool = require_prometheus()
    tmp: Path = tmp_path_factory.mktemp("signals")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    source = tmp / "signals.om"
    source.write_text(openmetrics(now))
    backfill(promtool, source, tmp / "data")
    server = start_prometheus(prometheus, tmp / "data", tmp)
    try:
        yield SignalPrometheus(server.url, now)
    finally:
        server.stop()
