"""A capacity profile written by gpu_bench is accepted as a pool's per-node capacity."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from autoscaler.config.capacity import per_node_rps_of
from autoscaler.config.loader import ConfigError, load_config
from autoscaler.config.validate import validate_files
from gpu_bench.profile import CapacityProfile, save_profile


def write_pool_config(tmp_path: Path, profile: str) -> Path:
    config = {
        "metrics": {"kind": "replay", "trace": "trace.csv"},
        "pools": [
            {
                "name": "ocr",
                "backend": {"kind": "simulated"},
                "demand": {"query": "q"},
                "capacity": {"profile": profile},
                "max_nodes": 10,
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_gpu_bench_profile_sizes_the_pool(tmp_path: Path) -> None:
    profile = CapacityProfile(
        model="cnn",
        device="NVIDIA H100",
        workers_per_gpu=4,
        batch_size=8,
        gpus_per_node=2,
        per_gpu_rps=40.0,
        per_node_rps=80.0,
        latency_target_s=3.0,
        latency_p50_s=0.4,
        latency_p95_s=1.9,
        latency_p99_s=2.6,
        created=datetime(2026, 11, 23, tzinfo=UTC),
        command="gpu-bench run --model cnn --out a10g.yaml",
    )
    save_profile(tmp_path / "profiles" / "a10g.yaml", profile)
    config = load_config(write_pool_config(tmp_path, "profiles/a10g.yaml"))
    assert per_node_rps_of(config.pools[0].capacity) == 80.0


def test_a_broken_profile_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: cnn\nper_node_rps: -3\n")
    config = load_config(write_pool_config(tmp_path, "bad.yaml"))
    with pytest.raises(ConfigError) as caught:
        per_node_rps_of(config.pools[0].capacity)
    assert "bad.yaml:2: per_node_rps" in str(caught.value)
    _, problems = validate_files(tmp_path / "config.yaml")
    assert any("bad.yaml" in str(p) and "per_node_rps" in str(p) for p in problems)
