"""Shared fixtures: the HTTP doubles of Nomad and Slack, and the real Prometheus
(see tests/doubles/), and the process's logging restored after each test."""

import logging
from collections.abc import Iterator

import pytest

from tests.doubles.kubernetes_api import kubernetes_api
from tests.doubles.nomad_api import nomad_api
from tests.doubles.prometheus_server import prometheus_history, stopped_prometheus_url
from tests.doubles.slack_api import make_slack_api_fixture

slack_api = make_slack_api_fixture()


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
