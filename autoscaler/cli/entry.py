"""The `autoscaler` console script: the early SIGHUP handler first, then the (slow) CLI."""

from __future__ import annotations


def main() -> None:
    from autoscaler import early_signals

    early_signals.install()
    from autoscaler.cli.main import main as cli

    cli()
