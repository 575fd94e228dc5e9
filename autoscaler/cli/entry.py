"""The `autoscaler` console script: the early SIGHUP handler and closed standard streams
put right first, then the (slow) CLI."""

from __future__ import annotations


def main() -> None:
    from autoscaler import early_signals

    early_signals.install()
    from common.standard_streams import reopen_closed_standard_streams, said_when_stdout_refuses

    reopen_closed_standard_streams()  # before any file is opened: none may become fd 2
    from autoscaler.cli.main import main as cli

    said_when_stdout_refuses("autoscaler", cli)
