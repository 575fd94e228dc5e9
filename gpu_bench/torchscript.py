"""TorchScript files as models: fed one random float tensor of --input-shape, which is
tried once as the file loads, so a model it cannot drive is refused with what to do (as is
an exported program given --input-shape)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from gpu_bench.models import ModelLoadError, ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

PICKLE_START = b"\x80"  # a pickle of protocol 2 or later: the old torch.save format


def load_torchscript(spec: ModelSpec, device: str) -> tuple[nn.Module, torch.Tensor]:
    """The scripted module on `device` and a random float example of --input-shape (on the
    CPU); ModelLoadError where the file is no TorchScript or the example cannot run it."""
    import torch

    path = Path(spec.target)
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as error:
        raise ModelLoadError(f"{path}: cannot load TorchScript: {_why(path, error)}") from error
    assert spec.input_shape is not None
    example = torch.randn(*spec.input_shape)
    tried(module.eval(), example, spec, device, TORCHSCRIPT_ADVICE)
    return module, example


def _why(path: Path, error: Exception) -> str:
    """What a file that torch.jit.load refuses is. One made by torch.save (a whole module
    or a state dict, often named .pt) was refused as a corrupt checkpoint, which it is not."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            saved = any(name.endswith("/data.pkl") for name in names) and not any(
                name.endswith("/constants.pkl") for name in names
            )
        else:
            with path.open("rb") as file:
                saved = file.read(1) == PICKLE_START
    except OSError:
        return str(error)
    if not saved:
        return str(error)
    return (
        "it was saved by torch.save (a pickled module or a state dict), not as TorchScript: "
        "save the module with torch.jit.script(model).save(path), or give a module:function "
        "that builds the model, loads this file's weights and returns (module, example)"
    )


TORCHSCRIPT_ADVICE = (
    "--input-shape feeds one float tensor: for integer inputs (token ids) or several inputs "
    "give a module:function returning (torch.jit.load(path), example)"
)
EXPORTED_ADVICE = "leave --input-shape out to use the example it was exported with"


def tried(
    module: nn.Module, example: torch.Tensor, spec: ModelSpec, device: str, advice: str
) -> None:
    """One call on the random example of --input-shape: a model of integer inputs (token
    ids) or of several failed on its first batch with torch's message alone, not saying it
    was fed random floats; refused saying so, and `advice`."""
    import torch

    try:
        with torch.inference_mode():
            module(example.to(device))
    except torch.OutOfMemoryError:
        raise
    except Exception as error:
        lines = f"{type(error).__name__}: {error}".strip().splitlines()
        # the interpreter's own error is its last line, under TorchScript's traceback
        said = lines[-1] if "Traceback of TorchScript" in str(error) else lines[0]
        shape = ",".join(str(size) for size in example.shape)
        raise ModelLoadError(
            f"{spec.target}: fails on a random float32 tensor of --input-shape {shape} ({said}); "
            + advice
        ) from error
