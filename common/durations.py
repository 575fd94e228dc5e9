"""Human durations in config files: "90s", "10m", "2h", "1d", "1h30m", or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_LONGEST = timedelta(days=36_525)  # 100 years: longer is a typo, and `now + it` overflows
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 10m, 2h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _span(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and _PART.sub("", text) == "":
            return _span(sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text)))
    raise ValueError(f"expected a duration such as 90s, 10m, 2h or 1h30m, got {value!r}")


def _span(seconds: float) -> timedelta:
    """A config error, not a crash, for a span no timedelta holds (NaN, inf, 10**14 s)."""
    try:
        span = timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        span = None
    if span is None or span > _LONGEST:
        raise ValueError(
            f"{seconds:g} seconds is not a duration this program can hold (100 years at most)"
        )
    return span


def format_duration(value: timedelta) -> str:
    """The shortest spelling parse_duration reads back as the same span (a part second in
    ms: a 1ms drain or a 1.5s latency target is not "0s" or "1s" in a reason or a dump)."""
    if value % timedelta(seconds=1):
        return f"{value / timedelta(milliseconds=1):.3f}".rstrip("0").rstrip(".") + "ms"
    seconds = int(value.total_seconds())
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


def _positive(value: timedelta) -> timedelta:
    """A zero interval, step or timeout would be a busy loop or an instant failure."""
    if value <= timedelta(0):
        raise ValueError(f"must be more than 0, got {format_duration(value)}")
    return value


PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
]


def format_span(delta: timedelta) -> str:
    """A span as a person reads it, rounded down to the minute: 59m, 1h59m, 3d2h00m."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h{minutes:02d}m" if hours or days else f"{minutes}m"
    return f"{days}d{text}" if days else text
