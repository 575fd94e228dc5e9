"""Slack's news of a tick, queued and posted together from a thread of its own.

Slack takes about one post a second in a channel and answers more with a 429: when many
pools had news in one tick (a Prometheus outage starts every pool's "metrics failing" at
once), posting each at once from the tick lost most of them, and the tick waited on
Slack for those it sent. Now a tick only queues (`QueuedNotifier.send`); what a tick
queued is combined into as few posts as Slack's limits allow (`combine`, pure) and
posted by the sender thread, which waits out a 429's Retry-After (capped) and retries.
The backlog is bounded: past it the oldest are dropped and the next post says how many.
A stop flushes it within a short deadline (`finish`).

slack-sdk's RateLimitErrorRetryHandler is not used: it sleeps Retry-After (uncapped,
on the real clock, deaf to a stop) inside the call, where the post's deadline would
take the wait for an unanswered Slack and open the circuit breaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from autoscaler.notify import (
    SECTION_TEXT_LIMIT,
    TEXT_LIMIT,
    Attachment,
    Message,
    Notifier,
    redacted,
    truncate,
)
from autoscaler.notify_slack import RateLimited, SlackNotifier

logger = logging.getLogger(__name__)

BLOCK_LIMIT = 50
"""Slack's limit of blocks in a message; more is refused as invalid_blocks."""
BACKLOG_LIMIT = 1000
"""Messages waiting for Slack at most; past this the oldest are dropped (and said)."""
POST_GAP_S = 1.0
"""Slack's pace for a channel: about one post a second."""
RETRY_AFTER_CAP_S = 60.0
"""A Retry-After longer than this is waited this long, then the post is tried again."""
RATE_LIMITED_TRIES = 5
"""A post refused this many times for the rate is dropped (and said in the next)."""
FINISH_S = 5.0
"""At a stop (and after `run --once`), how long what is queued may still take."""
DEFAULT_RETRY_S = 1.0
"""The wait after a 429 that did not say how long (Slack's always does)."""


# ---- deciding: which posts carry which messages (pure) ---------------------------


@dataclass(frozen=True)
class Post:
    """One chat.postMessage and how many queued notifications it carries."""

    message: Message
    carries: int


def dropped_note(count: int) -> str:
    return (
        f":warning: {count} older notification{'s' if count != 1 else ''} dropped: more "
        "came than Slack took in time (the autoscaler's log has every decision)"
    )


def _parts(message: Message) -> list[str | dict[str, Any]]:
    """The message as mrkdwn text (its sections' and contexts' texts, in order: what
    Slack shows of it) that may share a section with others; a block of another kind
    is kept as it is."""
    if not message.blocks:
        return [truncate(message.text, SECTION_TEXT_LIMIT)]
    parts: list[str | dict[str, Any]] = []
    for block in message.blocks:
        text = _text_of(block)
        if text is None:
            parts.append(block)
        elif (
            parts
            and isinstance(parts[-1], str)
            and len(parts[-1]) + 1 + len(text) <= SECTION_TEXT_LIMIT
        ):
            parts[-1] = f"{parts[-1]}\n{text}"
        else:
            parts.append(truncate(text, SECTION_TEXT_LIMIT))
    return parts


def _text_of(block: dict[str, Any]) -> str | None:
    if block.get("type") == "section" and isinstance(block.get("text"), dict):
        return str(block["text"].get("text") or "") or None
    if block.get("type") == "context" and isinstance(block.get("elements"), list):
        texts = [e.get("text") for e in block["elements"] if isinstance(e, dict)]
        return " ".join(str(t) for t in texts if t) or None
    return None


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@dataclass(frozen=True)
class _Draft:
    """A post being filled: its blocks, the last section (open to more text), its text."""

    closed: tuple[dict[str, Any], ...] = ()
    open: str | None = None
    texts: tuple[str, ...] = ()
    text_length: int = -1  # of the texts joined by newlines
    carries: int = 0

    def adding(
        self, text: str, parts: Sequence[str | dict[str, Any]], carries: int = 1
    ) -> _Draft | None:
        """This draft with one more message (texts in the open section while it holds
        3,000 characters, a blank line between two messages), or None: past a limit."""
        closed, open_text = list(self.closed), self.open
        for part in parts:
            joined = isinstance(part, str) and open_text is not None
            if joined and len(str(open_text)) + 2 + len(part) <= SECTION_TEXT_LIMIT:
                open_text = f"{open_text}\n\n{part}"
                continue
            if open_text is not None:
                closed.append(_section(open_text))
                open_text = None
            if isinstance(part, str):
                open_text = part
            else:
                closed.append(part)
        length = self.text_length + 1 + len(text)
        if len(closed) + (open_text is not None) > BLOCK_LIMIT or length > TEXT_LIMIT:
            return None
        return _Draft(tuple(closed), open_text, (*self.texts, text), length, self.carries + carries)

    def post(self) -> Post:
        blocks = [*self.closed, *([_section(self.open)] if self.open is not None else [])]
        return Post(Message("\n".join(self.texts), blocks), self.carries)


def combine(messages: Sequence[Message], dropped: int = 0) -> list[Post]:
    """What was queued, in order, as few posts as Slack takes: each message's text in
    shared sections, a post split only where Slack's limits (50 blocks, 3,000 characters
    a section, 40,000 of text) force it. A lone message goes as it was built; `dropped`
    (messages lost to the backlog's bound) is said at the head of the first post. A
    message too big for a post of its own goes alone, as it was built."""
    if not messages and not dropped:
        return []
    if len(messages) == 1 and not dropped:
        return [Post(messages[0], 1)]
    posts: list[Post] = []
    empty = _Draft()
    draft = empty
    if dropped:
        note = dropped_note(dropped)
        draft = empty.adding(note, [note], carries=0) or empty
    for message in messages:
        parts = _parts(message)
        more = draft.adding(message.text, parts)
        if more is None and draft is not empty:
            posts.append(draft.post())
            more = empty.adding(message.text, parts)
        if more is None:  # too big for a post of its own: as it was built
            posts.append(Post(message, 1))
            more = empty
        draft = more
    if draft is not empty:
        posts.append(draft.post())
    return posts


# ---- acting: the queue and the thread that posts it ------------------------------


class QueuedNotifier:
    """The daemon's Slack notifier: `send` queues and returns at once (a tick never
    waits on Slack); a thread of its own, started at the first message, posts what is
    queued through `sender`. Never raises.

    `sleep` and `clock` are for tests (a fake clock the waits advance); by default a
    wait is on the queue's condition, which a stop wakes."""

    def __init__(
        self,
        sender: SlackNotifier,
        *,
        limit: int = BACKLOG_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.sender = sender
        self._limit = limit
        self._clock = clock
        self._sleep = sleep
        self._changed = threading.Condition()
        self._backlog: deque[Message] = deque()
        self._dropped = 0
        self._holds = 0
        self._in_hand = 0  # messages the thread has taken and not posted or given up yet
        self._deadline: float | None = None  # a stop's: no wait may end past it
        self._closed = False
        self._successor: QueuedNotifier | None = None  # a reload's: takes what is left here
        self._last_post = float("-inf")
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"QueuedNotifier({self.sender!r})"

    # -- what the ticks call -------------------------------------------------------

    def send(self, message: Message) -> bool:
        """Queue the message (redacted now: the queue holds no secret); True once queued."""
        try:
            message = redacted(message)
            with self._changed:
                if self._closed:
                    logger.warning(
                        "notification not sent, Slack's sender is closed: %s", message.text
                    )
                    return False
                if len(self._backlog) >= self._limit:
                    self._backlog.popleft()
                    self._dropped += 1
                    if self._dropped == 1:
                        logger.warning(
                            "Slack takes notifications slower than they come: %d are waiting; "
                            "the oldest are dropped (the next post says how many)",
                            self._limit,
                        )
                self._backlog.append(message)
                self._start()
                self._changed.notify_all()
            return True
        except Exception:  # a notifier never raises into a tick
            logger.exception("notification not queued")
            return False

    def send_with_files(self, message: Message, files: Sequence[Attachment]) -> bool:
        """The daily digest, posted at once by its own caller's thread (the daemon's
        digest thread, `autoscaler report`): beside the queue, not in it."""
        return self.sender.send_with_files(message, files)

    @contextmanager
    def gathering(self) -> Iterator[None]:
        """What is sent inside is posted once it ends, together: a tick's news of many
        pools in few posts, not the first pool's alone and the rest after."""
        with self._changed:
            self._holds += 1
        try:
            yield
        finally:
            with self._changed:
                self._holds -= 1
                self._changed.notify_all()

    @property
    def pending(self) -> int:
        """Notifications not posted or given up yet: queued, and in the sender's hand."""
        with self._changed:
            return len(self._backlog) + self._in_hand

    def close(self, timeout_s: float = FINISH_S, *, wait: bool = True) -> None:
        """No more messages; what is queued is posted within `timeout_s`, and what Slack
        has not taken by then is left, said in the log. `wait=False`: the thread drains
        on its own (a reload's sender replaced)."""
        with self._changed:
            self._closed = True  # a gathering still open is no longer waited for
            self._deadline = self._clock() + timeout_s
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and wait:
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning(
                    "stopping with %d notifications Slack has not taken yet", self.pending
                )

    def take_over(self, previous: QueuedNotifier) -> None:
        """What `previous` has queued, and its count of dropped, now queued here (each
        sent once: by this one, or by `previous` where its thread has it already; what
        that thread cannot post by its deadline comes here then)."""
        with previous._changed:
            backlog, dropped = list(previous._backlog), previous._dropped
            previous._backlog.clear()
            previous._dropped = 0
            previous._successor = self
        previous.close(FINISH_S, wait=False)
        self._put_first(backlog, dropped)

    def _put_first(self, backlog: Sequence[Message], dropped: int) -> None:
        """Messages older than any queued here, ahead of them (the backlog's bound kept)."""
        with self._changed:
            self._backlog.extendleft(reversed(backlog))
            self._dropped += dropped
            while len(self._backlog) > self._limit:
                self._backlog.popleft()
                self._dropped += 1
            if self._backlog or self._dropped:
                self._start()
            self._changed.notify_all()

    # -- the sender thread ----------------------------------------------------------

    def _start(self) -> None:
        """Called holding the condition: a thread, where none runs."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="slack-sender", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while (not self._backlog and not self._dropped) or (
                    self._holds and not self._closed
                ):
                    if self._closed and not self._backlog:
                        return
                    self._changed.wait()
                batch, dropped = list(self._backlog), self._dropped
                self._backlog.clear()
                self._dropped = 0
                self._in_hand = len(batch)
            try:
                self._post_all(combine(batch, dropped))
            except Exception:  # the thread must outlive any surprise
                logger.exception("Slack's sender failed; its batch is lost")
            finally:
                with self._changed:
                    self._in_hand = 0
                    self._changed.notify_all()

    def _post_all(self, posts: list[Post]) -> None:
        """Each post in turn; at a stop's deadline the rest are left (said), or, for a
        sender a reload replaced, handed to the new one (not begun here: posted once)."""
        for index, post in enumerate(posts):
            if not self._deliver(post):
                left, successor = posts[index:], self._successor  # set before the deadline
                if successor is not None:
                    successor._put_first([p.message for p in left], 0)
                    return
                not_sent = sum(p.carries for p in left)
                logger.warning("stopping: %d notifications not sent to Slack", not_sent)
                return

    def _deliver(self, post: Post) -> bool:
        """Post it, waiting Slack's pace and each Retry-After (capped); False where a
        stop's deadline comes first. A post refused for the rate too often is dropped,
        and said in the next."""
        for _ in range(RATE_LIMITED_TRIES):
            if not self._wait_until(self._last_post + POST_GAP_S):
                return False
            answer = self.sender.attempt(redacted(post.message))
            self._last_post = self._clock()
            if not isinstance(answer, RateLimited):
                return True  # posted, or failed for good (the sender logged why)
            asked = answer.retry_after_s
            wait = min(RETRY_AFTER_CAP_S, DEFAULT_RETRY_S if asked is None else max(asked, 0))
            logger.info("Slack rate-limited a post; retrying in %.1f s", wait)
            if not self._wait_until(self._last_post + wait):
                return False
            self._last_post = float("-inf")  # the wait Slack asked for is the pace
        logger.warning(
            "Slack refused a post %d times for the rate; its %d notifications are dropped",
            RATE_LIMITED_TRIES,
            post.carries,
        )
        with self._changed:
            self._dropped += post.carries
        return True

    def _wait_until(self, moment: float) -> bool:
        """Wait for `moment` on the clock; False, at once, where a stop's deadline is
        before it or has passed (a post is not begun past it)."""
        with self._changed:
            while True:
                now = self._clock()
                if self._deadline is not None and max(moment, now) > self._deadline:
                    return False
                if moment <= now:
                    return True
                if self._sleep is not None:
                    self._sleep(moment - now)
                else:
                    self._changed.wait(moment - now)


def gathered(notifier: Notifier) -> AbstractContextManager[None]:
    """A tick's news posted together at its end, where the notifier queues."""
    return notifier.gathering() if isinstance(notifier, QueuedNotifier) else nullcontext()


def finish(notifier: Notifier, timeout_s: float = FINISH_S) -> None:
    """At a stop and after `run --once`: what is queued posted, within `timeout_s`."""
    if isinstance(notifier, QueuedNotifier):
        notifier.close(timeout_s)
