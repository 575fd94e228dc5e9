"""Slack's news under a storm: the queue's sender thread with slack-sdk's real WebClient
against the local double of Slack's Web API (tests/doubles/slack_api.py: chat.postMessage,
its 50-block, 3,000- and 40,000-character limits, its 429 with Retry-After), on a fake
clock its waits advance."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import pytest
import yaml

from autoscaler.daemon import Daemon
from autoscaler.notify import (
    Message,
    alert_message,
    scale_message,
)
from autoscaler.notify_queue import POST_GAP_S, QueuedNotifier, finish
from autoscaler.notify_slack import RETRY_AFTER_CAP_S, SlackNotifier
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON, write_config
from tests.doubles.slack_api import DEFAULT_TOKEN, PostedMessage, SlackApiDouble
from tests.support import FakeClock, posted_within, wait_for

CHANNEL = "#gpu-autoscaler"


def scaled(pool: str) -> Message:
    reasons = ["forecast needs 15 nodes", "scale up 4 → 15 at once"]
    return scale_message(pool, 4, 15, reasons, 2.1, 2.9, 1.7, dry_run=False)


def shown(posted: PostedMessage) -> str:
    """What Slack shows of a post: its blocks' texts."""
    return "\n".join(block["text"]["text"] for block in posted.blocks or [])


def queue_for(double: SlackApiDouble, clock: FakeClock, limit: int = 1000) -> QueuedNotifier:
    sender = SlackNotifier(CHANNEL, DEFAULT_TOKEN, double.base_url, 2.0, sleep=clock.sleep)
    return QueuedNotifier(sender, limit=limit, clock=clock, sleep=clock.sleep)


# ---- the queue against the Slack double ------------------------------------------


def test_a_tick_of_thirty_pools_reaches_slack_in_one_post(tmp_path: Path) -> None:
    """The daemon ticks 30 pools that all scale, against the double of Slack's Web API
    limiting chat.postMessage to one a second a channel: every pool's news reaches
    the channel, in one post. Before, each pool posted its own at once: 30 posts, each
    after the first refused with a 429 (and dropped, or waited out one by one)."""
    pool = yaml.safe_load(write_config(tmp_path).read_text())["pools"][0]
    pools = [{**pool, "name": f"pool-{n:02d}"} for n in range(30)]
    with SlackApiDouble() as slack_api:
        slack_api.rate_limit(every_s=1.0)
        config = write_config(
            tmp_path, pools=pools, slack={"channel": CHANNEL, "base_url": slack_api.base_url}
        )
        daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(NOON))
        results = daemon.tick()
        finish(daemon.runtime.notifier)
    assert all(result.acted for result in results) and len(results) == 30
    assert len(slack_api.messages) == 1 and slack_api.requests == 1
    told = re.findall(r"\*(pool-\d\d)\* 4 → \d+ nodes", shown(slack_api.messages[0]))
    assert told == [f"pool-{n:02d}" for n in range(30)]


def test_a_tick_does_not_wait_on_slack(tmp_path: Path) -> None:
    """Slack takes the post and holds it unanswered (the double's hold, with the
    client's timeout at 30 s): the tick ends meanwhile, and its news arrives once Slack
    answers. Before, the tick waited on Slack for each message it sent (here up to a
    minute, twice the timeout, then dropped it)."""
    with SlackApiDouble() as slack_api:
        slack = {"channel": CHANNEL, "base_url": slack_api.base_url, "timeout": "30s"}
        config = write_config(tmp_path, slack=slack)
        daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(NOON))
        slack_api.hold()
        try:
            ticking = threading.Thread(target=daemon.tick)
            ticking.start()
            ticking.join(20)
            ended_before_slack_answered = not ticking.is_alive() and not slack_api.messages
        finally:
            slack_api.release()
        ticking.join(60)
        finish(daemon.runtime.notifier)
    assert ended_before_slack_answered
    [posted] = slack_api.messages
    assert "image-gen" in (posted.text or "") and "scaling up" in (posted.text or "")


def test_a_rate_limit_is_waited_out_and_the_post_retried(slack_api: SlackApiDouble) -> None:
    """Slack answers 429 with Retry-After 7 s, then 600 s: the sender waits what Slack
    asks (the second capped), and retries until Slack takes the post. Before, a
    Retry-After over 2 s dropped the message at once."""
    clock = FakeClock()
    queue = queue_for(slack_api, clock)
    slack_api.fail("ratelimited", times=1, retry_after=7)
    assert queue.send(alert_message("first"))
    posted_within(queue)
    slack_api.fail("ratelimited", times=1, retry_after=600)
    assert queue.send(alert_message("second"))
    assert posted_within(queue)
    queue.close()
    assert [m.text for m in slack_api.messages] == [
        ":rotating_light: first",
        ":rotating_light: second",
    ]
    assert slack_api.requests == 4
    assert 7.0 in clock.sleeps and RETRY_AFTER_CAP_S in clock.sleeps
    assert max(clock.sleeps) == RETRY_AFTER_CAP_S


def test_posts_keep_slacks_pace_of_one_a_second(slack_api: SlackApiDouble) -> None:
    """Two ticks' news in quick succession, against the double's rate limit on the same
    (fake) clock: the second post waits out the second Slack asks, and is not refused."""
    clock = FakeClock()
    slack_api.rate_limit(every_s=1.0, clock=clock)
    queue = queue_for(slack_api, clock)
    for tick in range(3):
        with queue.gathering():
            queue.send(alert_message(f"tick {tick} a"))
            queue.send(alert_message(f"tick {tick} b"))
        posted_within(queue)
    queue.close()
    assert len(slack_api.messages) == 3 and slack_api.requests == 3  # no 429
    assert clock.sleeps == [POST_GAP_S, POST_GAP_S]


def test_the_backlog_drops_the_oldest_and_says_so(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """More news than the backlog holds (here 5) before Slack takes any: the oldest are
    dropped, memory stays bounded, and the next post says how many went."""
    clock = FakeClock()
    queue = queue_for(slack_api, clock, limit=5)
    with caplog.at_level(logging.WARNING), queue.gathering():
        for n in range(8):
            assert queue.send(alert_message(f"news {n}"))
    queue.close()
    [posted] = slack_api.messages
    text = shown(posted)
    assert text.startswith(":warning: 3 older notifications dropped")
    assert re.findall(r"news \d", text) == [f"news {n}" for n in range(3, 8)]
    assert "the oldest are dropped" in caplog.text


def test_drops_said_by_a_refused_note_are_said_by_the_next_post(
    slack_api: SlackApiDouble,
) -> None:
    """Against the Slack double answering 429 ten times: the first post is refused 5
    times and dropped, then the sender's own note saying so is refused 5 times too. The
    next post Slack takes must still say the drop; the lone note is not tried again on
    its own (it would be for ever, while Slack refuses). Before, the refused note, which
    carries no message, set the count back to 0 and the next post said nothing."""
    clock = FakeClock()
    queue = queue_for(slack_api, clock)
    slack_api.fail("ratelimited", times=10, retry_after=1)
    assert queue.send(alert_message("first"))
    assert wait_for(lambda: slack_api.requests == 10, timeout=10)
    assert queue.send(alert_message("second"))
    assert posted_within(queue)
    queue.close()
    [posted] = slack_api.messages
    assert shown(posted).startswith(":warning: 1 older notification dropped")
    assert "second" in shown(posted)
    assert slack_api.requests == 11


def test_a_stop_flushes_what_is_queued(slack_api: SlackApiDouble) -> None:
    """A stop while a tick's news is still gathered (the tick in flight at SIGTERM): it
    is posted before close returns, at Slack's pace; nothing is queued after."""
    clock = FakeClock()
    slack_api.rate_limit(every_s=1.0, clock=clock)
    queue = queue_for(slack_api, clock)
    queue.send(alert_message("before the tick"))
    posted_within(queue)
    with queue.gathering():
        queue.send(alert_message("in the tick"))
        queue.close()
    assert [shown(m) for m in slack_api.messages] == [
        ":rotating_light: before the tick",
        ":rotating_light: in the tick",
    ]
    assert queue.send(alert_message("after")) is False


def test_a_stop_does_not_wait_out_a_long_retry_after(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack asks for 30 s at a stop with a 5 s deadline: the wait is not begun, the
    news left is said in the log, and close returns."""
    clock = FakeClock()
    queue = queue_for(slack_api, clock)
    slack_api.fail("ratelimited", retry_after=30)
    with caplog.at_level(logging.WARNING), queue.gathering():
        queue.send(alert_message("one"))
        queue.send(alert_message("two"))
        queue.close(timeout_s=5)
    assert slack_api.messages == [] and slack_api.requests == 1
    assert clock.sleeps == []
    assert "stopping: 2 notifications not sent to Slack" in caplog.text


def test_a_stop_does_not_hang_on_a_slack_that_does_not_answer(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack holds the post unanswered: close returns at its deadline, saying news was
    left behind, and the stop goes on."""
    clock = FakeClock()
    queue = queue_for(slack_api, clock)
    slack_api.hold()
    try:
        queue.send(alert_message("held"))
        with caplog.at_level(logging.WARNING):
            queue.close(timeout_s=0.2)
    finally:
        slack_api.release()
    assert "not taken yet" in caplog.text


def test_queued_messages_are_redacted(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """A token quoted in a message (an error body) reaches neither Slack nor the log."""
    clock = FakeClock()
    queue = queue_for(slack_api, clock)
    caplog.set_level(logging.DEBUG)
    with queue.gathering():
        queue.send(alert_message(f"backend said: bad token {DEFAULT_TOKEN}"))
        queue.send(alert_message("second"))
    queue.close()
    said = "".join((m.text or "") + shown(m) for m in slack_api.messages)
    assert "[redacted]" in said and DEFAULT_TOKEN not in said + caplog.text


def test_news_between_ticks_is_posted_on_its_own(slack_api: SlackApiDouble) -> None:
    """Sent outside a tick (a reload's alert, a tick left behind that finishes late):
    posted on its own, as it was built, without waiting for a tick to end."""
    clock = FakeClock()
    queue = queue_for(slack_api, clock)
    queue.send(alert_message("between ticks"))
    assert posted_within(queue)
    assert [shown(m) for m in slack_api.messages] == [":rotating_light: between ticks"]
    queue.close()


def test_a_replaced_sender_hands_what_it_could_not_post_in_time_to_its_successor(
    slack_api: SlackApiDouble,
) -> None:
    """A reload that changes Slack's settings: the new sender takes the queue over and the
    old one has FINISH_S for what it holds. Here the old one holds two posts (60 blocks)
    and Slack answers the first past that deadline: before, the second was dropped
    ("stopping: 1 notifications not sent"); now the new sender posts it, once."""
    clock = FakeClock()
    old, new = queue_for(slack_api, clock), queue_for(slack_api, clock)
    wide = [Message(f"wide {n}", [{"type": "divider"}] * 30) for n in range(2)]
    slack_api.hold()
    try:
        with old.gathering():
            for message in wide:
                old.send(message)
        for _ in range(200):
            if slack_api.held:
                break
            threading.Event().wait(0.01)
        new.take_over(old)
        clock.now += 10  # the old one's deadline passes while Slack holds its first post
    finally:
        slack_api.release()
    assert old._thread is not None
    old._thread.join(10)
    assert posted_within(new)
    new.close()
    assert sorted(m.text for m in slack_api.messages) == ["wide 0", "wide 1"]


def test_news_sent_to_a_replaced_sender_goes_to_its_successor(slack_api: SlackApiDouble) -> None:
    """A pool's tick of the config a reload replaced, still running past its deadline,
    tells the sender it was given: once the new one has taken over, that news is posted
    by the new one. Before, the old one, closed, logged it and dropped it."""
    clock = FakeClock()
    old, new = queue_for(slack_api, clock), queue_for(slack_api, clock)
    new.take_over(old)
    assert old.send(alert_message("late news of the old config"))
    assert posted_within(new)
    new.close()
    assert [m.text for m in slack_api.messages] == [":rotating_light: late news of the old config"]
