"""One slow server shared by many pools: how long a tick takes, and how late the pools on
a healthy server after them are decided.

    python bench/shared_server.py [--hang accept|connect] [--slow 12] [--healthy 2]
                                  [--prometheus healthy|hung] [--timeout 10s]

Runs the daemon's own tick (`Daemon.tick`, the real python-nomad and Prometheus clients)
on a config of `--slow` nomad_job pools whose Nomad does not answer and `--healthy`
pools after them on the Nomad HTTP double (tests/doubles/nomad_api.py). The server that
does not answer is one this script holds: `accept` takes each connection and never
answers (a server wedged after accept); `connect` never takes any, its backlog full, so
each connect hangs as behind a firewall that drops. Metrics come from the Prometheus
query_range double (good data), or with `--prometheus hung` from such a server too. The
backends keep their defaults (timeout 10 s, 3 retries) unless `--timeout` says another.
Prints the tick's seconds and when each pool was decided, from the tick's start.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the doubles live with the tests

from autoscaler.daemon import Daemon  # noqa: E402
from autoscaler.notify import Message  # noqa: E402
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble  # noqa: E402
from tests.doubles.prometheus_server import PrometheusApiDouble  # noqa: E402
from tests.faults.test_metrics_faults import good  # noqa: E402


class Quiet:
    """A notifier that keeps nothing (Slack is not what is measured)."""

    def send(self, message: Message) -> bool:
        return True


class Silent:
    """A loopback server that never answers: `accept` takes connections and reads nothing
    back; `connect` takes none, its backlog filled, so a new connect hangs."""

    def __init__(self, how: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.kept: list[socket.socket] = []
        self.stop = threading.Event()
        if how == "accept":
            self.sock.listen(64)
            threading.Thread(target=self._accept, daemon=True).start()
        else:
            self.sock.listen(0)
            for _ in range(4):  # fill the accept queue: later SYNs are dropped
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(self.sock.getsockname())
                self.kept.append(filler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            conn, _ = self.sock.accept()
            self.kept.append(conn)


def config(tmp: Path, slow: str, healthy: str, prometheus: str, args: argparse.Namespace) -> Path:
    def pool(name: str, address: str) -> dict[str, object]:
        backend = {"kind": "nomad_job", "job": name, "group": "gpu", "address": address}
        if args.timeout:
            backend["timeout"] = args.timeout
        return {
            "name": name,
            "backend": backend,
            "demand": {"query": f'sum(rate(requests{{pool="{name}"}}[1m]))', "window": "1h"},
            "capacity": {"per_node_rps": 1.0},
            "max_nodes": 40,
        }

    pools = [pool(f"slow-{i}", slow) for i in range(args.slow)]
    pools += [pool(f"healthy-{i}", healthy) for i in range(args.healthy)]
    metrics: dict[str, object] = {"kind": "prometheus", "url": prometheus}
    if args.timeout:
        metrics["timeout"] = args.timeout
    path = tmp / "autoscaler.yaml"
    document = {
        "interval": "1m",
        "state_dir": str(tmp / "state"),
        "decision_log": str(tmp / "decisions.jsonl"),
        "overrides_file": str(tmp / "overrides.yaml"),
        "metrics": metrics,
        "pools": pools,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hang", choices=("accept", "connect"), default="accept")
    parser.add_argument("--slow", type=int, default=12)
    parser.add_argument("--healthy", type=int, default=2)
    parser.add_argument("--prometheus", choices=("healthy", "hung"), default="healthy")
    parser.add_argument("--ticks", type=int, default=1)
    parser.add_argument("--timeout", default=None, help="backends' and metrics' (default 10s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    silent = Silent(args.hang)
    with (
        NomadApiDouble() as nomad,
        PrometheusApiDouble([good(datetime.now(UTC) - timedelta(minutes=2), 10.0)]) as prom,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for i in range(args.healthy):
            nomad.add_job(f"healthy-{i}", {"gpu": 2})
        prometheus = silent.url if args.prometheus == "hung" else prom.url
        path = config(Path(tmp), silent.url, nomad.url, prometheus, args)
        decided: dict[str, float] = {}
        started = time.monotonic()
        daemon = Daemon(
            path,
            env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN},
            notifier=Quiet(),  # type: ignore[arg-type]
        )
        for ticker in daemon.runtime.tickers:  # stamped as each pool's tick ends
            inner = ticker.tick

            def stamped(*a, _inner=inner, _name=ticker.pool.name):  # type: ignore[no-untyped-def]
                result = _inner(*a)
                decided[_name] = time.monotonic() - started
                return result

            ticker.tick = stamped  # type: ignore[method-assign]
        print(f"hang={args.hang} prometheus={args.prometheus} timeout={args.timeout or '10s'}")
        for number in range(1, args.ticks + 1):
            decided.clear()
            started = time.monotonic()
            results = daemon.tick()
            took = time.monotonic() - started
            print(f"tick {number} of {len(results)} pools: {took:.1f} s (interval 60 s)")
            for result in results:
                at = decided.get(result.pool)
                when = "left behind" if at is None else f"{at:6.1f} s"
                errors = "; ".join(f"{k}: {v[:110]}" for k, v in result.errors.items())
                print(f"  {result.pool:10} decided at {when}  {errors or 'ok'}", flush=True)
        silent.stop.set()


if __name__ == "__main__":
    main()
