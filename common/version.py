"""The installed distribution's version, for `--version` and `autoscaler_build_info`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "gpu-autoscaler"


def package_version() -> str:
    """The installed version ("unknown" when run from a checkout that was never installed)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
