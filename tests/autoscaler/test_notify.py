"""Message builders (pure), redaction and the log notifier (Slack: test_notify_slack.py)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from autoscaler.notify import (
    LogNotifier,
    Message,
    alert_message,
    failure_cleared_message,
    failure_started_message,
    format_duration,
    redact,
    scale_message,
)
from tests.support import RecordingNotifier

# ---- builders -------------------------------------------------------------------


def test_scale_up_message_names_pool_counts_reasons_and_figures() -> None:
    message = scale_message(
        "gpu-ocr",
        4,
        7,
        ["forecast needs 7 nodes", "schedule 'stores-open' floor 6"],
        forecast_rps=612.34,
        upper_rps=700.0,
        demand_rps=410.5,
        dry_run=False,
    )
    assert message.text.startswith(":arrow_up: gpu-ocr 4 → 7")
    assert "scaling up" in message.text
    assert "would" not in message.text
    assert "• forecast needs 7 nodes" in message.text
    assert "• schedule 'stores-open' floor 6" in message.text
    assert "612.3 req/s" in message.text
    assert "700.0 req/s" in message.text
    assert "410.5 req/s" in message.text
    assert message.blocks is not None
    rendered = json.dumps(message.blocks, ensure_ascii=False)
    assert "*gpu-ocr* 4 → 7" in rendered
    assert "forecast needs 7 nodes" in rendered
    assert all(block["type"] in {"section", "context"} for block in message.blocks)


def test_scale_down_in_dry_run_says_would_and_nothing_changed() -> None:
    message = scale_message("llm", 10, 8, ["stabilized 15m"], None, None, None, dry_run=True)
    assert message.text.startswith(":arrow_down: llm 10 → 8")
    assert "would scale down" in message.text
    assert "dry-run" in message.text
    assert "scaling" not in message.text
    # no figures given: no figures line, and no "None" anywhere
    assert "req/s" not in message.text
    assert "None" not in message.text


def test_scale_message_prints_nan_as_na_and_escapes_control_characters() -> None:
    message = scale_message("a<b>&c", 2, 2, ["x < y & z"], float("nan"), 1.0, 2.0, dry_run=False)
    assert message.text.startswith(":arrow_right: a&lt;b&gt;&amp;c 2 → 2")
    assert "forecast n/a" in message.text
    assert "x &lt; y &amp; z" in message.text
    assert "<" not in message.text


def test_failure_messages_name_pool_kind_detail_and_duration() -> None:
    started = failure_started_message("gpu-ocr", "metrics", "query timed out after 10s")
    assert started.text.startswith(":warning: gpu-ocr")
    assert "metrics" in started.text
    assert "query timed out after 10s" in started.text
    cleared = failure_cleared_message("gpu-ocr", "metrics", timedelta(minutes=12, seconds=30))
    assert cleared.text.startswith(":white_check_mark: gpu-ocr")
    assert "recovered after 12m 30s" in cleared.text
    long_detail = failure_started_message("p", "backend", "x" * 10_000)
    assert len(long_detail.text) < 1000


def test_alert_message() -> None:
    message = alert_message("config reload failed: pools[0].min: expected an integer")
    assert message.text.startswith(":rotating_light: config reload failed")
    assert message.blocks and "pools[0].min" in message.blocks[0]["text"]["text"]


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(hours=2, minutes=5, seconds=9), "2h 5m"),
        (timedelta(days=1, hours=3), "1d 3h"),
    ],
)
def test_format_duration(span: timedelta, expected: str) -> None:
    assert format_duration(span) == expected


def test_redact_replaces_every_secret_and_ignores_empty_ones() -> None:
    assert redact("a tok-123 b tok-123", ["tok-123", ""]) == "a [redacted] b [redacted]"
    assert redact("xoxb-long", ["xoxb", "xoxb-long"]) == "[redacted]"


def test_recording_and_log_notifiers(caplog: pytest.LogCaptureFixture) -> None:
    recorder = RecordingNotifier()
    assert recorder.send(Message("one")) is True
    down = RecordingNotifier(succeed=False)
    assert down.send(Message("two")) is False
    assert recorder.texts == ["one"] and down.texts == ["two"]
    with caplog.at_level(logging.INFO):
        assert LogNotifier().send(Message("hello ops")) is True
    assert "hello ops" in caplog.text
