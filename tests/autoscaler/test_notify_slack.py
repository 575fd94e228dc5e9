"""slack-sdk's real WebClient against a local double of Slack's Web API (chat.postMessage,
files, auth.test: tests/doubles/slack_api.py), through autoscaler.notify_slack."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler.config.reporting import SlackConfig
from autoscaler.notify import FAILURE_REASONS, Attachment, Message, scale_message
from autoscaler.notify_slack import RateLimited, SlackNotifier
from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble
from tests.doubles.slack_api import (
    DEFAULT_TOKEN,
    Failure,
    SlackApiDouble,
    make_slack_api_fixture,
)

slack_api = make_slack_api_fixture()
CHANNEL = "#gpu-autoscaler"
CHANNEL_ID = "C0AUTOSCALE"


def notifier_for(
    double: SlackApiDouble,
    timeout: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SlackNotifier:
    return SlackNotifier(CHANNEL, DEFAULT_TOKEN, double.base_url, timeout, sleep=sleep)


def test_delivers_text_and_blocks_to_the_channel(slack_api: SlackApiDouble) -> None:
    message = scale_message("gpu-ocr", 4, 7, ["forecast"], 600.0, 700.0, 400.0, dry_run=False)
    assert notifier_for(slack_api).send(message) is True
    [posted] = slack_api.messages
    assert posted.channel == CHANNEL_ID
    assert posted.text == message.text
    assert posted.blocks == message.blocks
    assert posted.content_type == "application/json"


def test_wrong_token_is_refused_without_exception(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "xoxb-wrong-token-value-987"
    notifier = SlackNotifier(CHANNEL, wrong, base_url=slack_api.base_url, timeout=2)
    with caplog.at_level(logging.DEBUG):
        assert notifier.send(Message("hi")) is False
    assert slack_api.messages == []
    assert "invalid_auth" in caplog.text
    assert wrong not in caplog.text


def test_unknown_channel_is_reported(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SlackNotifier("#nope", DEFAULT_TOKEN, base_url=slack_api.base_url, timeout=2)
    with caplog.at_level(logging.WARNING):
        assert notifier.send(Message("hi")) is False
    assert "channel_not_found" in caplog.text


def test_a_channel_the_bot_cannot_post_to_is_logged_once_and_counted(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """slack-sdk against the Slack double: chat.postMessage answers not_in_channel while
    the bot is not a member and is_archived for an archived channel (Slack's documented
    errors). Each post dropped is counted; the trouble is logged once, again when it
    changes, and its end once."""
    counted: list[str] = []
    notifier = notifier_for(slack_api)
    notifier.on_failure = counted.append
    slack_api.outside.add(CHANNEL_ID)
    with caplog.at_level(logging.INFO, logger="autoscaler.notify_slack"):
        for _ in range(4):
            assert notifier.send(Message("hi")) is False
        slack_api.outside.clear()
        assert notifier.send(Message("back")) is True
        slack_api.archived.add(CHANNEL_ID)
        assert notifier.send(Message("gone")) is False
        assert notifier.send(Message("gone")) is False
    assert counted == ["channel"] * 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "not_in_channel" in warnings[0] and "invite" in warnings[0]
    assert CHANNEL in warnings[0] and "is_archived" in warnings[1]
    assert sum("takes posts to" in r.getMessage() for r in caplog.records) == 1


def test_each_post_dropped_is_counted_by_a_bounded_reason(slack_api: SlackApiDouble) -> None:
    """The reason is one of a few values whatever Slack answers (its error codes vary)."""
    counted: list[str] = []
    notifier = notifier_for(slack_api)
    notifier.on_failure = counted.append
    for failure in ("http_500", "invalid_auth"):
        slack_api.fail(failure, times=1)  # type: ignore[arg-type]
        assert notifier.send(Message("hi")) is False
    assert counted == ["refused", "token"]
    assert set(counted) <= set(FAILURE_REASONS)


@pytest.mark.parametrize(
    "channel, scopes, outside, archived, says",
    [
        (CHANNEL, {"channels:read"}, False, False, "channel C0AUTOSCALE takes the bot's posts"),
        (CHANNEL_ID, {"channels:read"}, False, False, "channel C0AUTOSCALE takes the bot's"),
        (CHANNEL, {"channels:read", "chat:write.public"}, True, False, "takes the bot's posts"),
        (CHANNEL, {"channels:read"}, True, False, "ValueError: channel #gpu-autoscaler: the bot"),
        (CHANNEL_ID, {"channels:read"}, False, True, "ValueError: channel C0AUTOSCALE is archived"),
        ("C0NOSUCHCHAN", {"channels:read"}, False, False, "ValueError: channel C0NOSUCHCHAN: cha"),
        ("#gpu-autoscalr", {"channels:read"}, False, False, "not checked: no public channel is"),
        (CHANNEL, set(), True, False, "channel not checked: needs the channels:read scope"),
    ],
)
def test_the_channel_check_says_whether_slack_takes_the_bots_posts(
    slack_api: SlackApiDouble,
    channel: str,
    scopes: set[str],
    outside: bool,
    archived: bool,
    says: str,
) -> None:
    """conversations.info (an ID) or conversations.list (a name) as Slack documents them,
    answered by the double: what chat.postMessage would refuse fails the check; without
    channels:read it says it did not check, never that the channel is fine."""
    slack_api.scopes |= scopes
    if outside:
        slack_api.outside.add(CHANNEL_ID)
    if archived:
        slack_api.archived.add(CHANNEL_ID)
    notifier = SlackNotifier(channel, DEFAULT_TOKEN, slack_api.base_url, 2.0)
    try:
        found = notifier.check_channel()
    except ValueError as err:
        found = f"ValueError: {err}"
    assert found.startswith(says) or says in found, found
    assert slack_api.messages == []


@pytest.mark.parametrize("failure", ["http_500", "invalid_auth"])
def test_server_errors_return_false_and_never_leak_the_token(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture, failure: Failure
) -> None:
    slack_api.fail(failure)
    with caplog.at_level(logging.DEBUG):
        assert notifier_for(slack_api).send(Message("scaled")) is False
    assert slack_api.messages == []
    assert slack_api.requests == 1  # no retry on these
    assert "failed" in caplog.text
    assert DEFAULT_TOKEN not in caplog.text


def test_slack_down_returns_false_quickly(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = notifier_for(slack_api)
    slack_api.go_down()
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        assert notifier.send(Message("scaled")) is False
    assert time.monotonic() - started < 0.4  # no connection retry with backoff
    assert DEFAULT_TOKEN not in caplog.text
    slack_api.come_back()
    assert notifier.send(Message("again")) is True
    assert [m.text for m in slack_api.messages] == ["again"]


def test_a_hanging_slack_is_bounded_by_the_timeout(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    slack_api.fail("hang", times=1)
    notifier = notifier_for(slack_api, timeout=0.3)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        assert notifier.send(Message("scaled")) is False
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.5
    assert slack_api.requests == 1
    assert "timed out" in caplog.text.lower()
    assert DEFAULT_TOKEN not in caplog.text


def test_after_a_post_slack_left_unanswered_none_is_tried_for_a_pause(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """Against the double of the Slack Web API: Slack takes a post and never answers. The
    post waits out its deadline; the messages after it are dropped at once, not each after
    its own deadline (a tick telling the news of 20 pools held for 20 x 2 timeouts, past
    systemd's watchdog); after the pause one post is tried again, and delivered."""
    slack_api.fail("hang", times=1, hang_seconds=5)
    notifier = SlackNotifier(CHANNEL, DEFAULT_TOKEN, slack_api.base_url, 0.2, pause_s=0.5)
    with caplog.at_level(logging.WARNING):
        assert notifier.send(Message("first")) is False
        assert [notifier.send(Message(f"then {n}")) for n in range(5)] == [False] * 5
    assert slack_api.requests == 1  # none of the five reached Slack
    assert caplog.text.count("none is tried for") == 5
    time.sleep(0.6)
    assert notifier.send(Message("after the pause")) is True
    assert [m.text for m in slack_api.messages] == ["after the pause"]


def test_rate_limit_with_short_retry_after_is_retried_once(slack_api: SlackApiDouble) -> None:
    waits: list[float] = []
    slack_api.fail("ratelimited", times=1, retry_after=1)
    assert notifier_for(slack_api, sleep=waits.append).send(Message("scaled")) is True
    assert waits == [1.0]
    assert slack_api.requests == 2
    assert [m.text for m in slack_api.messages] == ["scaled"]


def test_rate_limit_twice_gives_up_after_one_retry(slack_api: SlackApiDouble) -> None:
    waits: list[float] = []
    slack_api.fail("ratelimited", retry_after=1)
    assert notifier_for(slack_api, sleep=waits.append).send(Message("scaled")) is False
    assert waits == [1.0]
    assert slack_api.requests == 2


@pytest.mark.parametrize(("header", "asked"), [("7", 7.0), ("-5", None), ("soon", None)])
def test_a_rate_limit_says_the_wait_slack_asked_for(
    slack_api: SlackApiDouble, header: str, asked: float | None
) -> None:
    """One reading of Retry-After for Slack and the backends (common.retry_after): a
    negative or garbled one is no request (the queue then waits its own default), where
    Slack's own parser read "-5" as a wait of none."""
    slack_api.fail("ratelimited", times=1, retry_after=header)
    assert notifier_for(slack_api).attempt(Message("scaled")) == RateLimited(asked)


def test_rate_limit_with_long_retry_after_is_not_waited_for(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []
    slack_api.fail("ratelimited", times=1, retry_after=30)
    with caplog.at_level(logging.WARNING):
        assert notifier_for(slack_api, sleep=waits.append).send(Message("scaled")) is False
    assert waits == []
    assert slack_api.requests == 1
    assert "ratelimited" in caplog.text and "Retry-After 30" in caplog.text


@pytest.mark.parametrize(("header", "waited"), [("5", 5.0), ("120", 60.0)])
def test_the_digest_waits_out_a_rate_limit_as_the_queue_does(
    slack_api: SlackApiDouble, header: str, waited: float
) -> None:
    """The daily digest goes beside the queue (its own thread, or `report --slack`), and
    the double of Slack's chat.postMessage answers its post 429 twice, asking 5 s (or
    more than the 60 s cap). Only a wait of 2 s or less was retried, once: the day's
    digest was dropped. It now waits each Retry-After out, as the queue's posts do
    (capped at 60 s, 5 tries), and the digest with its PNG in the thread arrives."""
    waits: list[float] = []
    slack_api.fail("ratelimited", times=2, retry_after=header)
    png = Attachment("ocr-20261206.png", "ocr: demand, capacity and nodes", b"\x89PNG tiny")
    notifier = notifier_for(slack_api, sleep=waits.append)
    assert notifier.send_with_files(Message("Daily digest"), [png]) is True
    assert waits == [waited, waited]
    assert [m.text for m in slack_api.messages] == ["Daily digest"]
    [shared] = slack_api.files
    assert shared.thread_ts == slack_api.messages[0].ts


def test_the_digest_refused_for_the_rate_five_times_is_dropped_and_said(
    slack_api: SlackApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack's double answers every post 429: the digest gives up after 5 tries (each
    Retry-After waited), said with the wait Slack asked, and never waits for ever."""
    waits: list[float] = []
    slack_api.fail("ratelimited", retry_after=3)
    notifier = notifier_for(slack_api, sleep=waits.append)
    with caplog.at_level(logging.WARNING):
        assert notifier.send_with_files(Message("Daily digest"), []) is False
    assert waits == [3.0] * 4 and slack_api.requests == 5
    assert "ratelimited" in caplog.text and "Retry-After 3 s" in caplog.text


def test_repr_hides_the_token(slack_api: SlackApiDouble) -> None:
    notifier = notifier_for(slack_api)
    assert DEFAULT_TOKEN not in repr(notifier)
    assert DEFAULT_TOKEN not in str(notifier)


# ---- the double itself, for the form-encoded request shape ----------------------


def _post(url: str, body: bytes, content_type: str, auth: str | None = None) -> dict:
    headers = {"Content-Type": content_type}
    if auth:
        headers["Authorization"] = auth
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())


def test_double_accepts_form_encoding_with_token_field(slack_api: SlackApiDouble) -> None:
    url = slack_api.base_url + "chat.postMessage"
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}])
    body = urllib.parse.urlencode(
        {"token": DEFAULT_TOKEN, "channel": CHANNEL_ID, "text": "hi", "blocks": blocks}
    ).encode()
    answer = _post(url, body, "application/x-www-form-urlencoded")
    assert answer["ok"] is True and answer["channel"] == CHANNEL_ID
    assert answer["message"]["text"] == "hi" and answer["ts"]
    assert slack_api.messages[0].blocks == json.loads(blocks)
    no_auth = _post(url, json.dumps({"channel": CHANNEL_ID}).encode(), "application/json")
    assert no_auth == {"ok": False, "error": "not_authed"}
    empty = _post(
        url,
        json.dumps({"channel": CHANNEL_ID}).encode(),
        "application/json",
        "Bearer " + DEFAULT_TOKEN,
    )
    assert empty == {"ok": False, "error": "no_text"}


# ---- token sources --------------------------------------------------------------


def test_from_config_reads_the_token_from_env(slack_api: SlackApiDouble) -> None:
    cfg = SlackConfig(channel=CHANNEL, token_env="MY_SLACK", base_url=slack_api.base_url)
    notifier = SlackNotifier.from_config(cfg, {"MY_SLACK": DEFAULT_TOKEN})
    assert notifier.send(Message("from env")) is True
    assert slack_api.messages[0].text == "from env"


def test_from_config_prefers_the_token_file(slack_api: SlackApiDouble, tmp_path: Path) -> None:
    token_file = tmp_path / "slack-token"
    token_file.write_text(DEFAULT_TOKEN + "\n")
    cfg = SlackConfig(
        channel=CHANNEL, token_file=token_file, base_url=slack_api.base_url, timeout="1s"
    )
    notifier = SlackNotifier.from_config(cfg, {"SLACK_BOT_TOKEN": "xoxb-not-this-one"})
    assert notifier.send(Message("from file")) is True


def test_a_token_file_rotated_under_the_sender_is_read_again(
    slack_api: SlackApiDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """slack.token_file rewritten with a new token (Slack's token rotation makes bot
    tokens that expire after 12 hours; a refresher writes the next one): the sender kept
    the token it read at start, so from then on every post was refused and dropped, the
    daemon's alerts with them, until a restart. A refused token is now read again from
    the file and the post made once more with it."""
    old, new = "xoxb-7Qd2Lm9Rt4Wz-old", "xoxb-3Hs8Kc1Vn6Pj-new"
    token_file = tmp_path / "slack-token"
    token_file.write_text(old + "\n")
    slack_api.token = old
    cfg = SlackConfig(
        channel=CHANNEL, token_file=token_file, base_url=slack_api.base_url, timeout="1s"
    )
    notifier = SlackNotifier.from_config(cfg, {})
    assert notifier.send(Message("before")) is True
    token_file.write_text(new + "\n")
    slack_api.token = new  # the old one is refused from now on
    with caplog.at_level(logging.DEBUG):
        assert notifier.send(Message("after")) is True
    assert [m.text for m in slack_api.messages] == ["before", "after"]
    assert old not in caplog.text and new not in caplog.text


def test_missing_token_names_the_variable_not_a_value() -> None:
    cfg = SlackConfig(channel=CHANNEL, token_env="OPS_SLACK_TOKEN")
    with pytest.raises(ValueError, match="OPS_SLACK_TOKEN"):
        SlackNotifier.from_config(cfg, {"OTHER": "xoxb-unrelated"})


def test_unreadable_token_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    cfg = SlackConfig(channel=CHANNEL, token_file=missing)
    with pytest.raises(ValueError, match="nope") as info:
        SlackNotifier.from_config(cfg, {"SLACK_BOT_TOKEN": DEFAULT_TOKEN})
    assert DEFAULT_TOKEN not in str(info.value)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        SlackNotifier.from_config(SlackConfig(channel=CHANNEL, token_file=empty), {})


def test_a_token_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """Reading a FIFO waits for a writer, maybe for ever (a start or a reload held)."""
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"token cannot be read: not a regular file \(a FIFO\)"):
        SlackNotifier.from_config(SlackConfig(channel=CHANNEL, token_file=fifo), {})


def test_a_digest_of_many_pools_fits_slacks_text_limit(slack_api: SlackApiDouble) -> None:
    """A daily digest of 90 pools (~500 characters each) against the double of Slack's
    documented chat.postMessage, which refuses a text over 40,000 characters with
    msg_too_long: the text is cut to the limit and the digest arrives."""
    import dataclasses

    from autoscaler.daily_report import DayReport, report_message
    from autoscaler.digest import pool_digest
    from tests.autoscaler.test_digest import DAY, END, SETTINGS, day_demand, day_records

    day = pool_digest("ocr", day_records(), day_demand(), SETTINGS, DAY, END)
    pools = [dataclasses.replace(day, pool=f"inference-pool-{i:03d}") for i in range(90)]
    message = report_message(DayReport(DAY, END, pools, [], 0), "EUR")
    assert len(message.text) > 40_000
    assert notifier_for(slack_api).send_with_files(message, []) is True
    [posted] = slack_api.messages
    assert posted.text is not None and len(posted.text) <= 40_000
    assert posted.text.startswith("Daily digest") and posted.text.endswith("…")


@pytest.mark.parametrize("count", [90, 400])
def test_a_digest_of_many_pools_shows_every_pool_and_its_notes(
    slack_api: SlackApiDouble, count: int
) -> None:
    """Slack shows a message's blocks, its text only in notifications: a digest of many
    pools (against the double of chat.postMessage, which refuses more than 50 blocks or a
    section over 3,000 characters) shows each pool in its blocks, as many as they hold
    and the rest counted, and what the digest must say of its figures (demand from the
    decision log, pools without a line). Before, the blocks were cut at 50, every pool
    past the 49th missing without a word, and the notes were in the text alone."""
    import dataclasses
    import re

    from autoscaler.daily_report import DayReport, report_message
    from autoscaler.digest import pool_digest
    from tests.autoscaler.test_digest import DAY, END, SETTINGS, day_demand, day_records

    day = pool_digest("ocr", day_records(), day_demand(), SETTINGS, DAY, END)
    names = [f"inference-pool-{i:03d}" for i in range(count)]
    pools = [dataclasses.replace(day, pool=name) for name in names]
    report = DayReport(DAY, END, pools, ["inference-pool-007"], 2, "log:3: torn", "pool-x")
    assert notifier_for(slack_api).send_with_files(report_message(report, "EUR"), []) is True
    [posted] = slack_api.messages
    shown = "\n".join(block["text"]["text"] for block in posted.blocks or [])
    listed = [name for name in names if f"{name}: " in shown]
    assert listed == names[: len(listed)]
    more = re.search(r"(\d+) more pools past Slack's 50 blocks", shown)
    assert len(listed) + (int(more.group(1)) if more else 0) == count
    assert (more is None) == (count == 90)
    assert "demand from the decision log (metrics unavailable): inference-pool-007" in shown
    assert "no decision-log lines in this span for pool-x" in shown
    assert "2 unreadable decision-log lines skipped (first: log:3: torn)" in shown


def test_a_digest_pings_no_one_with_what_it_quotes(slack_api: SlackApiDouble) -> None:
    """An override's reason and an unreadable decision-log line are people's text, quoted
    in the digest: '<!channel>' there must reach Slack (the double of chat.postMessage)
    escaped in the text as in the blocks, never as a mention of the whole channel.
    Before, the text (what notifications show) carried it as written."""
    import dataclasses

    from autoscaler.daily_report import DayReport, report_message
    from autoscaler.digest import pool_digest
    from tests.autoscaler.test_digest import DAY, END, SETTINGS, day_demand, day_records

    day = pool_digest("ocr", day_records(), day_demand(), SETTINGS, DAY, END)
    day = dataclasses.replace(day, overrides={"<!channel> launch": 3})
    report = DayReport(DAY, END, [day], [], 1, "log:3: time: '<@U024BE7LH>' is not an ISO time")
    assert notifier_for(slack_api).send(report_message(report, "EUR")) is True
    [posted] = slack_api.messages
    for said in (posted.text or "", json.dumps(posted.blocks)):
        assert "<!channel>" not in said and "<@U024BE7LH>" not in said
    assert "'&lt;!channel&gt; launch' (3 ticks)" in (posted.text or "")


class _Recording(JsonApiHandler):
    """Records every request; answers as Slack does to a post it accepted."""

    def serve(self, request: IncomingRequest) -> None:
        self.server.double.record(request)
        self.send_bytes(200, b'{"ok": true, "channel": "C1", "ts": "1.2"}', "application/json")


class _Redirecting(JsonApiHandler):
    """Answers every request with the double's `code` to the same path on its `target`."""

    def serve(self, request: IncomingRequest) -> None:
        double = self.server.double
        self.send_bytes(double.code, b"", "text/plain", {"Location": double.target + self.path})


@pytest.mark.parametrize("code", [301, 302, 303])
def test_the_token_does_not_follow_a_redirect_to_another_host(code: int) -> None:
    """A base_url answering a redirect to another host (`localhost`, not 127.0.0.1): urllib
    follows a POST's 301/302/303 as a GET with the request's headers, and the bot token
    went with it. Now it is sent to the base_url only."""
    with LoopbackDouble(_Recording) as elsewhere, LoopbackDouble(_Redirecting) as redirecting:
        redirecting.target = elsewhere.url.replace("127.0.0.1", "localhost")  # type: ignore[attr-defined]
        redirecting.code = code  # type: ignore[attr-defined]
        notifier = SlackNotifier(CHANNEL, DEFAULT_TOKEN, f"{redirecting.url}/api/", 2.0)
        notifier.send(Message("scaled"))
    assert len(elsewhere.requests) == 1  # the redirect was followed, as urllib does
    headers = elsewhere.requests[0].headers
    assert "authorization" not in headers
    assert not any(DEFAULT_TOKEN in value for value in headers.values())
