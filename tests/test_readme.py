"""README's examples, taken as a newcomer takes them: pasted into a config, they validate."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.schema import Pool

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCED_YAML = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
ENV = {"SLACK_BOT_TOKEN": "xoxb-Rk4wQ9zvTe", "PROM_PASSWORD": "pw-Jd7qX2mLc8"}


def _yaml_blocks() -> list[Any]:
    """Each ```yaml block, its id the README line it starts on."""
    return [
        pytest.param(match.group(1), id=f"README.md:{README.count(chr(10), 0, match.start()) + 1}")
        for match in FENCED_YAML.finditer(README)
    ]


def _touch_named_files(value: object, folder: Path) -> None:
    """The example's certificate and key files, made empty where they are named (validate
    checks that they can be read, not what they hold)."""
    if isinstance(value, dict):
        for item in value.values():
            _touch_named_files(item, folder)
    elif isinstance(value, str) and value.startswith(f"{folder}/"):
        Path(value).touch()


def test_readme_has_yaml_examples() -> None:
    assert len(_yaml_blocks()) >= 4


@pytest.mark.parametrize("block", _yaml_blocks())
def test_each_yaml_example_validates_where_it_goes(block: str, tmp_path: Path) -> None:
    """An example is laid into the shipped production config: a pool's keys into its pool,
    the rest at the top, /etc/autoscaler/ read as a folder of the test's. Before, the
    Prometheus-behind-auth block lacked `kind: prometheus`, and pasted as shown it was
    refused with 'metrics.kind: kind is required'."""
    config = yaml.safe_load((ROOT / "config" / "production.example.yaml").read_text())
    config.update(
        state_dir=str(tmp_path / "state"),
        decision_log=str(tmp_path / "decisions.jsonl"),
        overrides_file=str(tmp_path / "overrides.yaml"),
    )
    (pool,) = config["pools"]
    example = yaml.safe_load(textwrap.dedent(block).replace("/etc/autoscaler/", f"{tmp_path}/"))
    _touch_named_files(example, tmp_path)
    for key, value in example.items():
        if key == "pools":
            for entry in value:
                pool.update({k: v for k, v in entry.items() if k != "name"})
        elif key in Pool.model_fields:
            pool[key] = {**pool[key], **value} if key == "demand" else value
        else:
            config[key] = value
    path = tmp_path / "autoscaler.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
