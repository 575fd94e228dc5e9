"""Shared fixtures: the HTTP doubles of Nomad and Slack, and the real Prometheus
(see tests/doubles/)."""

from tests.doubles.kubernetes_api import kubernetes_api
from tests.doubles.nomad_api import nomad_api
from tests.doubles.prometheus_server import prometheus_history, stopped_prometheus_url
from tests.doubles.slack_api import make_slack_api_fixture

slack_api = make_slack_api_fixture()

__all__ = [
    "kubernetes_api",
    "nomad_api",
    "prometheus_history",
    "slack_api",
    "stopped_prometheus_url",
]
