"""`${VAR}` in config values: expanded from the environment, typed after expansion, and
an unset variable is an error naming file, line and field."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.expand import expand_text
from autoscaler.config.loader import load_config
from autoscaler.config.problems import ConfigError
from common.secrets import redact

CONFIG = """\
metrics:
  kind: prometheus
  url: ${PROM_URL}
  headers: {X-Scope-OrgID: "${TENANT}"}
pools:
  - name: ocr-${ENVIRONMENT:-staging}
    backend: {kind: simulated}
    demand:
      query: sum(rate(requests_total{env="${ENVIRONMENT:-staging}"}[$__rate_interval]))
    capacity: {per_node_rps: 2}
    max_nodes: ${MAX_NODES}
    dry_run: ${DRY_RUN:-false}
"""
ENV = {"PROM_URL": "https://mimir.example.com/prometheus", "TENANT": "007", "MAX_NODES": "12"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoscaler.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_values_are_expanded_and_typed_after_expansion(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONFIG), env={**ENV, "ENVIRONMENT": "prod"})
    pool = config.pools[0]
    assert config.metrics.url == ENV["PROM_URL"]
    assert config.metrics.headers == {"X-Scope-OrgID": "007"}  # quoted: stays a string
    assert pool.name == "ocr-prod"
    assert pool.max_nodes == 12
    assert pool.dry_run is False
    assert pool.demand.query == 'sum(rate(requests_total{env="prod"}[$__rate_interval]))'


def test_defaults_apply_when_unset_or_empty(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONFIG), env={**ENV, "ENVIRONMENT": ""})
    assert config.pools[0].name == "ocr-staging"


def test_an_unset_variable_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"PROM_URL": "https://x.example.com", "TENANT": "t"})
    problems = [p for p in caught.value.problems if "MAX_NODES" in p.message]
    assert len(problems) == 1
    assert str(problems[0]).startswith(
        f"{path}:11: pools[0].max_nodes: environment variable MAX_NODES is not set"
    )
    assert "${MAX_NODES:-value}" in problems[0].message


@pytest.mark.parametrize(
    ("text", "expanded", "unset"),
    [
        ("$${HOME}", "${HOME}", []),
        ("cost $5", "cost $5", []),
        ("${A}${B}", "ab", []),
        ("${MISSING}", "${MISSING}", ["MISSING"]),
        ("${MISSING:-}", "", []),
        ("${9BAD}", "${9BAD}", []),
    ],
)
def test_expand_text(text: str, expanded: str, unset: list[str]) -> None:
    assert expand_text(text, {"A": "a", "B": "b", "HOME": "/root"}) == (expanded, unset)


def test_validate_reports_an_unset_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, CONFIG)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MAX_NODES")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:11: pools[0].max_nodes: environment variable MAX_NODES" in result.output
    monkeypatch.setenv("MAX_NODES", "3")
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0


@pytest.mark.parametrize(
    "edit",
    [
        # a secret's variable in a wrong key: its value is quoted by the error
        lambda text: text.replace("${MAX_NODES}", "${SLACK_BOT_TOKEN}"),
        lambda text: text + "slack: {channel: '#ops', token_env: '${SLACK_BOT_TOKEN}'}\n",
    ],
    ids=["number", "variable name"],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_secret_expanded_into_a_wrong_key_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Callable[[str], str], command: str
) -> None:
    secret = f"xoxb-{uuid.uuid4().hex}"  # never remembered by an earlier test
    monkeypatch.setenv("SLACK_BOT_TOKEN", secret)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, edit(CONFIG))
    args = ["validate", str(path)] if command == "validate" else ["run", "-c", str(path), "--once"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output and "[redacted]" in result.output
    assert secret not in result.output and secret[5:21] not in result.output


@pytest.mark.parametrize(
    "token_env",
    ["'${SLACK_BOT}'", "'SECRET'"],  # expanded from a variable not named like one; pasted
    ids=["expanded", "pasted"],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_secret_where_a_variable_name_belongs_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_env: str, command: str
) -> None:
    secret = f"xoxb-{uuid.uuid4().hex}"  # never remembered by an earlier test
    monkeypatch.setenv("SLACK_BOT", secret)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    slack = f"slack:\n  channel: '#ops'\n  token_env: {token_env.replace('SECRET', secret)}\n"
    path = write(tmp_path, CONFIG + slack)
    args = ["validate", str(path)] if command == "validate" else ["run", "-c", str(path), "--once"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output and "slack.token_env" in result.output
    assert "name of an environment variable" in result.output
    assert secret not in result.output and secret[5:21] not in result.output


def test_a_secret_expanded_into_a_variable_name_setting_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"pw{uuid.uuid4().hex}"  # shaped like a variable's name
    monkeypatch.setenv("SLACK_BOT", secret)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, CONFIG + "slack:\n  channel: '#ops'\n  token_env: ${SLACK_BOT}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output and "slack.token_env" in result.output
    assert secret not in result.output and "[redacted]" in result.output


@pytest.mark.parametrize("indirect", [False, True], ids=["default", "names-a-set-variable"])
def test_a_variable_name_expanded_into_a_name_setting_is_still_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indirect: bool
) -> None:
    """A `*_env` expanded to a variable's name (a default the file spells, or a variable's
    value naming one that is set) is no secret: remembered as one, every message naming
    the variable was redacted, the one saying it is unset first."""
    name = f"OPS_SLACK_{uuid.uuid4().hex[:12].upper()}"  # never remembered by another test
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SLACK_VAR", raising=False)
    if indirect:
        monkeypatch.setenv("SLACK_VAR", name)  # not named like a credential
        monkeypatch.setenv(name, "")
    token_env = "${SLACK_VAR}" if indirect else f"${{SLACK_VAR:-{name}}}"
    path = write(tmp_path, CONFIG + f"slack:\n  channel: '#ops'\n  token_env: {token_env}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"environment variable {name} is not set" in result.output
    assert redact(f"token_env names {name}") == f"token_env names {name}"
