"""`validate` rejects every config that `run` would reject: a corpus of bad configs
(bad_configs/, each the control good.yaml with one mistake) goes through both
`autoscaler validate` and `autoscaler run --once --dry-run`. Both must refuse each with
exit status 2, naming the file, the line marked "<- error" and the field; the control
must pass both, so a refusal is the mistake's doing and not the setting's.

Run against a real Prometheus (Debian's package), the Nomad API double (job scale
endpoint, variable lock) and the Slack Web API double, as tests/autoscaler/cli does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli.main import app
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.doubles.prometheus_server import DEMAND_QUERY, PrometheusWithHistory
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

pytestmark = pytest.mark.integration
CORPUS = Path(__file__).parent / "bad_configs"
BAD = sorted(p for p in CORPUS.glob("*.yaml") if p.name != "good.yaml")
ENV = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN, "SLACK_BOT_TOKEN": DEFAULT_TOKEN}
runner = CliRunner()


def _fill(
    source: Path,
    folder: Path,
    prometheus: PrometheusWithHistory,
    nomad: NomadApiDouble,
    slack: SlackApiDouble,
) -> Path:
    text = source.read_text()
    for name, value in {
        "PROMETHEUS_URL": prometheus.url,
        "NOMAD_URL": nomad.url,
        "SLACK_URL": slack.base_url,
        "DEMAND_QUERY": f"'{DEMAND_QUERY}'",
    }.items():
        text = text.replace("${" + name + "}", value)
    path = folder / source.name
    path.write_text(text)
    return path


def _commands(path: Path) -> dict[str, list[str]]:
    return {
        "validate": ["validate", str(path)],
        "run --once --dry-run": ["run", "--config", str(path), "--once", "--dry-run"],
    }


def test_the_corpus_covers_what_run_checks_at_start() -> None:
    assert len(BAD) >= 15
    for path in BAD:
        text = path.read_text()
        assert text.count("<- error") == 1 and "# field: " in text and "# says: " in text, path


def test_the_control_passes_both(
    prometheus_history: PrometheusWithHistory,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 1})
    path = _fill(CORPUS / "good.yaml", tmp_path, prometheus_history, nomad_api, slack_api)
    for command, args in _commands(path).items():
        result = runner.invoke(app, args, env=ENV)
        assert result.exit_code == 0, f"{command}: {result.output}"


@pytest.mark.parametrize("bad", BAD, ids=[p.stem for p in BAD])
def test_validate_and_run_both_refuse_naming_file_line_and_field(
    bad: Path,
    prometheus_history: PrometheusWithHistory,
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 1})
    path = _fill(bad, tmp_path, prometheus_history, nomad_api, slack_api)
    text = path.read_text()
    field = re.search(r"^# field: (.+)$", text, re.M).group(1)  # type: ignore[union-attr]
    says = re.search(r"^# says: (.+)$", text, re.M).group(1)  # type: ignore[union-attr]
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "<- error" in row)
    for command, args in _commands(path).items():
        result = runner.invoke(app, args, env=ENV)
        output = " ".join(result.output.split())  # rich may wrap a long line
        assert result.exit_code == 2, f"{command} accepted {bad.name}: {result.output}"
        assert f"{path}:{line}: {field}" in output, f"{command}: {result.output}"
        assert says in output, f"{command}: {result.output}"
    assert not (tmp_path / "state").exists() and not (tmp_path / "decisions.jsonl").exists()
    assert slack_api.messages == []
