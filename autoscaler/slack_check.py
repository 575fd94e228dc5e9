"""`validate --check-backends`: may the bot post to slack.channel?

A token auth.test takes can still have every post refused: a channel the bot was never
invited to (not_in_channel), an archived one (is_archived), a name with a typo
(channel_not_found). chat:write alone (what README asks) cannot ask Slack about a channel
without posting; conversations.info (a channel ID) and conversations.list (a name) can,
with the channels:read scope. Without it the check says the channel was not checked and
which scope it needs, rather than pass as if it had been.
"""

from __future__ import annotations

import re
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from common.secrets import redact

READ_SCOPE = "channels:read"
PAGES = 10
"""conversations.list pages of 1,000 read at most to find a channel by its name."""
_ID = re.compile(r"[CG][A-Z0-9]{8,}")


def check_channel(client: WebClient, channel: str) -> str:
    """What the bot may do in `channel`; a ValueError where Slack would refuse its posts."""
    try:
        found, scopes = _find(client, channel.removeprefix("#"))
    except SlackApiError as err:
        data = err.response.data if isinstance(err.response.data, dict) else {}
        error = redact(str(data.get("error")))
        if error == "missing_scope":
            needed = redact(str(data.get("needed") or READ_SCOPE))
            return f"channel not checked: needs the {needed} scope (chat:write cannot tell)"
        if error == "channel_not_found":
            raise ValueError(
                f"channel {channel}: channel_not_found (check slack.channel)"
            ) from None
        raise ValueError(f"channel: HTTP {err.response.status_code}, error {error}") from None
    except Exception as err:  # a connection refused, a timeout: no token in the text
        raise ValueError(f"channel: {type(err).__name__}: {redact(str(err))}") from None
    return channel_verdict(channel, found, scopes)


def channel_verdict(channel: str, found: dict[str, Any] | str, scopes: set[str]) -> str:
    """Slack's channel object judged as chat.postMessage would: archived, or the bot not
    in it (a public channel takes a non-member's post with chat:write.public), fails. A
    str: why it was not found, said rather than failed (a private channel by its name)."""
    if isinstance(found, str):
        return f"channel not checked: {found}"
    if found.get("is_archived"):
        raise ValueError(f"channel {channel} is archived: Slack refuses posts (is_archived)")
    public = not found.get("is_private")
    if not found.get("is_member") and not (public and "chat:write.public" in scopes):
        raise ValueError(
            f"channel {channel}: the bot is not in it, and Slack refuses its posts "
            "(not_in_channel): invite it (/invite @the-bot)"
        )
    return f"channel {redact(str(found.get('id')))} takes the bot's posts"


def _find(client: WebClient, name: str) -> tuple[dict[str, Any] | str, set[str]]:
    """The channel object (by ID, or by name among the public channels), or why not found,
    and the token's scopes (Slack's X-OAuth-Scopes header)."""
    if _ID.fullmatch(name):
        answer = client.conversations_info(channel=name)
        return answer["channel"], _scopes(answer.headers)
    cursor = None
    for _ in range(PAGES):
        page = client.conversations_list(
            types="public_channel", exclude_archived=False, limit=1000, cursor=cursor
        )
        for item in page.get("channels") or []:
            if item.get("name") == name:
                return item, _scopes(page.headers)
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            why = f"no public channel is named {name} (a private one is checked by its ID)"
            return why, set()
    return f"not among the first {PAGES * 1000} public channels (give its ID)", set()


def _scopes(headers: Any) -> set[str]:
    got = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    value = got.get("x-oauth-scopes")
    value = value[0] if isinstance(value, list) and value else value
    return {s.strip() for s in str(value or "").split(",") if s.strip()}
