"""An HTTP answer's body read as it arrives, given up at the deadline of its call.

urllib3 and requests time each read of the socket, not the body, and wait for each whole
chunk they ask (requests 10 KiB, iter_content what it is given): a server that sends the
body a byte at a time holds the reading thread as long as it likes. call_within stops
waiting at the deadline, but the call it left behind kept its thread and its socket
until the last byte: a thread and a socket more each call (15 Prometheus queries on a
20 KB answer sent a byte every 0.05 s: 28 of each, still there seconds later), towards
the 1,024 files the daemon may hold open. Read here, the body stops at the deadline
(common.deadline.seconds_left) and its connection is closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
import urllib3
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.response import BaseHTTPResponse

from common.deadline import DeadlineExceeded, seconds_left

PIECE_BYTES = 2**16


def body_in_time(raw: BaseHTTPResponse, piece: int = PIECE_BYTES) -> Iterator[bytes]:
    """The decoded body in pieces as they come (read1: one read of the socket each, never
    waiting for a full piece); DeadlineExceeded, the connection closed, once the call's
    deadline has passed. Without a deadline, the body as it comes."""
    while True:
        left = seconds_left()
        if left is not None and left <= 0:
            raw.close()  # half read: not back to the pool
            raise DeadlineExceeded("the answer's body did not arrive within the call's deadline")
        chunk = raw.read1(piece, decode_content=True)
        if not chunk:
            return
        yield chunk


def response_body_in_time(response: requests.Response) -> Iterator[bytes]:
    """body_in_time for a requests answer, urllib3's errors raised as requests raises them
    (Response.iter_content)."""
    try:
        yield from body_in_time(response.raw)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


def read_in_time(response: requests.Response, *args: object, **kwargs: object) -> None:
    """Session hook, run before requests reads the body (it reads it after the hooks): the
    body read here instead, within the call's deadline (unless a hook before read it)."""
    if response._content is False:
        response._content = b"".join(response_body_in_time(response))


class PoolManagerInTime:
    """A urllib3 pool manager (a client library's: the Kubernetes client's) whose answers
    come with their bodies read by body_in_time: urllib3 preloads a body with one
    whole read, and a caller's `.data` is one too. Everything else is the manager's."""

    def __init__(self, manager: urllib3.PoolManager) -> None:
        self._manager = manager

    def request(self, *args: Any, **kwargs: Any) -> BaseHTTPResponse:
        kwargs["preload_content"] = False  # read here instead, whatever was asked
        answer = self._manager.request(*args, **kwargs)
        answer._body = b"".join(body_in_time(answer))  # what `.data` gives
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)
