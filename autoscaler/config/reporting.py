"""What the daemon tells people and scrapers: Slack, the daily digest, /metrics.

Its own room because none of it changes a decision; it only reports them.
"""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

from pydantic import Field, field_validator

from autoscaler.config.time_windows import ClockTime, ZoneName
from common.durations import PositiveDuration
from common.settings import ApiUrl, EnvName, Name, Strict


class SlackConfig(Strict):
    channel: Name
    token_env: EnvName = "SLACK_BOT_TOKEN"
    token_file: Path | None = None
    base_url: ApiUrl | None = Field(
        default=None, description="Slack Web API base URL; only for tests and proxies"
    )
    timeout: PositiveDuration = timedelta(seconds=5)
    allow_insecure: bool = Field(
        default=False, description="accept a plain http base_url to another host"
    )


class TelemetryConfig(Strict):
    """Self-metrics at /metrics and a health check at /healthz."""

    listen: str = Field(
        default="127.0.0.1:9464",
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="host:port; loopback by default, so only the ops box can scrape it",
    )
    unhealthy_after: PositiveDuration = Field(
        default=timedelta(minutes=5),
        description="/healthz fails after this long without a fully successful tick",
    )

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        port = int(value.rpartition(":")[2])
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range; use 1 to 65535")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


class DigestConfig(Strict):
    """The daily digest on Slack: each pool's day (cost, service, forecast error, actions)."""

    at: ClockTime = Field(default=time(9, 0), description="local time the digest is sent")
    timezone: ZoneName = "UTC"
    currency: str = Field(default="USD", min_length=1, max_length=8)
    plot: bool = Field(default=True, description="a PNG of each pool's day in the thread")
