"""A capacity profile written by gpu_bench is accepted as a pool's per-node capacity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.config import capacity as capacity_module
from autoscaler.config.capacity import boot_time_of, per_node_rps_of
from autoscaler.config.loader import load_config
from autoscaler.config.problems import ConfigError
from autoscaler.config.validate import validate_files
from gpu_bench.profile import CapacityProfile, parse_profile, save_profile


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


def startup_profile(tmp_path: Path, startup_p90_s: float | None) -> None:
    profile = CapacityProfile(
        model="cnn", device="cpu", workers_per_gpu=1, batch_size=1, gpus_per_node=1,
        per_gpu_rps=40.0, per_node_rps=40.0, latency_target_s=0.2, latency_p50_s=0.05,
        latency_p95_s=0.15, latency_p99_s=0.18, startup_p50_s=60.0, startup_p90_s=startup_p90_s,
        created=datetime(2026, 12, 4, tzinfo=UTC), command="gpu-bench run --model cnn",
    )  # fmt: skip
    save_profile(tmp_path / "p.yaml", profile)


def startup_config(tmp_path: Path, horizon: str = "15m", **capacity: object) -> Path:
    path = write_pool_config(tmp_path, "p.yaml")
    data = yaml.safe_load(path.read_text())
    data["pools"][0].update(boot_time="5m", horizon=horizon)
    data["pools"][0]["capacity"].update(capacity)
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_pool_can_take_the_profiles_start_up_as_part_of_its_boot_time(tmp_path: Path) -> None:
    startup_profile(tmp_path, 95.0)
    asked = load_config(startup_config(tmp_path, startup_in_boot_time=True)).pools[0]
    assert boot_time_of(asked) == timedelta(minutes=5, seconds=95)
    plain = load_config(startup_config(tmp_path)).pools[0]
    assert boot_time_of(plain) == timedelta(minutes=5)
    _, problems = validate_files(startup_config(tmp_path, startup_in_boot_time=True))
    assert [p for p in problems if not p.field.startswith("metrics")] == []  # no trace here


def test_start_up_past_the_horizon_or_missing_is_a_located_error(tmp_path: Path) -> None:
    startup_profile(tmp_path, 95.0)
    _, problems = validate_files(startup_config(tmp_path, "6m", startup_in_boot_time=True))
    said = [p.message for p in problems if p.field.endswith("horizon")]
    assert said == [
        "horizon (6m) must be at least boot_time plus the profile's start-up time (395s)"
    ]
    startup_profile(tmp_path, None)
    _, problems = validate_files(startup_config(tmp_path, startup_in_boot_time=True))
    assert any("startup_p90_s" in f"{p.field} {p.message}" for p in problems), problems
    with pytest.raises(ConfigError, match="needs a profile"):
        path = startup_config(tmp_path, startup_in_boot_time=True)
        data = yaml.safe_load(path.read_text())
        data["pools"][0]["capacity"] = {"per_node_rps": 3.0, "startup_in_boot_time": True}
        path.write_text(yaml.safe_dump(data))
        load_config(path)


@pytest.mark.parametrize("startup_p90_s", [1.0e20, 1.0e12])
def test_a_start_up_no_duration_holds_is_a_located_error(
    tmp_path: Path, startup_p90_s: float
) -> None:
    """1e20 s overflowed a timedelta: a traceback from validate and run, not an error."""
    startup_profile(tmp_path, startup_p90_s)
    _, problems = validate_files(startup_config(tmp_path, startup_in_boot_time=True))
    (problem,) = [p for p in problems if p.field == "startup_p90_s"]
    assert problem.file == tmp_path / "p.yaml" and problem.line is not None
    assert "100 years at most" in problem.message


def test_a_node_rate_that_contradicts_the_profiles_own_figures_is_a_located_error(
    tmp_path: Path,
) -> None:
    """A profile cut short in its per_node_rps (a copy interrupted: `per_node_rps: 8` of
    80.0) or with gpus_per_node edited alone sized the pool on a wrong rate, silently."""
    test_a_gpu_bench_profile_sizes_the_pool(tmp_path)
    path = tmp_path / "profiles" / "a10g.yaml"
    text = path.read_text()
    cut = text[: text.index("per_node_rps: 80.0") + len("per_node_rps: 8")]
    for broken in (cut, text.replace("gpus_per_node: 2", "gpus_per_node: 4")):
        path.write_text(broken)
        config = load_config(tmp_path / "config.yaml")
        with pytest.raises(ConfigError, match="per_node_rps") as caught:
            per_node_rps_of(config.pools[0].capacity)
        assert "a10g.yaml" in str(caught.value) and "gpus_per_node" in str(caught.value)


@pytest.mark.parametrize("written", ["'2'", "true", "0", ".nan"])
def test_a_gpus_per_node_edited_to_no_number_is_a_located_error(
    tmp_path: Path, written: str
) -> None:
    """`gpus_per_node: '2'` (or true, 0, NaN) skipped the check above, so the profile's
    per_node_rps was taken as written whatever the rest said."""
    test_a_gpu_bench_profile_sizes_the_pool(tmp_path)
    path = tmp_path / "profiles" / "a10g.yaml"
    path.write_text(path.read_text().replace("gpus_per_node: 2", f"gpus_per_node: {written}"))
    config = load_config(tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match="gpus_per_node") as caught:
        per_node_rps_of(config.pools[0].capacity)
    assert "a10g.yaml:" in str(caught.value) and "a positive number" in str(caught.value)


def test_a_profile_replaced_while_it_is_read_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gpu-bench saving a new profile (atomically) just after the daemon read the old one:
    both versions are whole and consistent, so the rate read is the old one, not a
    ConfigError from checking the old rate against the new file's per_gpu_rps."""
    test_a_gpu_bench_profile_sizes_the_pool(tmp_path)
    path = tmp_path / "profiles" / "a10g.yaml"
    newer = path.read_text().replace("per_gpu_rps: 40.0", "per_gpu_rps: 50.0")
    newer = newer.replace("per_node_rps: 80.0", "per_node_rps: 100.0")
    real_read = capacity_module.read_yaml

    def read_then_replaced(*args: Any, **kwargs: Any) -> Any:
        document = real_read(*args, **kwargs)
        save_profile(path, parse_profile(yaml.safe_load(newer)))  # the next read: the new one
        return document

    config = load_config(tmp_path / "config.yaml")
    monkeypatch.setattr(capacity_module, "read_yaml", read_then_replaced)
    assert per_node_rps_of(config.pools[0].capacity) == 80.0
