"""Models to benchmark: a user's `module:function`, `file.py:function`, exported program
(`torch.export.save`, .pt2) or TorchScript file, and two references.

A model factory returns `(module, example)` where `example` is one request's input with a
leading batch dimension of 1: a tensor, a tuple or list of them (the forward's positional
arguments: a face matcher's two images), or a dict (its keyword arguments: a text model's
`input_ids` and `attention_mask`); values that are not tensors are passed as they are.
The worker concatenates copies of each tensor along the first dimension to form batches.
An exported program brings its own example (the first request of the one it was exported
with); its batch dimension must have been exported as dynamic (`torch.export.Dim`) for
batches over the size it was exported with.
`module:function` is imported as `python -m` would from where gpu-bench runs (the
current directory is searched), so a model file beside the command needs no PYTHONPATH.
The reference models are small, random-weight, plain-torch networks: nothing is
downloaded, and they are meant for trying the harness, not for quality.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
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

    @property
    def is_exported(self) -> bool:
        return self.target.endswith(".pt2")


def parse_model_spec(text: str, input_shape: Sequence[int] | None = None) -> ModelSpec:
    """Accept a reference name (cnn, transformer), `module:function`, `file.py:function`,
    an exported program (.pt2) or a TorchScript path."""
    target = REFERENCE_MODELS.get(text, text)
    spec = ModelSpec(target, tuple(input_shape) if input_shape else None)
    if spec.is_torchscript:
        if spec.input_shape is None:
            raise ModelLoadError(f"{text}: a TorchScript file needs --input-shape (e.g. 1,3,64,64)")
    elif ":" not in target and not spec.is_exported:
        raise ModelLoadError(
            f"{text}: expected 'module:function', 'file.py:function', an exported program "
            f"(.pt2), a TorchScript file (.pt/.ts), or one of {sorted(REFERENCE_MODELS)}"
        )
    return spec


def model_file(spec: ModelSpec) -> Path | None:
    """The file the model is built from: the exported program or TorchScript file, the
    `file.py`, or the module's source where `python -m` would find it (searched for, not
    imported: an import runs the user's code, which is the workers' to run); None where
    none is found. Weights that the factory loads from elsewhere are not part of it."""
    if spec.is_exported or spec.is_torchscript:
        return Path(spec.target)
    module_name = spec.target.rpartition(":")[0]
    if module_name.endswith(".py"):
        return Path(module_name)
    parts = module_name.split(".")
    for folder in (os.getcwd(), *sys.path):
        base = Path(folder or os.getcwd()).joinpath(*parts)
        for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def model_sha256(spec: ModelSpec) -> str | None:
    """The SHA-256 of model_file(spec)'s bytes (None where there is no such file, or it
    cannot be read): which model a checkpoint's measurements and a profile are of."""
    path = model_file(spec)
    if path is None:
        return None
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None


def load_model(
    spec: ModelSpec, device: str = "cpu", largest_batch: int = 1
) -> tuple[nn.Module, Any]:
    """Build the module on `device` and its one-request example input (on the CPU: the
    worker moves each batch of 1 to `largest_batch` requests); ModelLoadError on any
    failure."""
    import torch

    if spec.is_exported:
        return _exported(spec, device, largest_batch)
    if spec.is_torchscript:
        from gpu_bench.torchscript import load_torchscript

        return load_torchscript(spec, device)
    module_name, _, function_name = spec.target.rpartition(":")
    imported = _imported(module_name, spec.target)
    factory = getattr(imported, function_name, None)
    if not callable(factory):
        raise ModelLoadError(
            f"{spec.target}: {module_name} has no function {function_name!r}"
            + _shadowed(module_name, getattr(imported, "__file__", None))
        )
    built = _built(factory, spec.target)
    if not (isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], torch.nn.Module)):
        raise ModelLoadError(f"{spec.target}: must return (torch.nn.Module, example input)")
    module, example = built
    if any(tensor.is_meta for tensor in (*module.parameters(), *module.buffers())):
        raise ModelLoadError(  # .to(device) said only "Cannot copy out of meta tensor"
            f"{spec.target}: its parameters are on the meta device (shapes, no data): load "
            "the weights in the factory (load_state_dict(..., assign=True)) before returning"
        )
    return module.to(device), _checked_example(example, spec.target)


def _built(factory: Callable[[], Any], target: str) -> Any:
    """What the factory returns. Its own failure (weights not found, a required argument,
    sys.exit) is the model failing to load, and says so with the model's name; running out
    of memory stays itself, since fewer workers may fit."""
    try:
        return factory()
    except MemoryError:
        raise
    except (Exception, SystemExit) as error:
        raise ModelLoadError(f"{target}: raised {type(error).__name__}: {error}") from error


def _exported(spec: ModelSpec, device: str, largest_batch: int) -> tuple[nn.Module, Any]:
    """An exported program moved to `device` (torch's own pass, which also moves the
    constants a graph holds), and its example: the saved one's first request, or a random
    tensor of --input-shape. One exported with a fixed batch size runs batches of that
    size alone, which dynamic batching does not keep to: refused unless it is 1 and so is
    the largest batch."""
    import torch
    from torch.export.passes import move_to_device_pass

    from gpu_bench.torchscript import EXPORTED_ADVICE, tried

    try:
        program = torch.export.load(spec.target)
    except Exception as error:
        raise ModelLoadError(f"{spec.target}: cannot load an exported program: {error}") from error
    saved = getattr(program, "example_inputs", None)
    if spec.input_shape is not None:
        example: Any = torch.randn(*spec.input_shape)
    elif saved is None:
        raise ModelLoadError(f"{spec.target}: saved without example inputs: give --input-shape")
    else:
        args, kwargs = saved
        if args and kwargs:
            raise ModelLoadError(
                f"{spec.target}: takes both positional and keyword inputs: wrap it in a "
                "module:function that returns (module, example)"
            )
        example = _mapped(kwargs or tuple(args), lambda tensor: tensor[:1])
    example = _checked_example(example, spec.target)
    refused = _batch_refusal(program, largest_batch)
    if refused is not None:
        raise ModelLoadError(f"{spec.target}: {refused}")
    module = move_to_device_pass(program, device).module()
    if spec.input_shape is not None:  # random floats, not what it was exported with
        tried(module, example, spec, device, EXPORTED_ADVICE)
    return module, example


def _batch_refusal(program: Any, largest_batch: int) -> str | None:
    """Why batches of 1 to `largest_batch` cannot run on an exported program, or None. A
    batch dimension fixed to a number, or dynamic under a bound (`Dim(max=8)`) below a
    batch size dynamic batching forms, fails each such batch on the program's own guard
    ("Guard failed: x.size()[0] <= 8") as a model error mid-sweep: refused here."""
    firsts = _first_dimensions(program)
    if firsts and all(isinstance(first, int) for first in firsts):
        fixed = int(firsts[0])
        if (fixed, largest_batch) == (1, 1):
            return None
        return (
            f"exported with a fixed batch size of {fixed}, so batches of 1 to {largest_batch} "
            "cannot run: export dimension 0 as dynamic (torch.export.Dim)"
        )
    bounds = [_upper_bound(program, first) for first in firsts if not isinstance(first, int)]
    highest = min((bound for bound in bounds if bound is not None), default=None)
    if highest is None or highest >= largest_batch:
        return None  # a lower bound is not checked as it runs: min=2 runs a batch of 1
    return (
        f"exported for batch sizes up to {highest} (torch.export.Dim max={highest}), so "
        f"batches of up to {largest_batch} cannot run: export it with max={largest_batch} "
        f"or more, or give --batch values up to {highest}"
    )


def _first_dimensions(program: Any) -> list[Any]:
    """The first dimension of each of an exported program's tensor inputs: a number where
    it was fixed, a symbol where it was exported as dynamic."""
    users = set(program.graph_signature.user_inputs)
    shapes = [
        getattr(node.meta.get("val"), "shape", ())
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in users
    ]
    return [shape[0] for shape in shapes if len(shape)]


def _upper_bound(program: Any, first: Any) -> int | None:
    """The highest size a dynamic dimension was exported to accept; None where unbounded."""
    found = program.range_constraints.get(getattr(first, "node", first).expr)
    upper = getattr(found, "upper", None)
    return int(upper) if getattr(upper, "is_Integer", False) else None


def _checked_example(example: Any, target: str) -> Any:
    """The example with its tensors on the CPU; ModelLoadError if it holds none, or one
    without a leading batch dimension of 1."""
    tensors = _tensors(example)
    if not tensors:
        raise ModelLoadError(
            f"{target}: the example input must be a tensor, or a tuple, list or dict "
            "holding tensors"
        )
    if any(tensor.dim() == 0 or tensor.shape[0] != 1 for tensor in tensors):
        raise ModelLoadError(
            f"{target}: every tensor of the example input needs a leading batch dimension of 1"
        )
    return _mapped(example, lambda tensor: tensor.detach().cpu())


def _imported(module_name: str, target: str) -> Any:
    """The factory's module: a `.py` file by its path, or a module found as `python -m`
    finds it (the current directory first: a console script's own folder is not it)."""
    try:
        if module_name.endswith(".py"):
            return _from_file(Path(module_name))
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(module_name)
    except ModelLoadError:
        raise
    except (Exception, SystemExit) as error:  # an import runs the user's code: it is theirs
        raise ModelLoadError(f"{target}: cannot import: {type(error).__name__}: {error}") from error


def _from_file(path: Path) -> Any:
    """The module in a `.py` file, with its folder first on the path as `python file.py`
    puts it, so the file's own `import helper` finds the helper.py beside it."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"gpu_bench_user_{path.stem}"
    found = importlib.util.spec_from_file_location(name, path)
    if found is None or found.loader is None:
        raise ModelLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    found.loader.exec_module(module)
    return module


# ---- example inputs: a tensor, or a tuple, list or dict of them ---------------------------


def _mapped(inputs: Any, change: Callable[[torch.Tensor], Any]) -> Any:
    """`inputs` with `change` applied to each tensor in it (nested tuples, lists, dicts)."""
    import torch

    if isinstance(inputs, torch.Tensor):
        return change(inputs)
    if isinstance(inputs, dict):
        return {key: _mapped(value, change) for key, value in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        values = [_mapped(value, change) for value in inputs]
        return type(inputs)(*values) if hasattr(inputs, "_fields") else type(inputs)(values)
    return inputs


def _tensors(inputs: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    _mapped(inputs, found.append)
    return found


def batch_of(example: Any, size: int) -> Any:
    """A batch of `size` requests: each tensor of the example repeated along dimension 0."""
    import torch

    return _mapped(example, lambda tensor: torch.cat([tensor] * size))


def batches_up_to(example: Any, largest: int, pin: bool = False) -> dict[int, Any]:
    """A batch of each size from 1 to `largest`, each the first rows of the largest one
    (views of one copy): a copy per size held largest**2 / 2 requests a worker, 2,080 at
    --batch 64 (6 GB of page-locked memory for 3x512x512 float images)."""
    full = batch_of(example, largest)
    if pin:
        full = pinned(full)
    return {
        size: _mapped(full, lambda tensor, n=size: tensor[:n]) for size in range(1, largest + 1)
    }


def pinned(inputs: Any) -> Any:
    """Each tensor in page-locked memory, for non-blocking copies to a GPU."""
    return _mapped(inputs, lambda tensor: tensor.pin_memory())


def on_device(inputs: Any, device: str) -> Any:
    """A fresh copy of each tensor on `device`, as each batch is. On the CPU `.to` alone
    handed the kept batch itself: a model that normalises its input in place (`x /= 255`)
    was timed on what its earlier calls left (overflowed, subnormal, NaN), not on inputs."""
    return _mapped(inputs, lambda tensor: tensor.to(device, non_blocking=True, copy=True))


def forward(module: nn.Module, inputs: Any) -> Any:
    """Call the module as its example says: a tuple or list as positional arguments, a
    dict as keyword arguments, anything else as the one argument. A forward that returns
    a generator or other iterator (a streaming decoder yielding tokens) has done none of
    its work yet: it is run to its end, into a list, so its time is what is measured (a
    generator left unread timed at microseconds whatever the model)."""
    if isinstance(inputs, dict):
        outputs = module(**inputs)
    elif isinstance(inputs, (tuple, list)):
        outputs = module(*inputs)
    else:
        outputs = module(inputs)
    return list(outputs) if isinstance(outputs, Iterator) else outputs


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


def _shadowed(module_name: str, imported_from: str | None) -> str:
    """Where a module name of the user's is taken by another (the standard library's
    `json` before their json.py): what was imported, and how to name their file."""
    mine = Path(*module_name.split(".")).with_suffix(".py")
    if not mine.is_file() or (imported_from and Path(imported_from).resolve() == mine.resolve()):
        return ""
    where = imported_from or "a built-in module"
    return f" (imported from {where}; for ./{mine} give --model {mine}:FUNCTION)"
