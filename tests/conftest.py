"""Shared fixtures: the HTTP doubles of Nomad and Slack (see tests/doubles/)."""

from tests.doubles.nomad_api import nomad_api
from tests.doubles.slack_api import make_slack_api_fixture

slack_api = make_slack_api_fixture()

__all__ = ["nomad_api", "slack_api"]
