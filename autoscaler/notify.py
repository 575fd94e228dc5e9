"""Telling people what the autoscaler did: message builders and the senders behind them.

Builders are pure (no I/O), so the tick decides *what* to say and tests read it
without a network. Senders never raise: a Slack outage must not break a tick or
delay it for long, so each send is bounded by a timeout and at most one short retry, and
after a post Slack left unanswered the next ones are not tried for a pause (a circuit
breaker, pybreaker): a tick telling many pools' news would otherwise wait out a timeout
for each.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import pybreaker
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from common.deadline import call_within, whole_answer_s
from common.secrets import redact as redact_known
from common.secrets import redact_data, remember, shorten

if TYPE_CHECKING:
    from autoscaler.config.reporting import SlackConfig

logger = logging.getLogger(__name__)

SLACK_BASE_URL = "https://slack.com/api/"
# A 429 is retried once, and only when Slack asks for a wait this short or shorter.
MAX_RETRY_AFTER_S = 2.0
# Slack's limit for a section block's text; longer text is refused as invalid_blocks.
SECTION_TEXT_LIMIT = 3000
SLACK_PAUSE_S = 300.0
"""After a post Slack did not answer in time, none is tried for this long (then one is)."""
# Slack's limit for a message's text; longer text is refused as msg_too_long.
TEXT_LIMIT = 40_000
DETAIL_LIMIT = 500


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


def _section(text: str) -> dict[str, Any]:
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
    blocks = [_section(headline_md)]
    if bullets:
        blocks.append(_section("*Reasons*\n" + bullets))
    if figures_line:
        blocks.append(_context(figures_line[0].upper() + figures_line[1:]))
    return Message(text="\n".join(text_parts), blocks=blocks)


def failure_started_message(pool: str, kind: str, detail: str) -> Message:
    """Sent once when a failure (metrics, backend...) begins, not on every failing tick."""
    text = (
        f":warning: {escape_mrkdwn(pool)}: {escape_mrkdwn(kind)} failing: "
        f"{escape_mrkdwn(truncate(detail, DETAIL_LIMIT))}"
    )
    return Message(text=text, blocks=[_section(text)])


def failure_cleared_message(pool: str, kind: str, lasted: timedelta) -> Message:
    text = (
        f":white_check_mark: {escape_mrkdwn(pool)}: {escape_mrkdwn(kind)} recovered "
        f"after {format_duration(lasted)}"
    )
    return Message(text=text, blocks=[_section(text)])


def alert_message(text: str) -> Message:
    """Anything that needs a human and belongs to no pool, e.g. a bad config on reload."""
    body = f":rotating_light: {escape_mrkdwn(truncate(text, SECTION_TEXT_LIMIT - 20))}"
    return Message(text=body, blocks=[_section(body)])


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


def _retry_after_seconds(headers: Mapping[str, Any] | None) -> float | None:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


class SlackNotifier:
    """Posts messages with chat.postMessage through slack-sdk's WebClient."""

    def __init__(
        self,
        channel: str,
        token: str,
        base_url: str | None = None,
        timeout: float = 5.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        pause_s: float = SLACK_PAUSE_S,
    ) -> None:
        if not token:
            raise ValueError("SlackNotifier needs a non-empty bot token")
        # Only a stall opens it: an answer (an error too) or a refused connection is quick.
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=1,
            reset_timeout=pause_s,
            exclude=[lambda error: not _unanswered(error)],
            throw_new_error_on_trip=False,
        )
        self.channel = channel
        self._token = token
        remember(token)
        self._sleep = sleep
        self._timeout = timeout
        # retry_handlers=[]: the SDK's own connection retry would double the wait on an
        # outage; this class retries a short 429 itself and nothing else.
        self._client = WebClient(
            token=token,
            base_url=base_url or SLACK_BASE_URL,
            timeout=timeout,  # type: ignore[arg-type]  # urllib takes float seconds
            retry_handlers=[],
        )

    def __repr__(self) -> str:
        return f"SlackNotifier(channel={self.channel!r}, base_url={self._client.base_url!r})"

    @classmethod
    def from_config(cls, cfg: SlackConfig, env: Mapping[str, str]) -> SlackNotifier:
        token = read_slack_token(cfg, env)
        return cls(
            channel=cfg.channel,
            token=token,
            base_url=cfg.base_url,
            timeout=cfg.timeout.total_seconds(),
        )

    def check_token(self) -> str:
        """Slack's auth.test: who the token speaks as, or a ValueError saying why it cannot
        (`validate --check-backends`; never posts anything)."""
        try:
            answer = self._client.auth_test()
        except SlackApiError as err:
            data = err.response.data if isinstance(err.response.data, dict) else {}
            status = err.response.status_code
            raise ValueError(f"auth.test: HTTP {status}, error {data.get('error')}") from None
        except Exception as err:  # a connection refused, a timeout: no token in the text
            raise ValueError(f"auth.test: {type(err).__name__}: {redact_known(str(err))}") from None
        return f"team {answer.get('team')!s}, as {answer.get('user')!s}"

    def send(self, message: Message) -> bool:
        try:
            return self._send(redacted(message))
        except Exception as err:  # never let a notification break a tick
            self._warn(f"unexpected {type(err).__name__}: {err}")
            return False

    def send_with_files(self, message: Message, files: Sequence[Attachment]) -> bool:
        """The message, then the files in its thread (files_upload_v2: it needs the channel
        ID, which chat.postMessage answers with). True if all arrived. Never raises."""
        try:
            posted = self._post(redacted(message))
            if posted is None or not files:
                return posted is not None
            uploads = [
                {"content": f.content, "filename": f.filename, "title": f.title} for f in files
            ]
            self._breaker.call(
                call_within,
                whole_answer_s(self._timeout) * (1 + len(files)),  # a call per file, and one
                lambda: self._client.files_upload_v2(
                    file_uploads=uploads, channel=posted[0], thread_ts=posted[1]
                ),
                "Slack files upload",
            )
            return True
        except SlackApiError as err:
            error = err.response.get("error") if isinstance(err.response.data, dict) else None
            self._warn(f"file upload: HTTP {err.response.status_code}, error {error}")
        except Exception as err:  # SlackRequestError (the upload URL), network: never raise
            self._warn(f"file upload: {type(err).__name__}: {err}")
        return False

    def _send(self, message: Message) -> bool:
        return self._post(message) is not None

    def _post(self, message: Message) -> tuple[str, str] | None:
        """chat.postMessage, with one short retry on a 429: (channel ID, ts), or None."""
        for attempt in (1, 2):
            try:
                answer = self._breaker.call(
                    call_within,
                    whole_answer_s(self._timeout),
                    lambda: self._client.chat_postMessage(
                        channel=self.channel, text=message.text, blocks=message.blocks
                    ),
                    "Slack chat.postMessage",
                )
                return str(answer.get("channel")), str(answer.get("ts"))
            except pybreaker.CircuitBreakerError:
                self._warn(f"Slack left a post unanswered: none is tried for {self._pause()}")
                return None
            except SlackApiError as err:
                status = err.response.status_code
                error = err.response.get("error") if isinstance(err.response.data, dict) else None
                wait = _retry_after_seconds(err.response.headers) if status == 429 else None
                if attempt == 1 and wait is not None and 0 <= wait <= MAX_RETRY_AFTER_S:
                    logger.info("Slack rate-limited the post; retrying once in %.1f s", wait)
                    self._sleep(wait)
                    continue
                detail = f"error {truncate(str(error), 200)}" if error else "no error code"
                if wait is not None:
                    detail += f", Retry-After {wait:g} s"
                self._warn(f"HTTP {status}, {detail}")
                return None
            except (TimeoutError, OSError) as err:  # URLError and socket errors are OSError
                self._warn(f"{type(err).__name__}: {err}")
                return None
        return None  # pragma: no cover - the loop always returns

    def _pause(self) -> str:
        return format_duration(timedelta(seconds=self._breaker.reset_timeout))

    def _warn(self, reason: str) -> None:
        logger.warning(
            "Slack chat.postMessage to %s failed (%s); the message was dropped",
            self.channel,
            redact(reason, [self._token]),
        )


def _unanswered(error: BaseException) -> bool:
    """A post Slack did not answer in time: the deadline passed, or the socket timed out
    (urllib wraps a connect timeout in a URLError)."""
    return isinstance(error, TimeoutError) or isinstance(
        getattr(error, "reason", None), TimeoutError
    )


def read_slack_token(cfg: SlackConfig, env: Mapping[str, str]) -> str:
    """The bot token from cfg.token_file if set, else from env[cfg.token_env].

    Errors name the file or variable, never the value.
    """
    if cfg.token_file is not None:
        try:
            token = cfg.token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise ValueError(
                f"slack.token_file {cfg.token_file} cannot be read: {reason}"
            ) from None
        if not token:
            raise ValueError(f"slack.token_file {cfg.token_file} is empty; expected a bot token")
        return token
    token = env.get(cfg.token_env, "").strip()
    if not token:
        raise ValueError(
            f"Slack token missing: environment variable {cfg.token_env} is not set or empty "
            "(set it, or slack.token_file)"
        )
    return token
