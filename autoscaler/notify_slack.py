"""The Slack sender: chat.postMessage (and the digest's files) through slack-sdk.

It never raises: a Slack outage must not break a tick or delay it for long, so each send
is bounded by a timeout and at most one short retry, and after a post Slack left
unanswered the next ones are not tried for a pause (a circuit breaker, pybreaker): a tick
telling many pools' news would otherwise wait out a timeout for each. The daemon's
notifications go through autoscaler.notify_queue, which posts with `attempt` (no wait:
a rate limit is answered as such) from a thread of its own, and waits out a 429 there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.request import Request

import pybreaker
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from autoscaler.notify import Attachment, Message, format_duration, redact, redacted, truncate
from autoscaler.slack_check import check_channel
from common.deadline import call_within, whole_answer_s
from common.retry_after import retry_after_header, retry_after_seconds
from common.secrets import redact as redact_known
from common.secrets import remember
from common.small_files import CREDENTIAL_MAX_BYTES, read_small_text

if TYPE_CHECKING:
    from autoscaler.config.reporting import SlackConfig

logger = logging.getLogger(__name__)

SLACK_BASE_URL = "https://slack.com/api/"
# A 429 is retried once, and only when Slack asks for a wait this short or shorter.
MAX_RETRY_AFTER_S = 2.0
RETRY_AFTER_CAP_S = 60.0
"""The queue and the digest: a Retry-After longer than this is waited this long, then
the post is tried again."""
RATE_LIMITED_TRIES = 5
"""The queue and the digest: a post refused this many times for the rate is dropped."""
DEFAULT_RETRY_S = 1.0
"""The wait after a 429 that did not say how long (Slack's always does)."""
SLACK_PAUSE_S = 300.0
"""After a post Slack did not answer in time, none is tried for this long (then one is)."""
TOKEN_REFUSED = frozenset({"invalid_auth", "not_authed", "token_expired", "token_revoked"})
"""Slack's errors for a token it no longer takes: a rotated token_file is read again."""
CHANNEL_REFUSED = {
    "channel_not_found": "no such channel, or a private one the bot is not in: check slack.channel",
    "not_in_channel": "the bot is not in it: invite it (/invite @the-bot)",
    "is_archived": "the channel is archived: unarchive it, or set slack.channel to another",
}
"""chat.postMessage's errors for a channel the bot cannot post to, and what to do."""


@dataclass(frozen=True)
class RateLimited:
    """Slack's 429 to one post: how long it asks to wait (None: it did not say)."""

    retry_after_s: float | None


class _TokenStaysClient(WebClient):
    """slack-sdk's client, its token sent with the request asked for and not on to where
    a redirect points: urllib copies a request's headers to a 301/302/303's Location,
    another host's included (a `base_url` behind a proxy that redirects). A header added
    as unredirected goes with the first request only."""

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        token = req.headers.pop("Authorization", None)  # urllib's header keys: capitalize()
        if token is not None:
            req.add_unredirected_header("Authorization", token)
        return super()._perform_urllib_http_request_internal(url, req)


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
        token_file: Path | None = None,
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
        self._token_file = token_file
        remember(token)
        self._sleep = sleep
        self._timeout = timeout
        self.on_failure: Callable[[str], None] | None = None
        """Told each post dropped, with one of notify.FAILURE_REASONS (the daemon's counter)."""
        self._channel_problem: str | None = None  # Slack's error, logged once until it changes
        # retry_handlers=[]: the SDK's own connection retry would double the wait on an
        # outage; this class retries a short 429 itself and nothing else.
        self._client = _TokenStaysClient(
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
            token_file=cfg.token_file,
        )

    def check_token(self) -> str:
        """Slack's auth.test: who the token speaks as, or a ValueError saying why it cannot
        (`validate --check-backends`; never posts anything)."""
        try:
            answer = self._client.auth_test()
        except SlackApiError as err:
            data = err.response.data if isinstance(err.response.data, dict) else {}
            status = err.response.status_code
            error = redact_known(str(data.get("error")))  # an HTML page may quote the token
            raise ValueError(f"auth.test: HTTP {status}, error {error}") from None
        except Exception as err:  # a connection refused, a timeout: no token in the text
            raise ValueError(f"auth.test: {type(err).__name__}: {redact_known(str(err))}") from None
        return redact_known(f"team {answer.get('team')!s}, as {answer.get('user')!s}")

    def check_channel(self) -> str:
        """Whether Slack takes the bot's posts in its channel (autoscaler.slack_check)."""
        return check_channel(self._client, self.channel)

    def send(self, message: Message) -> bool:
        try:
            return self._send(redacted(message))
        except Exception as err:  # never let a notification break a tick
            self._warn(f"unexpected {type(err).__name__}: {err}", "refused")
            return False

    def send_with_files(self, message: Message, files: Sequence[Attachment]) -> bool:
        """The message, then the files in its thread (files_upload_v2: it needs the channel
        ID, which chat.postMessage answers with). True if all arrived. Never raises."""
        try:
            posted = self._post(redacted(message), patient=True)
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
            self._warn(f"file upload: HTTP {err.response.status_code}, error {error}", "refused")
        except Exception as err:  # SlackRequestError (the upload URL), network: never raise
            self._warn(f"file upload: {type(err).__name__}: {err}", "refused")
        return False

    def _send(self, message: Message) -> bool:
        return self._post(message) is not None

    def same_target(self, other: SlackNotifier) -> bool:
        """Posts to the same channel, as the same bot, the same way: a reload that keeps
        these may keep the sender (autoscaler.daemon_reload) and what it has queued."""
        mine = (self.channel, self._token, self._client.base_url, self._timeout)
        return mine == (other.channel, other._token, other._client.base_url, other._timeout)

    def _post(self, message: Message, *, patient: bool = False) -> tuple[str, str] | None:
        """chat.postMessage: (channel ID, ts), or None. A 429 asking a short wait is
        retried once; `patient` (the daily digest, on a thread of its own: one post a day,
        lost to a longer wait) waits out each Retry-After as the queue does."""
        answer = self.attempt(message)
        for _ in range(RATE_LIMITED_TRIES - 1 if patient else 1):
            if not isinstance(answer, RateLimited):
                break
            wait = _rate_limit_wait(answer.retry_after_s, patient)
            if wait is None:
                break
            logger.info("Slack rate-limited the post; retrying in %.1f s", wait)
            self._sleep(wait)
            answer = self.attempt(message)
        if isinstance(answer, RateLimited):
            after = answer.retry_after_s
            self._warn(
                "HTTP 429, error ratelimited"
                + (f", Retry-After {after:g} s" if after is not None else ""),
                "rate_limited",
            )
            return None
        return answer

    def attempt(self, message: Message) -> tuple[str, str] | RateLimited | None:
        """One chat.postMessage of a message already `redacted`, never retried nor waited
        for: (channel ID, ts); RateLimited on a 429, for the caller to wait out; None
        when it failed otherwise (logged). Never raises."""
        try:
            answer = self._breaker.call(
                call_within,
                whole_answer_s(self._timeout),
                lambda: self._post_message(message),
                "Slack chat.postMessage",
            )
        except pybreaker.CircuitBreakerError:
            self._warn(
                f"Slack left a post unanswered: none is tried for {self._pause()}", "unanswered"
            )
        except SlackApiError as err:
            status = err.response.status_code
            if status == 429:
                return RateLimited(_retry_after(err.response.headers))
            error = err.response.get("error") if isinstance(err.response.data, dict) else None
            if error in CHANNEL_REFUSED:
                self._channel_refused(str(error))
                return None
            detail = f"error {truncate(str(error), 200)}" if error else "no error code"
            self._warn(f"HTTP {status}, {detail}", "token" if error in TOKEN_REFUSED else "refused")
        except (TimeoutError, OSError) as err:  # URLError and socket errors are OSError
            why = "unanswered" if _unanswered(err) else "unreachable"
            self._warn(f"{type(err).__name__}: {err}", why)
        except Exception as err:  # never let a notification break its caller
            self._warn(f"unexpected {type(err).__name__}: {err}", "refused")
        else:
            self._channel_takes_posts()
            return str(answer.get("channel")), str(answer.get("ts"))
        return None

    def _channel_refused(self, error: str) -> None:
        """A channel the bot cannot post to refuses every post alike: said once (again
        when Slack's reason changes), not at each post; each is counted."""
        self.count_dropped("channel")
        if error == self._channel_problem:
            logger.debug("Slack refused a post to %s (%s); it was dropped", self.channel, error)
            return
        self._channel_problem = error
        logger.warning(
            "Slack refuses posts to %s: %s (%s); every notification is dropped until it is "
            'fixed (autoscaler_notifications_failed_total{reason="channel"} counts them; '
            "this is said again only when it changes)",
            self.channel,
            error,
            CHANNEL_REFUSED[error],
        )

    def _channel_takes_posts(self) -> None:
        if self._channel_problem is not None:
            logger.info(
                "Slack takes posts to %s again (was %s)", self.channel, self._channel_problem
            )
            self._channel_problem = None

    def count_dropped(self, reason: str) -> None:
        """The hook told, never raising into a send."""
        hook = self.on_failure
        if hook is None:
            return
        try:
            hook(reason)
        except Exception:
            logger.exception("counting a failed notification failed")

    def _post_message(self, message: Message) -> Any:
        """chat.postMessage; where Slack refuses the token and token_file now holds another
        (rotated: Slack's token rotation gives 12-hour tokens), once more with that one."""

        def post() -> Any:
            return self._client.chat_postMessage(
                channel=self.channel, text=message.text, blocks=message.blocks
            )

        try:
            return post()
        except SlackApiError as err:
            data = err.response.data if isinstance(err.response.data, dict) else {}
            if data.get("error") not in TOKEN_REFUSED or not self._token_read_again():
                raise
        return post()

    def _token_read_again(self) -> bool:
        """True where token_file holds a token other than the one in use, now used."""
        if self._token_file is None:
            return False
        try:
            token = read_slack_token_file(self._token_file)
        except ValueError:  # mid-write or removed: Slack's refusal stands
            return False
        if token == self._token:
            return False
        remember(token)
        self._token = self._client.token = token
        logger.info("Slack refused the bot token; using the one now in %s", self._token_file)
        return True

    def _pause(self) -> str:
        return format_duration(timedelta(seconds=self._breaker.reset_timeout))

    def _warn(self, reason: str, why: str) -> None:
        """A post dropped: logged, and counted under `why` (one of notify.FAILURE_REASONS)."""
        self.count_dropped(why)
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


def patient_wait(asked: float | None) -> float:
    """The wait before a rate-limited post is tried again, where it is waited out (the
    queue, the digest): Slack's Retry-After, capped at RETRY_AFTER_CAP_S."""
    return min(RETRY_AFTER_CAP_S, DEFAULT_RETRY_S if asked is None else max(asked, 0))


def _rate_limit_wait(asked: float | None, patient: bool) -> float | None:
    """How long to wait before the post is tried again; None: it is not."""
    if patient:
        return patient_wait(asked)
    return asked if asked is not None and 0 <= asked <= MAX_RETRY_AFTER_S else None


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds Slack asked to wait (common.retry_after: one reading for every caller)."""
    return retry_after_seconds(retry_after_header(headers), datetime.now(UTC))


def read_slack_token_file(path: Path) -> str:
    """The bot token in `path` (at start, and again when Slack refuses the one in use);
    a ValueError naming the file, never its content, where it cannot be read or is empty."""
    try:
        token = read_small_text(path, CREDENTIAL_MAX_BYTES).strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ValueError(f"slack.token_file {path} cannot be read: {reason}") from None
    if not token:
        raise ValueError(f"slack.token_file {path} is empty; expected a bot token")
    return token


def read_slack_token(cfg: SlackConfig, env: Mapping[str, str]) -> str:
    """The bot token from cfg.token_file if set, else from env[cfg.token_env].

    Errors name the file or variable, never the value.
    """
    if cfg.token_file is not None:
        return read_slack_token_file(cfg.token_file)
    token = env.get(cfg.token_env, "").strip()
    if not token:
        raise ValueError(
            f"Slack token missing: environment variable {cfg.token_env} is not set or empty "
            "(set it, or slack.token_file)"
        )
    return token
