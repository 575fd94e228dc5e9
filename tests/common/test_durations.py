"""Durations in config files (common/durations.py): a value no timedelta can hold is a
config error naming the value, never an OverflowError that escapes the loader."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from common.durations import format_duration, parse_duration


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


@pytest.mark.parametrize(
    ("span", "written"),
    [
        (timedelta(milliseconds=1), "1ms"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(microseconds=1), "0.001ms"),
        (timedelta(days=20, microseconds=500), "1728000000.5ms"),
        (timedelta(minutes=90), "90m"),
    ],
)
def test_a_part_second_is_written_as_it_is_and_reads_back(span: timedelta, written: str) -> None:
    """A 1 ms drain_within read "within 0s" in a queue's reason, a 1.5 s latency target
    "target 1s" (a p95 of 1.2 s 'within target 1s'), and a dumped config lost the part."""
    assert format_duration(span) == written
    assert parse_duration(written) == span
