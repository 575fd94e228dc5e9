"""Models to benchmark: a user's `module:function` or TorchScript file, and two references.

A model factory returns `(module, example)` where `example` is one request's input with a
leading batch dimension of 1; the worker concatenates copies of it to form batches.
The reference models are small, random-weight, plain-torch networks: nothing is
downloaded, and they are meant for trying the harness, not for quality.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

REFERENCE_MODELS = {
    "cnn": "gpu_bench.models:small_cnn",
    "transformer": "gpu_bench.models:small_transformer",
}


class ModelLoadError(Exception):
    """The model spec cannot be turned into a runnable module and example input."""


@dataclass(frozen=True)
class ModelSpec:
    """Picklable description of a model, so spawned workers can load it themselves."""

    target: str
    input_shape: tuple[int, ...] | None = None

    @property
    def is_torchscript(self) -> bool:
        return self.target.endswith((".pt", ".pth", ".ts", ".torchscript"))


def parse_model_spec(text: str, input_shape: Sequence[int] | None = None) -> ModelSpec:
    """Accept a reference name (cnn, transformer), `module:function`, or a TorchScript path."""
    target = REFERENCE_MODELS.get(text, text)
    spec = ModelSpec(target, tuple(input_shape) if input_shape else None)
    if spec.is_torchscript:
        if spec.input_shape is None:
            raise ModelLoadError(f"{text}: a TorchScript file needs --input-shape (e.g. 1,3,64,64)")
    elif ":" not in target:
        raise ModelLoadError(
            f"{text}: expected 'module:function', a TorchScript file (.pt/.ts), "
            f"or one of {sorted(REFERENCE_MODELS)}"
        )
    return spec


def load_model(spec: ModelSpec) -> tuple[nn.Module, torch.Tensor]:
    """Build the module and its one-request example input; ModelLoadError on any failure."""
    import torch

    if spec.is_torchscript:
        path = Path(spec.target)
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as error:
            raise ModelLoadError(f"{path}: cannot load TorchScript: {error}") from error
        assert spec.input_shape is not None
        return module, torch.randn(*spec.input_shape)
    module_name, _, function_name = spec.target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ModelLoadError(f"{spec.target}: cannot import: {error}") from error
    built: Any = factory()
    if not (isinstance(built, tuple) and len(built) == 2):
        raise ModelLoadError(f"{spec.target}: must return (torch.nn.Module, example input)")
    module, example = built
    if not isinstance(module, torch.nn.Module) or not isinstance(example, torch.Tensor):
        raise ModelLoadError(f"{spec.target}: must return (torch.nn.Module, torch.Tensor)")
    if example.dim() == 0 or example.shape[0] != 1:
        raise ModelLoadError(f"{spec.target}: example input needs a leading batch dimension of 1")
    return module, example


def small_cnn(image_size: int = 64, classes: int = 100) -> tuple[nn.Module, torch.Tensor]:
    """An image classifier shaped like a trimmed ResNet stem (about 0.3 M parameters)."""
    import torch
    from torch import nn

    def block(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    torch.manual_seed(0)
    model = nn.Sequential(
        block(3, 32),
        block(32, 64),
        block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, classes),
    )
    return model, torch.randn(1, 3, image_size, image_size)


def small_transformer(
    tokens: int = 64, width: int = 256, layers: int = 4, heads: int = 4
) -> tuple[nn.Module, torch.Tensor]:
    """A text encoder shaped like a small BERT (about 3 M parameters), fed embeddings."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        d_model=width, nhead=heads, dim_feedforward=4 * width, batch_first=True
    )
    model = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
    return model, torch.randn(1, tokens, width)
