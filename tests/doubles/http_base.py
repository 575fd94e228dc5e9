"""What the HTTP doubles share: a loopback server served from a daemon thread, a quiet
HTTP/1.1 handler that parses each request (path, query, lower-case headers, JSON body) and
writes JSON, plain-text or raw-byte replies, and a base for a double's lifecycle."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

RecordT = TypeVar("RecordT")  # what a double records of each request


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    """Parsed JSON, the text when it is not JSON, or None when empty."""
    raw: bytes = field(default=b"", repr=False)
    """The body as sent, for doubles that parse it their own way (form fields)."""


class LoopbackServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer on 127.0.0.1 that serves from a daemon thread once started.

    `double` is the object the handlers answer for (`self.server.double`). `stopping` is
    set before shutdown, so a handler stalling on it (a scripted hang) lets stop() finish.
    Port 0 takes a free port; a given port lets a double come back where it was.
    """

    daemon_threads = True

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        double: Any,
        port: int = 0,
        *,
        quiet_errors: bool = False,
    ) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.double = double
        self.quiet_errors = quiet_errors  # no traceback when a client hangs up mid-answer
        self.stopping = threading.Event()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Release stalled handlers, stop serving and free the port."""
        self.stopping.set()
        if self._thread.ident is not None:  # shutdown() waits forever on a loop never run
            self.shutdown()
        self.server_close()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet_errors:
            super().handle_error(request, client_address)


class JsonApiHandler(BaseHTTPRequestHandler):
    """Subclasses implement `serve(request)` and answer with `send_payload`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms ACK stall
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self.serve(self.read_request("GET"))

    def do_POST(self) -> None:
        self.serve(self.read_request("POST"))

    def do_PUT(self) -> None:
        self.serve(self.read_request("PUT"))

    def do_PATCH(self) -> None:
        self.serve(self.read_request("PATCH"))

    def do_DELETE(self) -> None:
        self.serve(self.read_request("DELETE"))

    def serve(self, request: IncomingRequest) -> None:
        raise NotImplementedError

    def read_request(self, method: str) -> IncomingRequest:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return IncomingRequest(
            method=method,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),  # ?lock-acquire
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
        )

    def send_payload(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        """JSON for objects, text/plain for a string (as Nomad answers errors)."""
        if isinstance(payload, str):
            self.send_bytes(status, payload.encode(), "text/plain; charset=utf-8", headers)
        else:
            self.send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """`data` byte for byte, e.g. a malformed body a real server would never send."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True  # the client gave up (timeout); nothing to tell


class LoopbackDouble(Generic[RecordT]):
    """A double with its own LoopbackServer: `with double:` (or start/stop) serves it,
    and `requests` keeps what its handlers `record`, in arrival order, for assertions."""

    def __init__(self, handler: type[JsonApiHandler], *, quiet_errors: bool = False) -> None:
        self.requests: list[RecordT] = []
        self.lock = threading.RLock()  # handler threads and the test share the double's state
        self.server = LoopbackServer(handler, self, quiet_errors=quiet_errors)

    @property
    def url(self) -> str:
        return self.server.url

    def record(self, request: RecordT) -> None:
        with self.lock:
            self.requests.append(request)

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
