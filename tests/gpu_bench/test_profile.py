"""The profile file contract the daemon relies on."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpu_bench.profile import CapacityProfile, load_profile, save_profile


def make_profile(**changes: object) -> CapacityProfile:
    fields: dict[str, object] = {
        "model": "gpu_bench.models:small_cnn",
        "device": "cpu",
        "workers_per_gpu": 2,
        "batch_size": 4,
        "gpus_per_node": 4,
        "per_gpu_rps": 12.5,
        "per_node_rps": 50.0,
        "latency_target_s": 3.0,
        "latency_p50_s": 0.1,
        "latency_p95_s": 0.4,
        "latency_p99_s": 0.9,
        "gpu_utilization": None,
        "created": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "command": "gpu-bench run --model gpu_bench.models:small_cnn --out p.yaml",
    }
    fields.update(changes)
    return CapacityProfile.model_validate(fields)


def test_round_trip(tmp_path: Path) -> None:
    profile = make_profile(gpu_utilization=0.8)
    path = tmp_path / "profile.yaml"
    save_profile(path, profile)
    assert load_profile(path) == profile
    assert load_profile(path).per_node_rps == 50.0


def test_a_new_profile_is_readable_by_the_daemons_user(tmp_path: Path) -> None:
    """A profile was written 0600 (its chart and CSV 0644): copied to /etc/autoscaler as
    it was, the daemon (the autoscaler user) could not read it and would not start."""
    path = tmp_path / "profile.yaml"
    save_profile(path, make_profile())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)
    save_profile(path, make_profile())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    save_profile(path, make_profile())
    text = "\n".join(line for line in path.read_text().splitlines() if "per_node_rps" not in line)
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.yaml.*per_node_rps"):
        load_profile(path)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("per_node_rps: 0", "per_node_rps"),
        ("surprise: 1", "surprise"),
        ("batch_size: x", "batch_size"),
        ("gpus_per_node: yes", "gpus_per_node: expected a number, got the boolean"),
        ("per_gpu_rps: .inf", "per_gpu_rps"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    save_profile(path, make_profile())
    key = line.split(":")[0]
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith(f"{key}:")]
    path.write_text("\n".join([*lines, line]) + "\n")
    with pytest.raises(ValueError, match=rf"bad\.yaml.*{field}"):
        load_profile(path)


def test_inconsistent_node_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="per_gpu_rps"):
        make_profile(per_node_rps=49.0)


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"absent\.yaml"):
        load_profile(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"list\.yaml.*mapping"):
        load_profile(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [\n")
    with pytest.raises(ValueError, match=r"broken\.yaml.*YAML"):
        load_profile(tmp_path / "broken.yaml")


def test_profile_module_imports_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys, gpu_bench.profile; "
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
