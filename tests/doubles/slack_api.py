"""A local double of Slack's Web API methods chat.postMessage and the file upload, for tests.

Follows Slack's documents for the method and its rate limits
(https://docs.slack.dev/reference/methods/chat.postMessage,
https://docs.slack.dev/apis/web-api/rate-limits):

- ``POST /api/chat.postMessage`` with either an ``application/json`` body (the
  token only in ``Authorization: Bearer``) or ``application/x-www-form-urlencoded``
  (token in the header or as the ``token`` field; ``blocks`` a URL-encoded JSON
  string). ``channel`` is a channel ID or name; ``text`` and/or ``blocks``.
- Answers HTTP 200 with ``{"ok": true, "channel": <ID>, "ts": ..., "message": {...}}``
  or ``{"ok": false, "error": ...}`` with the documented codes used here:
  ``not_authed``, ``invalid_auth``, ``channel_not_found``, ``not_in_channel`` (a
  channel of ``outside``: the bot is not a member), ``is_archived`` (a channel of
  ``archived``), ``no_text``,
  ``invalid_blocks``, ``invalid_blocks_format``, ``msg_too_long``,
  ``invalid_json``, ``json_not_object``, ``invalid_form_data``; ``invalid_blocks`` for
  more than 50 blocks or a section whose text is over 3,000 characters
  (https://docs.slack.dev/reference/block-kit/blocks/section-block).
- Rate limited: HTTP 429 with a ``Retry-After`` header (seconds) and
  ``{"ok": false, "error": "ratelimited"}``, when told to fail so, or as Slack limits
  chat.postMessage (about one message a second a channel, short bursts allowed):
  ``rate_limit()`` refuses a post that comes within ``every_s`` of the last one the
  channel took, saying in Retry-After the whole seconds left (on a clock the test may
  give, as a fake one its waits advance).

``POST /api/auth.test`` (https://docs.slack.dev/reference/methods/auth.test) checks the
token the same way and answers ``{"ok": true, "url", "team", "user", "team_id",
"user_id", "bot_id"}``.

``POST /api/conversations.info`` (``channel``: an ID) and ``POST /api/conversations.list``
(``types``, ``limit``, ``cursor``; https://docs.slack.dev/reference/methods/conversations.info,
https://docs.slack.dev/reference/methods/conversations.list) need the ``channels:read``
scope: without it (the double's bot has ``scopes``, by default README's chat:write and
files:write) they answer ``{"ok": false, "error": "missing_scope", "needed":
"channels:read", "provided": ...}``; with it, the channel object (``id``, ``name``,
``is_private``, ``is_archived``, ``is_member``), or ``channel_not_found`` for an unknown
ID; the list is paged by ``next_cursor`` in ``response_metadata``. Every answer of these
carries the token's scopes in ``X-OAuth-Scopes``, as Slack's do.

The file upload (slack-sdk's ``files_upload_v2``), per Slack's documents
(https://docs.slack.dev/reference/methods/files.getUploadURLExternal,
https://docs.slack.dev/reference/methods/files.completeUploadExternal):

- ``POST /api/files.getUploadURLExternal`` with ``filename`` and ``length`` (bytes, an
  integer > 0; ``invalid_arguments`` otherwise) answers ``{"ok": true, "upload_url":
  ..., "file_id": "F..."}``;
- the file's bytes are then POSTed to ``upload_url`` (here ``/upload/v1/<file_id>`` on
  the same port, answering 200 ``OK - <length>``; an unknown URL is a 404);
- ``POST /api/files.completeUploadExternal`` with ``files`` (a JSON array of ``{"id",
  "title"}``), ``channel_id`` (a channel ID, not a name: ``channel_not_found``),
  optional ``thread_ts`` and ``initial_comment``, answers ``{"ok": true, "files":
  [{"id", "title", ...}]}``; a file not uploaded, or not of its announced length, is
  ``file_not_found``.

It records the messages and files it accepted, checks the bot token, and can be told to
fail: an HTTP 500, ``invalid_auth``, ``ratelimited``, a hang past the client's
timeout, or be down entirely (connection refused); or to be slow: ``hold()`` keeps each
chat.postMessage waiting until ``release()``, then answers it as usual. Serves on
127.0.0.1, free port.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

import pytest

from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackServer

DEFAULT_TOKEN = "xoxb-0000000000-double-bot-token-s3cr3t"
DEFAULT_CHANNELS = {"gpu-autoscaler": "C0AUTOSCALE"}
MAX_BLOCKS = 50  # Slack's limit per message
MAX_TEXT = 40_000  # Slack truncates or refuses past this
MAX_SECTION_TEXT = 3000  # a section block's text, else invalid_blocks

Failure = Literal["http_500", "invalid_auth", "ratelimited", "hang"]


@dataclass(frozen=True)
class PostedMessage:
    channel: str  # the channel ID, as Slack answers it
    text: str | None
    blocks: list[dict[str, Any]] | None
    ts: str
    content_type: str


@dataclass(frozen=True)
class SharedFile:
    file_id: str
    filename: str
    title: str | None
    content: bytes
    channel: str | None  # the channel ID it was shared in; None: private
    thread_ts: str | None
    initial_comment: str | None


@dataclass
class _Injected:
    failure: Failure
    remaining: int | None  # None: every request until cleared
    retry_after: int | str
    hang_seconds: float


class SlackApiDouble:
    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        channels: Mapping[str, str] | None = None,
    ) -> None:
        self.token = token
        self.channels = dict(DEFAULT_CHANNELS if channels is None else channels)
        self.outside: set[str] = set()  # channel IDs the bot is not a member of
        self.scopes: set[str] = {"chat:write", "files:write"}  # the bot token's
        self.archived: set[str] = set()  # channel IDs archived
        self.messages: list[PostedMessage] = []
        self.files: list[SharedFile] = []
        self._uploads: dict[str, dict[str, Any]] = {}  # file_id -> filename, length, content
        self.requests = 0  # every call to chat.postMessage, failed ones included
        self.auth_tests = 0  # answered auth.test calls
        self._lock = threading.Lock()
        self._injected: _Injected | None = None
        self._ts_counter = 0
        self._server: LoopbackServer | None = None
        self.port = 0
        self._released = threading.Event()
        self._released.set()
        self.held = 0  # posts waiting on release() now
        self._pace: tuple[float, Callable[[], float]] | None = None
        self._last_taken: dict[str, float] = {}  # channel ID -> when it last took a post

    # -- lifecycle ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> SlackApiDouble:
        """Serve (again) on the same port once it has one, so clients find it back."""
        self._server = LoopbackServer(_SlackHandler, self, self.port)
        self.port = self._server.port
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving: the port refuses connections until start() again."""
        if self._server is not None:
            self._server.stop()  # lets hanging handlers finish first
            self._server = None

    go_down = stop
    come_back = start

    def __enter__(self) -> SlackApiDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- failure injection -------------------------------------------------------

    def fail(
        self,
        failure: Failure,
        times: int | None = None,
        retry_after: int | str = 1,
        hang_seconds: float = 30.0,
    ) -> None:
        """Fail the next `times` requests (every request when None) in this way."""
        with self._lock:
            self._injected = _Injected(failure, times, retry_after, hang_seconds)

    def hold(self) -> None:
        """Keep every chat.postMessage waiting (a slow Slack) until release()."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def rate_limit(self, every_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Take at most one post a channel every `every_s` on `clock`, as Slack's
        documented limit for chat.postMessage; a post sooner is a 429 with Retry-After."""
        with self._lock:
            self._pace = (every_s, clock)

    def _too_soon(self, channel: str) -> int | None:
        """Retry-After (whole seconds) for a post to `channel` now, or None: taken."""
        with self._lock:
            if self._pace is None:
                return None
            every_s, clock = self._pace
            now, last = clock(), self._last_taken.get(channel)
            if last is not None and now - last < every_s:
                return max(1, math.ceil(every_s - (now - last)))
            self._last_taken[channel] = now
            return None

    def clear_failures(self) -> None:
        with self._lock:
            self._injected = None

    def _take_failure(self) -> _Injected | None:
        with self._lock:
            injected = self._injected
            if injected is None:
                return None
            if injected.remaining is not None:
                injected.remaining -= 1
                if injected.remaining <= 0:
                    self._injected = None
            return injected

    # -- the method itself -------------------------------------------------------

    def _next_ts(self) -> str:
        with self._lock:
            self._ts_counter += 1
            return f"{int(time.time())}.{self._ts_counter:06d}"

    def _resolve_channel(self, channel: str) -> str | None:
        if channel in self.channels.values():
            return channel
        return self.channels.get(channel.removeprefix("#"))

    def post_message(
        self, content_type: str, authorization: str | None, body: bytes, stopping: threading.Event
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one chat.postMessage call: (status, extra headers, JSON body).

        A "hang" waits on `stopping` (set when the double stops) so stop() never waits it out.
        """
        with self._lock:
            self.requests += 1
        if not self._released.is_set():
            with self._lock:
                self.held += 1
            while not self._released.wait(0.05) and not stopping.is_set():
                pass
            with self._lock:
                self.held -= 1
        injected = self._take_failure()
        if injected is not None:
            if injected.failure == "hang":
                stopping.wait(injected.hang_seconds)
                return 200, {}, {"ok": False, "error": "request_timeout"}
            if injected.failure == "http_500":
                return 500, {}, {"ok": False, "error": "internal_error"}
            if injected.failure == "ratelimited":
                headers = {"Retry-After": str(injected.retry_after)}
                return 429, headers, {"ok": False, "error": "ratelimited"}
            return 200, {}, {"ok": False, "error": "invalid_auth"}

        args, error = _parse_args(content_type, body)
        if error:
            return 200, {}, {"ok": False, "error": error}
        token = None
        if authorization and authorization.startswith("Bearer "):
            token = authorization.removeprefix("Bearer ").strip()
        elif content_type.startswith("application/x-www-form-urlencoded"):
            token = args.get("token")
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token != self.token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}

        channel = self._resolve_channel(str(args.get("channel") or ""))
        if channel is None:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if channel in self.archived:
            return 200, {}, {"ok": False, "error": "is_archived"}
        if channel in self.outside:
            return 200, {}, {"ok": False, "error": "not_in_channel"}
        retry_after = self._too_soon(channel)
        if retry_after is not None:
            return 429, {"Retry-After": str(retry_after)}, {"ok": False, "error": "ratelimited"}
        text = args.get("text")
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except json.JSONDecodeError:
                return 200, {}, {"ok": False, "error": "invalid_blocks_format"}
        if blocks is not None and not _valid_blocks(blocks):
            return 200, {}, {"ok": False, "error": "invalid_blocks"}
        if not text and not blocks:
            return 200, {}, {"ok": False, "error": "no_text"}
        if text is not None and len(str(text)) > MAX_TEXT:
            return 200, {}, {"ok": False, "error": "msg_too_long"}

        ts = self._next_ts()
        posted = PostedMessage(channel, text, blocks, ts, content_type.split(";")[0])
        with self._lock:
            self.messages.append(posted)
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B0AUTOSCALE",
            "text": text or "",
            "ts": ts,
        }
        if blocks:
            message["blocks"] = blocks
        return 200, {}, {"ok": True, "channel": channel, "ts": ts, "message": message}


class _FileMethods:
    """files.getUploadURLExternal, the upload URL and files.completeUploadExternal."""

    @staticmethod
    def get_upload_url(double: SlackApiDouble, args: dict[str, Any]) -> dict[str, Any]:
        filename = str(args.get("filename") or "")
        try:
            length = int(str(args.get("length")))
        except ValueError:
            length = 0
        if not filename or length <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        with double._lock:
            file_id = f"F{len(double._uploads) + 1:010d}"
            double._uploads[file_id] = {"filename": filename, "length": length, "content": None}
        url = f"http://127.0.0.1:{double.port}/upload/v1/{file_id}"
        return {"ok": True, "upload_url": url, "file_id": file_id}

    @staticmethod
    def receive(double: SlackApiDouble, file_id: str, content: bytes) -> bool:
        with double._lock:
            upload = double._uploads.get(file_id)
            if upload is None:
                return False
            upload["content"] = content
        return True

    @staticmethod
    def complete(double: SlackApiDouble, args: dict[str, Any]) -> dict[str, Any]:
        try:
            wanted = json.loads(str(args.get("files") or ""))
        except json.JSONDecodeError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(wanted, list) or not wanted:
            return {"ok": False, "error": "invalid_arguments"}
        channel = args.get("channel_id") or None
        if channel is not None and channel not in double.channels.values():
            return {"ok": False, "error": "channel_not_found"}  # an ID, never a name
        shared = []
        with double._lock:
            for item in wanted:
                upload = (
                    double._uploads.get(str(item.get("id"))) if isinstance(item, dict) else None
                )
                content = upload and upload["content"]
                if upload is None or content is None or len(content) != upload["length"]:
                    return {"ok": False, "error": "file_not_found"}
                shared.append(
                    SharedFile(
                        str(item["id"]),
                        upload["filename"],
                        item.get("title"),
                        content,
                        channel,
                        args.get("thread_ts") or None,
                        args.get("initial_comment") or None,
                    )
                )
            double.files.extend(shared)
        files = [
            {
                "id": f.file_id,
                "name": f.filename,
                "title": f.title,
                "size": len(f.content),
                "channels": [f.channel] if f.channel else [],
            }
            for f in shared
        ]
        return {"ok": True, "files": files}


def _parse_args(content_type: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            args = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return {}, "invalid_json"
        if not isinstance(args, dict):
            return {}, "json_not_object"
        return args, None
    if kind in ("application/x-www-form-urlencoded", ""):
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return {}, "invalid_form_data"
        return {key: values[-1] for key, values in fields.items()}, None
    return {}, "invalid_form_data"


def _valid_blocks(blocks: Any) -> bool:
    return (
        isinstance(blocks, list)
        and len(blocks) <= MAX_BLOCKS
        and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
        and all(_section_text_fits(b) for b in blocks)
    )


def _section_text_fits(block: dict[str, Any]) -> bool:
    """A section's text is 1 to 3,000 characters (Slack's Block Kit reference)."""
    text = block.get("text")
    if block["type"] != "section" or not isinstance(text, dict):
        return True
    return 0 < len(str(text.get("text") or "")) <= MAX_SECTION_TEXT


class _SlackHandler(JsonApiHandler):
    def serve(self, request: IncomingRequest) -> None:
        if request.method != "POST":  # the double serves POST only
            self.send_error(501, f"Unsupported method ({request.method!r})")
            return
        double: SlackApiDouble = self.server.double
        if request.path.startswith("/upload/v1/"):
            found = _FileMethods.receive(double, request.path.rsplit("/", 1)[-1], request.raw)
            body = f"OK - {len(request.raw)}" if found else "not found"
            self.send_bytes(200 if found else 404, body.encode(), "text/plain; charset=utf-8")
            return
        if request.path in _FILE_METHODS:
            scopes = {"X-OAuth-Scopes": ",".join(sorted(double.scopes))}
            self._answer(200, scopes, self._file_method(double, request))
            return
        if request.path != "/api/chat.postMessage":
            self._answer(404, {}, {"ok": False, "error": "unknown_method"})
            return
        status, headers, payload = double.post_message(
            request.headers.get("content-type", ""),
            request.headers.get("authorization"),
            request.raw,  # form fields or JSON: parsed by the double, not as JSON here
            self.server.stopping,
        )
        self._answer(status, headers, payload)

    def _file_method(self, double: SlackApiDouble, request: IncomingRequest) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        args, error = _parse_args(content_type, request.raw)
        if error:
            return {"ok": False, "error": error}
        authorization = request.headers.get("authorization") or ""
        token = authorization.removeprefix("Bearer ").strip() or args.get("token")
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != double.token:
            return {"ok": False, "error": "invalid_auth"}
        if request.path == "/api/auth.test":
            return _auth_test(double)
        if request.path in ("/api/conversations.info", "/api/conversations.list"):
            return _conversations(double, request.path, args)
        if request.path == "/api/files.getUploadURLExternal":
            return _FileMethods.get_upload_url(double, args)
        return _FileMethods.complete(double, args)

    def _answer(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_bytes(status, data, "application/json; charset=utf-8", headers)


_FILE_METHODS = (
    "/api/files.getUploadURLExternal",
    "/api/files.completeUploadExternal",
    "/api/auth.test",  # not a file method, but checked the same way: the token, then this
    "/api/conversations.info",
    "/api/conversations.list",
)


def _conversations(double: SlackApiDouble, path: str, args: dict[str, Any]) -> dict[str, Any]:
    """conversations.info or .list: channel objects, with channels:read only."""
    if "channels:read" not in double.scopes:
        provided = ",".join(sorted(double.scopes))
        return {
            "ok": False,
            "error": "missing_scope",
            "needed": "channels:read",
            "provided": provided,
        }
    objects = [
        {
            "id": channel_id,
            "name": name,
            "is_channel": True,
            "is_private": False,
            "is_archived": channel_id in double.archived,
            "is_member": channel_id not in double.outside,
        }
        for name, channel_id in double.channels.items()
    ]
    if path == "/api/conversations.info":
        found = [c for c in objects if c["id"] == args.get("channel")]
        if not found:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": found[0]}
    start = int(args.get("cursor") or 0)
    limit = int(args.get("limit") or 100)
    following = start + limit if start + limit < len(objects) else ""
    return {
        "ok": True,
        "channels": objects[start : start + limit],
        "response_metadata": {"next_cursor": str(following)},
    }


def _auth_test(double: SlackApiDouble) -> dict[str, Any]:
    """auth.test answers who the (already checked) token is."""
    with double._lock:
        double.auth_tests += 1
    return {
        "ok": True,
        "url": "https://double.slack.com/",
        "team": "Double Workspace",
        "user": "gpu-autoscaler",
        "team_id": "T0DOUBLE",
        "user_id": "U0AUTOSCALE",
        "bot_id": "B0AUTOSCALE",
        "is_enterprise_install": False,
    }


def make_slack_api_fixture(
    token: str = DEFAULT_TOKEN, channels: Mapping[str, str] | None = None
) -> Callable[[], Iterator[SlackApiDouble]]:
    """A pytest fixture serving a fresh double per test: `slack_api = make_slack_api_fixture()`."""

    @pytest.fixture
    def slack_api() -> Iterator[SlackApiDouble]:
        with SlackApiDouble(token=token, channels=channels) as double:
            yield double

    return slack_api
