"""A REAL Prometheus (Debian's `prometheus` package) holding 14 days of a real trace.

(At the end: PrometheusApiDouble, a scripted double of /api/v1/query_range for the
malformed answers a real server will not give on demand.)

Not a double: the fixture backfills the last 14 days of a bundled per-minute trace
as the counter `http_requests_total{job="demo"}` with `promtool tsdb
create-blocks-from openmetrics`, shifted so the history is fresh on the wall
clock, then starts `prometheus` on a free loopback port. Backfilling happens
before the server starts, so no block overlaps a head that is being written.

The history runs `LEAD` past the wall clock so a long test session still sees
fresh data; a range query ending at "now" sees exactly what a live Prometheus
would. A second series, `job="demo-canary"`, exists only to make a query that
selects two series.

If `prometheus` or `promtool` is missing the fixture FAILS (CI installs them).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble
from tests.traces import NASA

NASA_TRACE = NASA

HISTORY = timedelta(days=14)
LEAD = timedelta(minutes=30)
RATE_WINDOW = timedelta(minutes=5)
DEMAND_QUERY = 'sum(rate(http_requests_total{job="demo"}[5m]))'
TWO_SERIES_QUERY = "rate(http_requests_total[5m])"
NOTHING_QUERY = 'sum(rate(http_requests_total{job="no-such-job"}[5m]))'

_CONFIG = "global:\n  scrape_interval: 1m\nscrape_configs: []\n"


# ---- trace → OpenMetrics ---------------------------------------------------------


def load_trace(path: Path) -> pd.Series:
    """Requests per minute (`timestamp,requests`), indexed by UTC minute."""
    frame = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True), name="timestamp")
    return pd.Series(frame["requests"].to_numpy(dtype=float), index=index, name="requests")


def shift_to_end_at(trace: pd.Series, end: datetime, span: timedelta) -> pd.Series:
    """The trace's last `span`, moved in time so its last minute is `end`."""
    tail = trace[trace.index > trace.index[-1] - pd.Timedelta(span)]
    return tail.set_axis(tail.index + (pd.Timestamp(end) - tail.index[-1]))


def openmetrics_counter(name: str, series_by_job: dict[str, pd.Series]) -> str:
    """OpenMetrics text: one cumulative counter sample per minute and job, then `# EOF`.

    promtool wants timestamps in seconds, each series in time order, and the
    `_total` suffix on a counter family's samples.
    """
    lines = [f"# HELP {name} Requests served.", f"# TYPE {name} counter"]
    for job, requests in series_by_job.items():
        seconds = (requests.index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        cumulative = np.cumsum(requests.to_numpy(dtype=float))
        prefix = f'{name}_total{{job="{job}"}} '
        pairs = zip(cumulative, seconds, strict=True)
        lines += [f"{prefix}{value:.17g} {stamp}" for value, stamp in pairs]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def expected_rate(
    requests: pd.Series, at: pd.DatetimeIndex, window: timedelta, left_open: bool
) -> pd.Series:
    """What `rate(counter[window])` gives at times `at` on the counter backfilled from `requests`.

    Prometheus's extrapolatedRate (promql/functions.go): the increase between the
    first and last sample in the window, extrapolated to the window's edges when
    they are within 1.1 sample intervals, divided by the window. Prometheus 2.x
    selects [t-window, t]; 3.x selects (t-window, t].
    """
    stamps = ((requests.index - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    counter = np.cumsum(requests.to_numpy(dtype=float))
    span = window.total_seconds()
    rates = []
    for moment in at:
        end = (moment - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        start = end - span
        inside = (stamps > start if left_open else stamps >= start) & (stamps <= end)
        times, values = stamps[inside], counter[inside]
        if len(times) < 2:
            rates.append(np.nan)
            continue
        increase = values[-1] - values[0]
        sampled = times[-1] - times[0]
        average_gap = sampled / (len(times) - 1)
        to_start, to_end = times[0] - start, end - times[-1]
        if increase > 0 and values[0] >= 0:
            to_start = min(to_start, sampled * values[0] / increase)
        threshold = 1.1 * average_gap
        extended = sampled
        extended += to_start if to_start < threshold else average_gap / 2
        extended += to_end if to_end < threshold else average_gap / 2
        rates.append(increase * (extended / sampled) / span)
    return pd.Series(rates, index=at, dtype=float)


# ---- processes -------------------------------------------------------------------


def require_prometheus() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, or fail the test: CI must install them."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        pytest.fail(
            "the integration tests need a real Prometheus: `prometheus` and `promtool` not on "
            "PATH; install Debian's package with `apt-get install -y prometheus`",
            pytrace=False,
        )
    return prometheus, promtool


def prometheus_major_version(prometheus: str) -> int:
    out = subprocess.run([prometheus, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"version (\d+)\.", out.stdout + out.stderr)
    return int(found.group(1)) if found else 2


def backfill(promtool: str, openmetrics_file: Path, data_dir: Path) -> None:
    done = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "-q",
            str(openmetrics_file),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"promtool backfill failed:\n{done.stdout}\n{done.stderr}", pytrace=False)


@dataclass
class PrometheusProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_prometheus(
    prometheus: str,
    data_dir: Path,
    work_dir: Path,
    *,
    web_config: Path | None = None,
    scheme: str = "http",
    ready: Callable[[str], bool] | None = None,
    flags: Sequence[str] = (),
) -> PrometheusProcess:
    """Start Prometheus on a free loopback port and wait until /-/ready answers 200.

    `web_config`: Prometheus's --web.config.file (TLS, client certificates, basic auth);
    then `ready(url)` probes readiness with whatever credentials that file demands.
    `flags`: more of its command-line flags (a limit such as --query.max-samples)."""
    config = work_dir / "prometheus.yml"
    config.write_text(_CONFIG)
    attempts = 3  # another process may take the free port before Prometheus binds it
    for attempt in range(1, attempts + 1):
        port = free_port()
        log = work_dir / f"prometheus-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=30d",
                    "--log.level=warn",
                    *([f"--web.config.file={web_config}"] if web_config else []),
                    *flags,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = PrometheusProcess(url=f"{scheme}://127.0.0.1:{port}", process=process, log=log)
        if _wait_ready(server, timeout=30.0, probe=ready or _answers_ready):
            return server
        server.stop()
        text = log.read_text(errors="replace")
        if "address already in use" not in text or attempt == attempts:
            pytest.fail(f"Prometheus did not become ready:\n{text[-3000:]}", pytrace=False)
    raise AssertionError("not reached: the loop returns or fails")


def _wait_ready(server: PrometheusProcess, timeout: float, probe: Callable[[str], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if probe(server.url):
            return True
        time.sleep(0.05)
    return False


def _answers_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


# ---- the fixture -----------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusWithHistory:
    """A running Prometheus and the requests-per-minute trace it holds for job="demo"."""

    url: str
    requests: pd.Series  # per minute, shifted: the last minute is `last_sample`
    last_sample: datetime
    prometheus_major: int

    def expected_rate(self, at: pd.DatetimeIndex) -> pd.Series:
        """What DEMAND_QUERY returns when evaluated at times `at`."""
        return expected_rate(self.requests, at, RATE_WINDOW, self.prometheus_major >= 3)


_shared: PrometheusWithHistory | None = None


def build_history(
    tmp: Path,
    trace_path: Path = NASA_TRACE,
    now: datetime | None = None,
    history: timedelta = HISTORY,
    flags: Sequence[str] = (),
) -> tuple[PrometheusWithHistory, PrometheusProcess]:
    """Backfill `history` (14 days) of the trace, ending LEAD after now, and start
    Prometheus on it with `flags`."""
    prometheus, promtool = require_prometheus()
    moment = now or datetime.now(UTC)
    end = moment.replace(second=0, microsecond=0) + LEAD
    requests = shift_to_end_at(load_trace(trace_path), end, history + LEAD)
    canary = (requests[requests.index > requests.index[-1] - pd.Timedelta(days=1)] // 2).rename(
        "canary"
    )
    openmetrics = tmp / "history.om"
    openmetrics.write_text(
        openmetrics_counter("http_requests", {"demo": requests, "demo-canary": canary})
    )
    data_dir = tmp / "data"
    backfill(promtool, openmetrics, data_dir)
    server = start_prometheus(prometheus, data_dir, tmp, flags=flags)
    held = PrometheusWithHistory(
        url=server.url,
        requests=requests,
        last_sample=end,
        prometheus_major=prometheus_major_version(prometheus),
    )
    return held, server


@pytest.fixture(scope="session")
def prometheus_history(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusWithHistory]:
    """One Prometheus with history per test session, even if several modules import this."""
    global _shared
    if _shared is not None:
        yield _shared
        return
    history, server = build_history(tmp_path_factory.mktemp("prometheus"))
    _shared = history
    try:
        yield history
    finally:
        _shared = None
        server.stop()


@pytest.fixture
def stopped_prometheus_url(tmp_path: Path) -> str:
    """The URL of a real Prometheus that was started and then killed: nothing listens."""
    prometheus, _ = require_prometheus()
    server = start_prometheus(prometheus, tmp_path / "data", tmp_path)
    server.process.kill()
    server.process.wait(timeout=5)
    return server.url


# ---- an HTTP double of the query_range endpoint, for malformed answers -----------


PrometheusRequest = tuple[str, dict[str, list[str]], dict[str, str]]
"""(path, parse_qs of the query, headers as sent) of one request to the double."""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    content_type: str = "application/json"


def matrix_reply(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> Reply:
    """A successful range-query answer: resultType "matrix", values as [time, "string"]."""
    result = [
        {"metric": labels, "values": [[t, v] for t, v in values]} for labels, values in series
    ]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return Reply(body=json.dumps(body).encode())


def error_reply(status: int, error_type: str, error: str) -> Reply:
    """Prometheus's error envelope: status "error", errorType, error."""
    body = {"status": "error", "errorType": error_type, "error": error}
    return Reply(status=status, body=json.dumps(body).encode())


class PrometheusApiDouble(LoopbackDouble[PrometheusRequest]):
    """GET /api/v1/query_range as Prometheus's HTTP API documents describe it.

    Shapes from https://prometheus.io/docs/prometheus/latest/querying/api/: a JSON
    envelope {"status": "success"|"error", "data": {"resultType": "matrix",
    "result": [{"metric": {...}, "values": [[unix_seconds, "value"], ...]}]}} and,
    on failure, "errorType"/"error" with 400 (bad parameters), 422 (cannot execute)
    or 503 (timeout/abort). Replies are scripted in order (the last repeats), so
    tests can serve malformed bodies, errors and delays. Requests are recorded as
    (path, parse_qs of the query, headers as sent).
    """

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(_PrometheusHandler, quiet_errors=True)
        self.replies = list(replies)

    def next_reply(self, path: str) -> Reply:
        if path != "/api/v1/query_range":
            return error_reply(404, "not_found", "no such endpoint")
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class _PrometheusHandler(JsonApiHandler):
    def serve(self, request: IncomingRequest) -> None:
        if request.method != "GET":  # the double serves GET only
            self.send_error(501, f"Unsupported method ({request.method!r})")
            return
        double: PrometheusApiDouble = self.server.double
        query = parse_qs(urlsplit(self.path).query)
        double.record((request.path, query, dict(self.headers)))
        reply = double.next_reply(request.path)
        if reply.delay and self.server.stopping.wait(reply.delay):
            self.close_connection = True  # stopped while stalling: no answer
            return
        self.send_bytes(reply.status, reply.body, reply.content_type)
