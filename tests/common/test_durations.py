"""Durations in config files (common/durations.py): a value no timedelta can hold is a
config error naming the value, never an OverflowError that escapes the loader."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from common.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("1h30m", timedelta(minutes=90)), (45, timedelta(seconds=45))],
)
def test_durations_parse(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("value", [86_400_000_000_000, 1e300, math.inf, math.nan, "99999999999w"])
def test_a_span_too_long_to_hold_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="not a duration this program can hold"):
        parse_duration(value)


def test_the_loader_reports_it_as_a_config_error(tmp_path) -> None:
    from autoscaler.config.loader import load_config
    from autoscaler.config.problems import ConfigError
    from tests.autoscaler.config.test_loader import BASE

    path = tmp_path / "config.yaml"
    path.write_text(BASE.replace("interval: 1m", "interval: 86400000000000", 1))
    assert "interval: 86400000000000" in path.read_text()
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(p.field == "interval" for p in caught.value.problems)
