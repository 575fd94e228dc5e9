"""Benchmark (not a test): sweep both reference models here and print their profiles.

    python bench/gpu_bench_reference.py [--out-dir DIR] [--quick] [extra gpu-bench options]

Runs `gpu-bench run` once per reference model (small CNN, small transformer encoder) on
this machine's device (a GPU when one is visible, else the CPU), then prints each
capacity profile and the sweep table. Checkpoints make an interrupted run resume.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_bench.profile import dump_profile, load_profile

REFERENCE_MODELS = ("cnn", "transformer")
QUICK = ["--warmup", "1s", "--window", "1s", "--min-window-requests", "50", "--repeats", "2"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(tempfile.gettempdir()) / "gpu-bench-ref"
    parser.add_argument("--out-dir", type=Path, default=default_dir)
    parser.add_argument("--quick", action="store_true", help="shorter warm-up and windows")
    parser.add_argument("--models", default=",".join(REFERENCE_MODELS))
    known, extra = parser.parse_known_args()
    known.out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for model in known.models.split(","):
        out = known.out_dir / f"{model}.yaml"
        command = [
            sys.executable, "-m", "gpu_bench.cli", "run", "--model", model, "--out", str(out),
            *(QUICK if known.quick else []), *extra,
        ]  # fmt: skip
        print(f"$ {' '.join(command[2:])}", flush=True)
        started = time.monotonic()
        done = subprocess.run(command, check=False)
        print(f"# {model}: exit {done.returncode} after {time.monotonic() - started:.0f}s")
        if done.returncode != 0:
            failed += 1
            continue
        print(dump_profile(load_profile(out)), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
