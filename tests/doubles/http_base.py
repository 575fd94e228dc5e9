"""What the HTTP doubles share: a quiet HTTP/1.1 handler that parses each request (path,
query, lower-case headers, JSON body) and writes JSON or plain-text replies."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    """Parsed JSON, the text when it is not JSON, or None when empty."""


class JsonApiHandler(BaseHTTPRequestHandler):
    """Subclasses implement `serve(request)` and answer with `send_payload`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms ACK stall
    server: ThreadingHTTPServer

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
        )

    def send_payload(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        """JSON for objects, text/plain for a string (as Nomad answers errors)."""
        if isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
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
