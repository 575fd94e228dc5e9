"""Slack's news of a tick, queued and posted together from a thread of its own.

Slack takes about one post a second in a channel and answers more with a 429: when many
pools had news in one tick (a Prometheus outage starts every pool's "metrics failing" at
once), posting each at once from the tick lost most of them, and the tick waited on
Slack for those it sent. Now a tick only queues (`QueuedNotifier.send`); what a tick
queued is combined into as few posts as Slack's limits allow (autoscaler.notify_batch) and
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

from autoscaler.notify import Attachment, Message, Notifier, redacted
from autoscaler.notify_batch import Post, combine
from autoscaler.notify_slack import (
    RATE_LIMITED_TRIES,
    RateLimited,
    SlackNotifier,
    patient_wait,
)

logger = logging.getLogger(__name__)

BACKLOG_LIMIT = 1000
"""Messages waiting for Slack at most; past this the oldest are dropped (and said)."""
POST_GAP_S = 1.0
"""Slack's pace for a channel: about one post a second."""
FINISH_S = 5.0
"""At a stop (and after `run --once`), how long what is queued may still take."""


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
        self._note_refused = False  # the lone note of drops was dropped: said with news
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
        """Queue the message (redacted now: the queue holds no secret); True once queued.
        Closed by a reload that replaced it, it hands the message to its successor (a
        tick of the last config, still running past its deadline)."""
        try:
            message = redacted(message)
            with self._changed:
                successor = self._successor if self._closed else None
                if successor is None:
                    return self._queue(message)
            return successor.send(message)  # outside this one's lock
        except Exception:  # a notifier never raises into a tick
            logger.exception("notification not queued")
            return False

    def _queue(self, message: Message) -> bool:
        """Called holding the condition."""
        if self._closed:
            logger.warning("notification not sent, Slack's sender is closed: %s", message.text)
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
                while (not self._backlog and (not self._dropped or self._note_refused)) or (
                    self._holds and not self._closed
                ):
                    if self._closed and not self._backlog:
                        return
                    self._changed.wait()
                batch, dropped = list(self._backlog), self._dropped
                self._backlog.clear()
                self._dropped, self._note_refused = 0, False
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
            wait = patient_wait(answer.retry_after_s)
            logger.info("Slack rate-limited a post; retrying in %.1f s", wait)
            if not self._wait_until(self._last_post + wait):
                return False
            self._last_post = float("-inf")  # the wait Slack asked for is the pace
        logger.warning(
            "Slack refused a post %d times for the rate; its %d notifications are dropped",
            RATE_LIMITED_TRIES,
            post.carries,
        )
        self.sender.count_dropped("rate_limited")
        with self._changed:  # what its note said is said by the next post Slack takes
            self._dropped += post.carries + post.says_dropped
            self._note_refused = post.carries == 0  # not tried alone again
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


def count_failures(notifier: Notifier, hook: Callable[[str], None]) -> None:
    """Each Slack post dropped, told to `hook` with its reason (the daemon's counter)."""
    if isinstance(notifier, QueuedNotifier):
        notifier.sender.on_failure = hook


def gathered(notifier: Notifier) -> AbstractContextManager[None]:
    """A tick's news posted together at its end, where the notifier queues."""
    return notifier.gathering() if isinstance(notifier, QueuedNotifier) else nullcontext()


def finish(notifier: Notifier, timeout_s: float = FINISH_S) -> None:
    """At a stop and after `run --once`: what is queued posted, within `timeout_s`."""
    if isinstance(notifier, QueuedNotifier):
        notifier.close(timeout_s)
