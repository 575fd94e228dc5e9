"""Benchmark (not a test): one sweep of 1-2 workers x batch 1-4 on a model of known speed.

    python bench/gpu_bench_edge.py [--out-dir DIR]

The model sleeps 20.5 ms per batch; the target is p95 <= 200 ms. Prints each
configuration's rate beside the queueing-theory edge (a discrete-event simulation of the
harness's batching rule, tests/gpu_bench/queueing.py), their ratio, and the sweep's
wall time beside the 5-minute budget, with the load average it ran under.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the simulation and the model live with the tests

from tests.gpu_bench.models_for_tests import SERVICE_S  # noqa: E402
from tests.gpu_bench.queueing import Batching, edge_rate  # noqa: E402

BUDGET_S = 300.0
TARGET_S = 0.200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="edge-")))
    out = parser.parse_args().out_dir / "profile.yaml"
    command = [
        sys.executable, "-m", "gpu_bench.cli", "run",
        "--model", "tests.gpu_bench.models_for_tests:fixed_time_model",
        "--workers", "1,2", "--batch", "1,4", "--latency-target", "200ms",
        "--device", "cpu", "--threads-per-worker", "1", "--gpus-per-node", "1", "--out", str(out),
    ]  # fmt: skip
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        print(done.stderr[-3000:])
        return 1
    sweep = json.loads(out.with_name(out.name + ".checkpoint.json").read_text())
    print(f"{'workers':>7} {'batch':>5} {'req/s':>8} {'theory':>8} {'ratio':>6} {'probes':>6}")
    worst = 0.0
    for result in sweep["results"]:
        rule = Batching(result["workers"], result["batch"], 0.010, SERVICE_S)
        theory = edge_rate(rule, TARGET_S)
        rate = result["rate_rps"] or 0.0
        worst = max(worst, abs(rate / theory - 1))
        print(f"{result['workers']:>7} {result['batch']:>5} {rate:>8.1f} {theory:>8.1f} "
              f"{rate / theory:>6.3f} {len(result['probes']):>6}")  # fmt: skip
    print(f"sweep: {elapsed:.0f} s for {len(sweep['results'])} configurations "
          f"({elapsed / BUDGET_S:.2f} of the {BUDGET_S:.0f} s budget); "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"worst ratio off by {worst:.1%}")  # fmt: skip
    return 0 if worst <= 0.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
