"""The repository stands alone: nothing in it reads or points at a folder beside the clone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("README.md", ".ci", "autoscaler", "backends", "bench", "config", "docs", "gpu_bench")
CHECKED += ("predictors", "tests", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".service", ".example", ""}
# Spelled in pieces so that this file does not match itself.
OUTSIDE = ("../" + "shared", '"shared" / ' + '"traces"', "parents[2] / " + '"shared"')


def _text_files() -> list[Path]:
    files: list[Path] = []
    for name in CHECKED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            if file.is_file() and file.suffix in TEXT_SUFFIXES and "__pycache__" not in file.parts:
                files.append(file)
    return files


def test_no_file_points_outside_the_repository() -> None:
    offenders = [
        f"{file.relative_to(ROOT)}: {needle}"
        for file in _text_files()
        for needle in OUTSIDE
        if needle in file.read_text(encoding="utf-8", errors="replace")
    ]
    assert offenders == []


@pytest.mark.parametrize("name", ["nasa_jul95", "servegen_msmall", "alibaba_genai_lora"])
def test_the_benches_find_their_traces_in_the_repository(name: str) -> None:
    spec = importlib.util.spec_from_file_location("trace_files", ROOT / "bench" / "trace_files.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.trace_path(module.DEFAULT_TRACES, name)
    assert path.is_relative_to(ROOT / "bench" / "traces")
    assert path.name == f"{name}.csv.gz"
    assert name in (ROOT / "bench" / "traces" / "README.md").read_text(encoding="utf-8")
