"""Telling people what the autoscaler did: message builders and the senders behind them.

Builders are pure (no I/O), so the tick decides *what* to say and tests read it
without a network. Senders never raise: a notification must not break a tick. The Slack
sender, with its timeouts and circuit breaker, is autoscaler.notify_slack.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from common.secrets import redact as redact_known
from common.secrets import redact_data, remember, shorten

logger = logging.getLogger(__name__)

# Slack's limit for a section block's text; longer text is refused as invalid_blocks.
SECTION_TEXT_LIMIT = 3000
# Slack's limit for a message's text; longer text is refused as msg_too_long.
TEXT_LIMIT = 40_000
DETAIL_LIMIT = 500
FAILURE_REASONS = ("channel", "token", "rate_limited", "unanswered", "unreachable", "refused")
"""Why a Slack post was dropped: autoscaler_notifications_failed_total's reason label (a
few values, whatever Slack answers): the channel refuses the bot, the token is refused, a
429 outlasted the retries, Slack left it unanswered or could not be reached, or another
refusal (a 5xx, a message Slack would not take)."""


@dataclass(frozen=True)
class Message:
    """Plain text (the notification fallback) plus optional Block Kit blocks."""

    text: str
    blocks: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Attachment:
    """A file posted under a message (the digest's PNG of a pool's day)."""

    filename: str
    title: str
    content: bytes


class Notifier(Protocol):
    def send(self, message: Message) -> bool:
        """Deliver the message; True if delivered. Never raises."""
        ...


# ---- pure message builders ------------------------------------------------------


def escape_mrkdwn(text: str) -> str:
    """Slack reads &, < and > as control characters in message text; escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Redacted, then cut: a cut must not keep half of a token (common.secrets)."""
    return shorten(text, limit)


def format_rps(value: float | None) -> str:
    if value is None or math.isnan(value) or math.isinf(value):
        return "n/a"
    return f"{value:,.1f} req/s"


def format_duration(span: timedelta) -> str:
    """'2h 5m', '12m 30s', '45s': short enough for a chat line."""
    seconds = max(0, round(span.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return " ".join(shown[:2]) if shown else "0s"


def section_block(text: str) -> dict[str, Any]:
    """A Block Kit section of mrkdwn text, cut to what Slack takes in one."""
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, SECTION_TEXT_LIMIT)},
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 2000)}]}


def scale_message(
    pool: str,
    current: int,
    desired: int,
    reasons: Sequence[str],
    forecast_rps: float | None,
    upper_rps: float | None,
    demand_rps: float | None,
    dry_run: bool,
) -> Message:
    """One change of a pool's size, with the reasons and figures behind it."""
    if desired > current:
        arrow, direction = ":arrow_up:", "scale up"
    elif desired < current:
        arrow, direction = ":arrow_down:", "scale down"
    else:
        arrow, direction = ":arrow_right:", "keep"
    name = escape_mrkdwn(pool)
    if dry_run:
        action = f"would {direction} (dry-run, nothing changed)"
    else:
        action = {"scale up": "scaling up", "scale down": "scaling down"}.get(direction, "keeping")
    headline = f"{arrow} {name} {current} → {desired} nodes: {action}"
    headline_md = f"{arrow} *{name}* {current} → {desired} nodes: {action}"

    bullets = "\n".join(f"• {escape_mrkdwn(reason)}" for reason in reasons)
    figures = []
    if demand_rps is not None:
        figures.append(f"demand now {format_rps(demand_rps)}")
    if forecast_rps is not None:
        figures.append(f"forecast {format_rps(forecast_rps)}")
    if upper_rps is not None:
        figures.append(f"upper bound {format_rps(upper_rps)}")
    figures_line = ", ".join(figures)

    text_parts = [headline]
    if bullets:
        text_parts.append("Reasons:\n" + bullets)
    if figures_line:
        text_parts.append(figures_line[0].upper() + figures_line[1:])
    blocks = [section_block(headline_md)]
    if bullets:
        blocks.append(section_block("*Reasons*\n" + bullets))
    if figures_line:
        blocks.append(_context(figures_line[0].upper() + figures_line[1:]))
    return Message(text="\n".join(text_parts), blocks=blocks)


def failure_started_message(pool: str, kind: str, detail: str) -> Message:
    """Sent once when a failure (metrics, backend...) begins, not on every failing tick."""
    text = (
        f":warning: {escape_mrkdwn(pool)}: {escape_mrkdwn(kind)} failing: "
        f"{escape_mrkdwn(truncate(detail, DETAIL_LIMIT))}"
    )
    return Message(text=text, blocks=[section_block(text)])


def failure_cleared_message(pool: str, kind: str, lasted: timedelta) -> Message:
    text = (
        f":white_check_mark: {escape_mrkdwn(pool)}: {escape_mrkdwn(kind)} recovered "
        f"after {format_duration(lasted)}"
    )
    return Message(text=text, blocks=[section_block(text)])


def alert_message(text: str) -> Message:
    """Anything that needs a human and belongs to no pool, e.g. a bad config on reload."""
    body = f":rotating_light: {escape_mrkdwn(truncate(text, SECTION_TEXT_LIMIT - 20))}"
    return Message(text=body, blocks=[section_block(body)])


# ---- secrets --------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """Every secret the process knows (common.secrets), these included."""
    remember(*secrets)
    return redact_known(text)


def redacted(message: Message) -> Message:
    """The message as it may leave the process: every known secret replaced, and its
    text (a digest of many pools) cut to Slack's limit rather than refused whole."""
    return Message(shorten(message.text, TEXT_LIMIT), redact_data(message.blocks))


# ---- senders --------------------------------------------------------------------


class LogNotifier:
    """Used when no Slack is configured: the messages still reach the daemon's log."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logger

    def send(self, message: Message) -> bool:
        self._log.info("notification: %s", message.text)
        return True


class DryRunNotifier:
    """A dry run tells no one: what would have gone to Slack (or the log) is logged as such."""

    def send(self, message: Message) -> bool:
        logger.info("would notify: %s", message.text)
        return True
