"""A tick's Slack news as few posts as Slack takes (pure: no I/O, no clock).

Many pools' news of one tick, each a message of its own, is put into shared sections of
as few chat.postMessage calls as Slack's limits allow (50 blocks a message, 3,000
characters a section, 40,000 of text); the queue that posts them is
autoscaler.notify_queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from autoscaler.notify import SECTION_TEXT_LIMIT, TEXT_LIMIT, Message, section_block, truncate

BLOCK_LIMIT = 50
"""Slack's limit of blocks in a message; more is refused as invalid_blocks."""


@dataclass(frozen=True)
class Post:
    """One chat.postMessage, how many queued notifications it carries, and how many
    dropped ones its note says (kept where the post is dropped too)."""

    message: Message
    carries: int
    says_dropped: int = 0


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
                closed.append(section_block(open_text))
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
        blocks = [*self.closed, *([section_block(self.open)] if self.open is not None else [])]
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
    if dropped:  # the note heads the first post
        posts[0] = replace(posts[0], says_dropped=dropped)
    return posts
