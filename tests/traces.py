"""The repository's own traces (bench/traces/), which tests read instead of any outside folder."""

from __future__ import annotations

from pathlib import Path

TRACES = Path(__file__).resolve().parents[1] / "bench" / "traces"
NASA = TRACES / "nasa_jul95.csv.gz"
