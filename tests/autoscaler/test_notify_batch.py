"""A tick's Slack news combined into as few posts as Slack's limits allow (pure); the
limits are those the Slack double (tests/doubles/slack_api.py) enforces as Slack does."""

from __future__ import annotations

import re

from autoscaler.notify import (
    SECTION_TEXT_LIMIT,
    TEXT_LIMIT,
    Message,
    alert_message,
    failure_started_message,
    scale_message,
)
from autoscaler.notify_batch import BLOCK_LIMIT, combine


def scaled(pool: str) -> Message:
    reasons = ["forecast needs 15 nodes", "scale up 4 → 15 at once"]
    return scale_message(pool, 4, 15, reasons, 2.1, 2.9, 1.7, dry_run=False)


def test_thirty_pools_news_goes_in_one_post() -> None:
    """A surge scales 30 pools in a tick: one post holds them all, in order, within
    Slack's limits (before, 30 posts, most refused with a 429 past the first)."""
    messages = [scaled(f"pool-{n:02d}") for n in range(30)]
    [post] = combine(messages)
    assert post.carries == 30
    blocks = post.message.blocks or []
    assert len(blocks) <= BLOCK_LIMIT
    assert all(len(block["text"]["text"]) <= SECTION_TEXT_LIMIT for block in blocks)
    text = "\n".join(block["text"]["text"] for block in blocks)
    assert re.findall(r"\*(pool-\d\d)\*", text) == [f"pool-{n:02d}" for n in range(30)]
    assert "Demand now 1.7 req/s" in text  # each message's figures line kept
    assert post.message.text == "\n".join(m.text for m in messages)


def test_a_storm_past_one_post_is_split_only_where_slacks_limits_force_it() -> None:
    """A Prometheus outage starts 1,000 pools' "metrics failing" at once: every one is
    in some post, once, in order; each post within 50 blocks, 3,000 characters a
    section and 40,000 of text; and a post ends only where the next message would
    break a limit."""
    messages = [failure_started_message(f"p{n:04d}", "metrics", "x" * 400) for n in range(1000)]
    posts = combine(messages)
    assert 1 < len(posts) < 20
    said = []
    for post in posts:
        blocks = post.message.blocks or []
        assert len(blocks) <= BLOCK_LIMIT and len(post.message.text) <= TEXT_LIMIT
        assert all(len(block["text"]["text"]) <= SECTION_TEXT_LIMIT for block in blocks)
        said += re.findall(
            r"(p\d{4}): metrics failing", "\n".join(b["text"]["text"] for b in blocks)
        )
    assert said == [f"p{n:04d}" for n in range(1000)]
    assert sum(post.carries for post in posts) == 1000
    longest = max(len(m.text) for m in messages)
    assert all(len(post.message.text) + 1 + longest > TEXT_LIMIT for post in posts[:-1])


def test_blocks_of_other_kinds_count_against_the_fifty() -> None:
    """A block that is not text (a divider) goes as it is; 60 of them need two posts."""
    messages = [Message(f"m{n}", [{"type": "divider"}]) for n in range(60)]
    posts = combine(messages)
    assert [len(post.message.blocks or []) for post in posts] == [50, 10]
    assert [post.carries for post in posts] == [50, 10]


def test_a_lone_message_goes_as_it_was_built() -> None:
    message = scaled("ocr")
    assert [(post.message, post.carries) for post in combine([message])] == [(message, 1)]
    assert combine([]) == []


def test_messages_dropped_from_the_backlog_are_said_first() -> None:
    [post] = combine([alert_message("a"), alert_message("b")], dropped=3)
    first = (post.message.blocks or [])[0]["text"]["text"]
    assert first.startswith(":warning: 3 older notifications dropped")
    assert post.message.text.startswith(":warning: 3 older notifications dropped")
    assert post.carries == 2
    [only] = combine([], dropped=1)
    assert "1 older notification dropped" in only.message.text and only.carries == 0
