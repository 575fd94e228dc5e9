"""The layering rules of docs/architecture.md, checked on the code as it is.

import-linter runs the contracts in pyproject.toml (layers point down; the daemon reaches
fleets only through the backends interface); the two checks below cover what it cannot:
backend classes named outside backends/, and package modules that only tests import.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import backends

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("autoscaler", "predictors", "backends", "gpu_bench", "common")
ENTRY_POINTS = {"autoscaler.cli.entry", "gpu_bench.cli"}  # [project.scripts]


def package_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
    return found


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports (a `from package import module` counts too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known}


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_no_module_outside_backends_names_a_backend_class() -> None:
    settings = list(backends.BackendConfig.__origin__.__args__)  # type: ignore[attr-defined]
    classes = {cls.__name__ for cls in settings}
    for module in {cls.__module__ for cls in settings}:
        tree = ast.parse(package_modules()[module].read_text())
        for node in tree.body:
            methods = [item.name for item in getattr(node, "body", []) if hasattr(item, "name")]
            if isinstance(node, ast.ClassDef) and "scale" in methods:
                classes.add(node.name)
    assert {"SimulatedFleet", "NomadJobGroup", "KubernetesWorkload"} <= classes
    named = re.compile(r"\b(" + "|".join(sorted(classes)) + r")\b")
    outside = {
        f"{module}: {match}"
        for module, path in package_modules().items()
        if not module.startswith("backends")
        for match in named.findall(path.read_text())
    }
    assert not outside


def test_every_package_module_is_used_by_the_package_or_its_benches() -> None:
    modules = package_modules()
    known = set(modules)
    used = set(ENTRY_POINTS)
    for path in [*modules.values(), *(ROOT / "bench").glob("*.py")]:
        used |= imported_modules(path, known)
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    assert known - used - packages == set()


def test_every_layer_is_installed_by_the_package() -> None:
    """An editable checkout imports from the working tree; a real install only has what
    setuptools was told to find, so a layer missing here breaks every fresh install."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.removesuffix("*") for p in patterns} == set(PACKAGES)
    assert set(config["tool"]["importlinter"]["root_packages"]) == set(PACKAGES)
