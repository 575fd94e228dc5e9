"""A log-bucketed latency histogram: constant memory at any request rate, ~1% precision.

Bucket i covers [LOWEST * GROWTH**i, LOWEST * GROWTH**(i+1)); percentiles answer with the
bucket's upper edge, so they never understate a latency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

LOWEST_S = 1e-5
GROWTH = 1.01
BUCKETS = int(math.log(1e4 / LOWEST_S, GROWTH)) + 2  # 10 µs .. ~3 h


def _bucket(seconds: float) -> int:
    if seconds <= LOWEST_S:
        return 0
    return min(BUCKETS - 1, int(math.log(seconds / LOWEST_S, GROWTH)) + 1)


def _upper_edge(index: int) -> float:
    return LOWEST_S * GROWTH**index


@dataclass
class LatencyHistogram:
    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    max_s: float = 0.0

    def record(self, seconds: float) -> None:
        index = _bucket(seconds)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1
        self.max_s = max(self.max_s, seconds)

    def record_all(self, values: Iterable[float]) -> None:
        for value in values:
            self.record(value)

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        merged = LatencyHistogram(dict(self.counts), self.total, max(self.max_s, other.max_s))
        for index, count in other.counts.items():
            merged.counts[index] = merged.counts.get(index, 0) + count
        merged.total += other.total
        return merged

    def percentile(self, share: float) -> float:
        """The latency that `share` (0..1) of the recorded requests did not exceed."""
        if self.total == 0:
            return math.nan
        wanted = max(1, math.ceil(share * self.total))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= wanted:
                return min(_upper_edge(index), self.max_s)
        return self.max_s

    def to_json(self) -> dict[str, object]:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "max_s": self.max_s}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LatencyHistogram:
        raw = data.get("counts", {})
        assert isinstance(raw, dict)
        counts = {int(k): int(v) for k, v in raw.items()}
        max_s = data.get("max_s", 0.0)
        assert isinstance(max_s, int | float)
        return cls(counts, sum(counts.values()), float(max_s))
