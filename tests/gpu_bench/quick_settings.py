"""Sweep settings that measure a rate in a second or two: for tests of what a sweep does
with a model, not of the figures it finds."""

from __future__ import annotations

from gpu_bench.sweep_models import SweepSettings


def quick(model: str, **changes: object) -> SweepSettings:
    fields: dict = {
        "model": model,
        "workers": [1],
        "batches": [2],
        "latency_target_s": 0.5,
        "warmup_s": 0.2,
        "max_warmup_s": 0.5,
        "block_requests": 10,
        "max_requests": 100,
        "repeats": 1,
        "precision": 0.3,
    }
    fields.update(changes)
    return SweepSettings(**fields)
