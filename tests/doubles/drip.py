"""A server that answers every request at once with its status and headers, then sends
the body one byte every `drip_s` seconds: each read is in time, the whole answer never
is (the slow-body case of issue 17). The body is a real answer of the API it stands in for
(given by the test), so a client that waited long enough would accept it."""

from __future__ import annotations

from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble


class DripDouble(LoopbackDouble[str]):
    def __init__(self, body: bytes, drip_s: float = 0.2) -> None:
        super().__init__(_DripHandler, quiet_errors=True)
        self.body = body
        self.drip_s = drip_s


class _DripHandler(JsonApiHandler):
    def serve(self, request: IncomingRequest) -> None:
        double: DripDouble = self.server.double
        double.record(request.path)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(double.body)))
            self.end_headers()
            for byte in double.body:
                if self.server.stopping.wait(double.drip_s):
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True
