"""A config directory: one file per pool beside the main file (nomad-autoscaler's policy
directory); each file's errors name that file and line; `validate` accepts both forms."""

from __future__ import annotations

import textwrap
from pathlib import Path

from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.loader import load_config
from autoscaler.config.problems import ConfigError

MAIN = """\
state_dir: state
metrics: {kind: replay, trace: trace.csv}
pool_dir: pools.d
pools:
  - name: inline
    backend: {kind: simulated}
    demand: {query: up}
    capacity: {per_node_rps: 1}
    max_nodes: 2
"""
OCR = """\
backend: {kind: simulated}
demand: {query: 'sum(rate(ocr_requests_total[1m]))'}
capacity: {profile: profiles/a10g.yaml}
max_nodes: ${OCR_MAX:-40}
"""
FACE = """\
name: face-match
backend: {kind: simulated}
demand: {query: up}
capacity: {per_node_rps: 3}
max_nodes: 8
"""


def layout(tmp_path: Path, pools: dict[str, str], main: str = MAIN) -> Path:
    root = tmp_path / "etc"
    (root / "pools.d").mkdir(parents=True)
    (root / "autoscaler.yaml").write_text(textwrap.dedent(main))
    (root / "trace.csv").write_text("timestamp,requests\n2026-01-05T00:00:00Z,60\n")
    for name, text in pools.items():
        (root / "pools.d" / name).write_text(textwrap.dedent(text))
    return root


def test_pools_from_the_folder_join_the_main_files(tmp_path: Path) -> None:
    root = layout(
        tmp_path, {"ocr.yaml": OCR, "face.yml": FACE, ".hidden.yaml": "x: [", "n.txt": ""}
    )
    config = load_config(root / "autoscaler.yaml", env={})
    assert [p.name for p in config.pools] == ["inline", "face-match", "ocr"]
    ocr = config.pool("ocr")
    assert ocr.max_nodes == 40
    assert ocr.capacity.profile == root / "pools.d" / "profiles" / "a10g.yaml"
    assert config.pool_dir == root / "pools.d"
    # --config may name the folder itself
    assert load_config(root, env={}) == config


def test_an_error_in_a_pool_file_names_that_file_and_line(tmp_path: Path) -> None:
    broken = FACE.replace("max_nodes: 8", "max_nodes: -1")
    root = layout(tmp_path, {"face.yaml": broken, "ocr.yaml": OCR.replace("demand", "demnd")})
    try:
        load_config(root / "autoscaler.yaml", env={})
    except ConfigError as exc:
        text = str(exc)
    else:
        raise AssertionError("a broken pool file must not load")
    assert f"{root / 'pools.d' / 'face.yaml'}:5: max_nodes:" in text
    assert f"{root / 'pools.d' / 'ocr.yaml'}:2: demnd: unknown key" in text


def test_a_pool_name_used_twice_across_files_is_an_error(tmp_path: Path) -> None:
    root = layout(tmp_path, {"a.yaml": FACE.replace("face-match", "inline")})
    try:
        load_config(root, env={})
    except ConfigError as exc:
        assert f"{root / 'pools.d' / 'a.yaml'}:1: name: pool name 'inline' is already used" in str(
            exc
        )
    else:
        raise AssertionError("a repeated pool name must not load")


def test_an_empty_pool_dir_is_an_error_on_the_main_files_line(tmp_path: Path) -> None:
    root = layout(tmp_path, {})
    try:
        load_config(root, env={})
    except ConfigError as exc:
        assert f"{root / 'autoscaler.yaml'}:3: pool_dir: no pool files" in str(exc)
    else:
        raise AssertionError("an empty pool_dir must not load")


def test_validate_accepts_the_folder_and_the_single_file(tmp_path: Path) -> None:
    root = layout(tmp_path, {"face.yaml": FACE})
    for given in (root, root / "autoscaler.yaml"):
        result = CliRunner().invoke(app, ["validate", str(given)])
        assert result.exit_code == 0, result.output
        assert "2 pools: inline, face-match" in result.output


def test_validate_names_the_pool_file_of_a_missing_profile(tmp_path: Path) -> None:
    root = layout(tmp_path, {"ocr.yaml": OCR, "face.yaml": FACE})
    result = CliRunner().invoke(app, ["validate", str(root)])
    assert result.exit_code == 2
    assert f"{root / 'pools.d' / 'ocr.yaml'}:3: capacity.profile: capacity profile" in result.output


def test_what_stops_run_in_a_pool_file_is_located_in_that_file(tmp_path: Path) -> None:
    """A pool file's predictor time zone is checked where run checks it (building the
    predictor), and the error still names the pool file and its line."""
    face = FACE + "predictor:\n  params:\n    timezone: Mars/Olympus_Mons\n"
    root = layout(tmp_path, {"face.yaml": face})
    for args in (["validate", str(root)], ["run", "--config", str(root), "--once", "--dry-run"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        where = f"{root / 'pools.d' / 'face.yaml'}:8: predictor.params.timezone"
        assert where in " ".join(result.output.split()), result.output


def test_a_pool_file_that_cannot_be_read_is_an_error_not_a_pool_left_out(
    tmp_path: Path,
) -> None:
    """A pool file that is a link to nowhere (its target renamed, as config management
    links files into pools.d) or a folder was skipped: validate said ok with one pool
    fewer, and run (or a reload) dropped the pool without a word, its fleet no longer
    scaled. Each is now an error naming the file."""
    root = layout(tmp_path, {"face.yaml": FACE})
    (root / "pools.d" / "ocr.yaml").symlink_to(root / "available" / "ocr.yaml")
    (root / "pools.d" / "asr.yaml").mkdir()
    result = CliRunner().invoke(app, ["validate", str(root)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert f"{root / 'pools.d' / 'ocr.yaml'}: file not found" in output
    assert f"{root / 'pools.d' / 'asr.yaml'}: cannot read file: not a regular file" in output
