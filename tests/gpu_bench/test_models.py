"""Models written outside the project load and run: a factory beside the command, a file by
its path, several inputs (positional or keyword), an exported program (.pt2), TorchScript;
and a model that cannot be run says why, naming it."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gpu_bench.models import (
    ModelLoadError,
    ModelSpec,
    batch_of,
    batches_up_to,
    forward,
    load_model,
    model_file,
    model_sha256,
    parse_model_spec,
)
from gpu_bench.profile import load_profile
from gpu_bench.sweep import run_config
from gpu_bench.workers import LOAD_FAILED
from tests.gpu_bench.quick_settings import quick

TEST_MODELS = "tests.gpu_bench.models_for_tests"

USER_MODEL = """
import torch
from torch import nn


def build():
    return nn.Linear(8, 2), torch.randn(1, 8)
"""


@pytest.fixture(autouse=True)
def no_worker_left_behind():
    yield
    assert multiprocessing.active_children() == []


def test_model_specs() -> None:
    assert parse_model_spec("cnn").target == "gpu_bench.models:small_cnn"
    with pytest.raises(ModelLoadError, match="input-shape"):
        parse_model_spec("model.pt")
    with pytest.raises(ModelLoadError, match="module:function"):
        parse_model_spec("just_a_name")
    assert parse_model_spec("model.pt2").is_exported
    module, example = load_model(ModelSpec("gpu_bench.models:small_transformer"))
    assert example.shape[0] == 1
    assert module(example).shape == example.shape


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_file(tmp_path: Path) -> None:
    module, example = load_model(ModelSpec("gpu_bench.models:small_cnn"))
    path = tmp_path / "cnn.pt"
    torch.jit.trace(module.eval(), example).save(str(path))
    loaded, shaped = load_model(parse_model_spec(str(path), [1, 3, 64, 64]))
    assert loaded(shaped).shape == (1, 100)


def test_the_batches_of_each_size_share_one_copy_of_the_largest() -> None:
    """A worker keeps a batch of every size dynamic batching can form: as views of the
    largest, memory grows with the largest batch, not with its square."""
    example = {"ids": torch.arange(3).reshape(1, 3), "mode": "fast"}
    batches = batches_up_to(example, 5)
    assert sorted(batches) == [1, 2, 3, 4, 5]
    assert [batch["ids"].shape[0] for batch in batches.values()] == [1, 2, 3, 4, 5]
    assert all(batch["mode"] == "fast" for batch in batches.values())
    assert torch.equal(batches[3]["ids"], batch_of(example, 3)["ids"])
    storage = {batch["ids"].untyped_storage().data_ptr() for batch in batches.values()}
    assert len(storage) == 1


@pytest.mark.parametrize("factory", ["two_input_model", "keyword_input_model"])
def test_a_model_of_several_inputs_is_batched_input_by_input(factory: str) -> None:
    module, example = load_model(ModelSpec(f"{TEST_MODELS}:{factory}"))
    batch = batch_of(example, 4)
    tensors = batch.values() if isinstance(batch, dict) else batch
    assert [t.shape[0] for t in tensors] == [4, 4]
    assert forward(module, batch).shape[0] == 4
    if isinstance(batch, dict):  # each input keeps its own dtype (token ids stay integers)
        assert batch["input_ids"].dtype == torch.int64

    result = run_config(quick(f"{TEST_MODELS}:{factory}", batches=[4]), 1, 4)
    assert result.status == "ok", result.reason
    assert result.rate_rps is not None and result.rate_rps > 0


def test_a_factory_beside_the_command_is_found_without_pythonpath(tmp_path: Path) -> None:
    """The console script's own folder, not the current directory, is first on its path:
    run as a user runs it, from the folder holding their model file."""
    (tmp_path / "user_model.py").write_text(USER_MODEL)
    command = Path(sys.executable).parent / "gpu-bench"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    run = subprocess.run(
        [str(command), "run", "--model", "user_model:build", "--out", "profile.yaml",
         "--workers", "1", "--batch", "4", "--latency-target", "0.5s", "--warmup", "0.2s",
         "--max-warmup", "0.5s", "--block-requests", "10", "--max-requests", "100",
         "--precision", "0.3", "--device", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert load_profile(tmp_path / "profile.yaml").model == "user_model:build"


def test_a_factory_in_a_file_is_loaded_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "my-model.py"  # not a module name: only a path reaches it
    path.parent.mkdir()
    path.write_text(USER_MODEL)
    module, example = load_model(parse_model_spec(f"{path}:build"))
    assert forward(module, batch_of(example, 3)).shape == (3, 2)
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(parse_model_spec(f"{tmp_path / 'missing.py'}:build"))


def test_a_model_file_imports_the_modules_beside_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / "my models"
    folder.mkdir()
    (folder / "sibling_layers.py").write_text(USER_MODEL)
    (folder / "entry.py").write_text("from sibling_layers import build\n")
    module, example = load_model(parse_model_spec(f"{folder / 'entry.py'}:build"))
    assert forward(module, batch_of(example, 2)).shape == (2, 2)


def test_a_module_name_taken_by_the_standard_library_says_how_to_name_the_file(
    tmp_path: Path, monkeypatch
) -> None:
    """`--model json:build` beside the user's json.py imports the standard library's json."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the folder it adds: no later worker's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "json.py").write_text(USER_MODEL)
    with pytest.raises(
        ModelLoadError,
        match=r"no function 'build' \(imported from .*json.*"
        r"for ./json.py give --model json.py:FUNCTION\)",
    ):
        load_model(parse_model_spec("json:build"))


def test_an_exported_program_brings_its_own_example(tmp_path: Path) -> None:
    module, example = load_model(ModelSpec(f"{TEST_MODELS}:keyword_input_model"))
    batch = torch.export.Dim("batch", min=1, max=64)
    dynamic = {name: {0: batch} for name in example}
    exported = torch.export.export(module, (), batch_of(example, 2), dynamic_shapes=dynamic)
    path = tmp_path / "tagger.pt2"
    torch.export.save(exported, str(path))

    loaded, first = load_model(parse_model_spec(str(path)))
    assert {name: t.shape[0] for name, t in first.items()} == {"input_ids": 1, "attention_mask": 1}
    assert forward(loaded, batch_of(first, 5)).shape == (5, 8)
    result = run_config(quick(str(path), batches=[4]), 1, 4)
    assert result.status == "ok", result.reason


def test_an_exported_program_of_a_fixed_batch_is_infeasible_above_it(tmp_path: Path) -> None:
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(nn.Linear(4, 2), (torch.zeros(1, 4),)), str(path))
    assert run_config(quick(str(path), batches=[1]), 1, 1).feasible
    result = run_config(quick(str(path), batches=[4]), 1, 4)
    assert result.status == "infeasible"
    assert result.reason.startswith(LOAD_FAILED)
    assert "fixed batch size of 1, so batches of 1 to 4 cannot run" in result.reason


def test_an_exported_program_bounded_under_the_largest_batch_is_refused_as_it_loads(
    tmp_path: Path,
) -> None:
    """Dim(max=8) under --batch 16: refused naming the bound, not a guard failure on the
    first batch of 16 (a model error that read as the model's own)."""
    path = tmp_path / "bounded.pt2"
    batch = torch.export.Dim("batch", max=8)
    exported = torch.export.export(
        nn.Linear(4, 2), (torch.zeros(2, 4),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(exported, str(path))
    loaded, example = load_model(parse_model_spec(str(path)), largest_batch=8)
    assert forward(loaded, batch_of(example, 8)).shape == (8, 2)
    with pytest.raises(ModelLoadError, match=r"bounded.pt2: exported for batch sizes up to 8"):
        load_model(parse_model_spec(str(path)), largest_batch=16)


def test_an_exported_program_random_floats_cannot_drive_is_refused_as_it_loads(
    tmp_path: Path,
) -> None:
    """--input-shape on a program exported with token ids: its random floats took the place
    of the saved example and failed on the first batch as the model's own error (exit 3,
    torch's message alone); refused as it loads, saying what it was fed and what to do."""
    path = tmp_path / "ids.pt2"
    batch = torch.export.Dim("batch")
    ids = torch.randint(0, 100, (2, 6))
    exported = torch.export.export(nn.Embedding(100, 8), (ids,), dynamic_shapes=({0: batch},))
    torch.export.save(exported, str(path))
    with pytest.raises(
        ModelLoadError, match=r"ids.pt2: fails on a random float32 tensor of"
    ) as raised:
        load_model(parse_model_spec(str(path), [1, 6]), largest_batch=2)
    assert "leave --input-shape out" in str(raised.value)
    loaded, example = load_model(parse_model_spec(str(path)), largest_batch=2)
    assert forward(loaded, batch_of(example, 2)).shape == (2, 6, 8)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("saved", ["module", "state_dict"])
def test_a_torch_save_file_given_as_torchscript_says_what_it_is(tmp_path: Path, saved: str) -> None:
    """torch.jit.load called it a corrupt checkpoint; it is a torch.save file, and a
    module:function that loads it is the way in."""
    path = tmp_path / "model.pt"
    module = nn.Linear(4, 2)
    torch.save(module if saved == "module" else module.state_dict(), str(path))
    with pytest.raises(ModelLoadError, match=r"model.pt: .*saved by torch.save") as raised:
        load_model(parse_model_spec(str(path), [1, 4]))
    assert "module:function" in str(raised.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_torchscript_model_random_floats_cannot_drive_is_refused_as_it_loads(
    tmp_path: Path,
) -> None:
    """Token ids: the random floats of --input-shape failed in the embedding on the first
    batch, as the model's own error; refused as it loads, saying what it was fed and the
    interpreter's own error, not the first line of its traceback ('The following operation
    failed in the TorchScript interpreter.', which said nothing of what failed)."""
    path = tmp_path / "ids.pt"
    torch.jit.trace(nn.Embedding(100, 8), torch.randint(0, 100, (1, 6))).save(str(path))
    with pytest.raises(
        ModelLoadError, match=r"ids.pt: fails on a random float32 tensor of"
    ) as raised:
        load_model(parse_model_spec(str(path), [1, 6]))
    assert "Expected tensor for argument #1 'indices'" in str(raised.value)


@pytest.mark.parametrize(
    ("target", "said"),
    [
        (f"{TEST_MODELS}:batch_of_two_example", "leading batch dimension of 1"),
        (f"{TEST_MODELS}:no_tensor_example", "tuple, list or dict holding tensors"),
        (f"{TEST_MODELS}:not_a_model", "must return"),
        (f"{TEST_MODELS}:no_such_factory", "has no function 'no_such_factory'"),
        ("no_such_module_here:build", "cannot import: ModuleNotFoundError"),
        (f"{TEST_MODELS}:missing_weights_model", "raised FileNotFoundError: weights.bin"),
        (f"{TEST_MODELS}:model_of_required_path", "raised TypeError: .* missing 1 required"),
        (f"{TEST_MODELS}:exiting_factory", "raised SystemExit: usage: serve.py"),
        (f"{TEST_MODELS}:meta_model", "parameters are on the meta device"),
    ],
)
def test_a_model_that_cannot_run_says_why(target: str, said: str) -> None:
    with pytest.raises(ModelLoadError, match=said) as raised:
        load_model(parse_model_spec(target))
    assert target.partition(":")[0] in str(raised.value)


def test_a_module_failing_at_import_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('the weights are not here')\n")
    with pytest.raises(ModelLoadError, match="RuntimeError: the weights are not here"):
        load_model(parse_model_spec(f"{path}:build"))


def test_the_digest_is_of_the_file_the_model_is_built_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file by its path, a module beside the command (found, not imported: its import
    would raise here), a package's module, an exported program; none for a module that
    is nowhere to be found. An edit changes the digest."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "served.py").write_text("raise RuntimeError('imported')\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "net.py").write_text("def build(): ...\n")
    (tmp_path / "model.pt2").write_bytes(b"\x00program")
    found = {
        f"{tmp_path / 'served.py'}:build": tmp_path / "served.py",
        "served:build": tmp_path / "served.py",
        "pkg.net:build": tmp_path / "pkg" / "net.py",
        "pkg:build": tmp_path / "pkg" / "__init__.py",
        "model.pt2": Path("model.pt2"),
    }
    for target, path in found.items():
        spec = parse_model_spec(target)
        assert model_file(spec) == path
        assert model_sha256(spec) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model_file(parse_model_spec("nowhere_to_be_found:build")) is None
    assert model_sha256(parse_model_spec("missing.pt2")) is None  # named, but not there
    before = model_sha256(parse_model_spec("pkg.net:build"))
    (tmp_path / "pkg" / "net.py").write_text("def build(): return None\n")
    assert model_sha256(parse_model_spec("pkg.net:build")) != before
