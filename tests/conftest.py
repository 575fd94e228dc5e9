"""Shared fixtures: the HTTP doubles of Nomad and Slack, and the real Prometheus
(see tests/doubles/), and the process's logging restored after each test."""

import importlib
import logging
import os
from collections.abc import Iterator

import pytest

from tests.doubles.kubernetes_api import kubernetes_api
from tests.doubles.nomad_api import nomad_api
from tests.doubles.prometheus_server import prometheus_history, stopped_prometheus_url
from tests.doubles.slack_api import make_slack_api_fixture

slack_api = make_slack_api_fixture()


def _import_the_cli_with_no_width() -> None:
    """Rich reads COLUMNS once, when a Console is made, and the CLI modules make theirs at
    import. Imported here, with no COLUMNS set, their consoles follow the width each
    CliRunner env gives; imported first inside a test's `env={"COLUMNS": "100"}`, they
    kept 100 for every later test of that process (which test came first depended on how
    pytest-xdist handed the tests out)."""
    os.environ.pop("COLUMNS", None)
    for module in ("autoscaler.cli.main", "autoscaler.cli.report", "autoscaler.cli.backtest"):
        importlib.import_module(module)
    importlib.import_module("gpu_bench.cli")


_import_the_cli_with_no_width()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI sets the root logger's level and handlers, as a command should; a command
    invoked in-process (CliRunner) must not leave, say, `status`'s ERROR level behind to
    hide the warnings a later test captures."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    loggers = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, was in loggers.items():
        logging.getLogger(name).setLevel(was)


__all__ = [
    "kubernetes_api",
    "nomad_api",
    "prometheus_history",
    "slack_api",
    "stopped_prometheus_url",
]
