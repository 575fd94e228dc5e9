"""Optional dependencies (pip extras): a config that needs a missing one says which to add.

Backends and plots pull in large packages (boto3, kubernetes, matplotlib) that a
Nomad-only or headless install does without; their import sites wrap the import so
that the daemon stops with "pip install 'gpu-autoscaler[aws]'" instead of a traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

DISTRIBUTION = "gpu-autoscaler"
EXTRA_OF = {"boto3": "aws", "botocore": "aws", "kubernetes": "kubernetes", "matplotlib": "plots"}
"""Top-level module → the extra (pyproject.toml) that installs it."""


class MissingExtra(ValueError):
    """A config asks for something whose packages are in an extra not installed here.

    A ValueError, so that every place that reports a config the daemon cannot start
    with reports this one too (and the service exits with the config-error status).
    """

    def __init__(self, what: str, module: str) -> None:
        self.extra = EXTRA_OF[module]
        super().__init__(
            f"{what} needs the Python package {module!r}, which is not installed: "
            f"pip install '{DISTRIBUTION}[{self.extra}]'"
        )


@contextmanager
def needs_extra(what: str) -> Iterator[None]:
    """Turn a failed import of an optional package (EXTRA_OF) into MissingExtra.

    Any other ImportError (a module of ours that is broken) propagates unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRA_OF:
            raise
        raise MissingExtra(what, top) from exc


def require(what: str, *modules: str) -> None:
    """Fail early (at start, before a long run) when `what` needs a missing extra."""
    with needs_extra(what):
        for module in modules:
            importlib.import_module(module)
