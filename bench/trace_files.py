"""Where the benches find their traces: the repository's own `bench/traces/`.

A trace named `nasa_jul95` is `nasa_jul95.csv.gz` (as shipped) or `nasa_jul95.csv` (a
folder given with `--traces`, say of uncompressed or synthetic traces).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_TRACES = Path(__file__).resolve().parent / "traces"
SUFFIXES = (".csv.gz", ".csv")


def trace_path(folder: Path, name: str) -> Path:
    """The file of the trace `name` in `folder`, compressed or not."""
    for suffix in SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"no trace {name!r} in {folder} (looked for {name}.csv.gz, {name}.csv)")


def trace_paths(folder: Path) -> list[Path]:
    """Every trace file in `folder`, by name; a `.csv.gz` wins over a `.csv` of one name."""
    found: dict[str, Path] = {}
    for suffix in reversed(SUFFIXES):
        for path in folder.glob(f"*{suffix}"):
            found[path.name.removesuffix(suffix)] = path
    return [found[name] for name in sorted(found)]


def trace_name(path: Path) -> str:
    """`nasa_jul95` for `nasa_jul95.csv.gz` as for `nasa_jul95.csv`."""
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return path.name.removesuffix(suffix)
    return path.stem
