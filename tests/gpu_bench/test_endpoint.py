"""`--endpoint`: the same generator, search and profile against an HTTP inference server.

The server is a local stand-in of known speed started by the test (a real HTTP server from
the standard library, not a double of any product's API): it takes one request at a time
and answers each after a fixed 20 ms, so with one request in flight it is an M/D/1 queue
whose edge the queueing simulation gives. The HTTP round trip on loopback adds to the
service time, so the test times a few requests itself and feeds the simulation that.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import multiprocessing
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpu_bench.cli import app
from gpu_bench.endpoint import shown_url
from gpu_bench.profile import load_profile
from tests.gpu_bench.queueing import Batching, edge_rate

SERVICE_S = 0.020
SECRET = "s3cret-token-value"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    seen: list[tuple[str | None, bytes]]
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as inference servers do

    def setup(self) -> None:
        super().setup()  # no Nagle: headers and body go out in two writes
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            time.sleep(SERVICE_S)
        if len(self.server.seen) < 5:
            self.server.seen.append((self.headers.get("Authorization"), body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.seen, httpd.lock = [], threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    thread.join()
    httpd.server_close()


def round_trip(server: _Server) -> float:
    """The service time a client sees: the server's 20 ms and the HTTP round trip."""
    import requests

    url = f"http://127.0.0.1:{server.server_address[1]}/predict"
    with requests.Session() as session:
        taken = []
        for _ in range(15):
            started = time.monotonic()
            session.post(url, data=b"{}", timeout=5).raise_for_status()
            taken.append(time.monotonic() - started)
    server.seen.clear()
    return sorted(taken)[len(taken) // 2]


def options(server: _Server, tmp_path: Path) -> list[str]:
    body = tmp_path / "request.json"
    body.write_text(json.dumps({"inputs": [1, 2, 3]}))
    url = f"http://127.0.0.1:{server.server_address[1]}/predict"
    return [
        "--endpoint", url, "--body-file", str(body), "--header", f"Authorization: Bearer {SECRET}",
        "--concurrency", "1", "--latency-target", "200ms", "--out", str(tmp_path / "p.yaml"),
    ]  # fmt: skip


def test_an_endpoint_of_known_speed_gets_its_queueing_edge(server, tmp_path: Path) -> None:
    """The round trip is timed before and after the run (a shared host's load moves it):
    the edge must lie within 10 % of the theory's at the slower and the faster of them."""
    before = round_trip(server)
    result = CliRunner().invoke(app, ["run", *options(server, tmp_path)])
    assert result.exit_code == 0, result.output
    seen = list(server.seen)
    after = round_trip(server)
    slow, fast = (
        edge_rate(Batching(1, 1, 0.0, t), 0.200) for t in (max(before, after), min(before, after))
    )
    profile = load_profile(tmp_path / "p.yaml")
    assert 0.9 * slow <= profile.per_gpu_rps <= 1.1 * fast, (profile.per_gpu_rps, slow, fast)
    assert profile.model.endswith("/predict") and profile.device.startswith("endpoint")
    assert profile.startup_p50_s is None  # the server was already running
    assert seen[0] == (f"Bearer {SECRET}", b'{"inputs": [1, 2, 3]}')
    written = [result.output, *(p.read_text() for p in tmp_path.iterdir() if p.suffix != ".png")]
    assert not any(SECRET in text for text in written)
    assert "Authorization: ***" in profile.command
    assert multiprocessing.active_children() == []


def test_an_endpoint_that_errors_is_a_model_failure(server, tmp_path: Path) -> None:
    server.status = 500
    result = CliRunner().invoke(app, ["run", *options(server, tmp_path)])
    assert result.exit_code == 3, result.output
    assert "HTTP 500" in result.output and SECRET not in result.output


def test_bad_endpoint_options_are_refused_without_showing_header_values(tmp_path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["run", "--model", "cnn", "--endpoint", "http://x/", "--out", "p"])
    assert both.exit_code == 2 and "either --model or --endpoint" in both.output
    body = tmp_path / "b.json"
    body.write_text("{}")
    bad = ["run", "--endpoint", "http://x/", "--body-file", str(body), "--out", "p"]
    header = runner.invoke(app, [*bad, "--header", f"NoColon{SECRET}"])
    assert header.exit_code == 2 and SECRET not in header.output
    assert shown_url("https://user:pw@host:8000/v1?q=1") == "https://host:8000/v1?q=1"


class _Redirecting(BaseHTTPRequestHandler):
    """Answers every POST with a 307 (method and body kept) to `server.target`."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(307)
        self.send_header("Location", self.server.target)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_a_redirect_to_another_host_is_a_failure_and_carries_no_header(server) -> None:
    """An endpoint answering 307 to another host (a compromised or misrouted proxy): the
    request is not followed, so no header value (an API key is not an Authorization
    header, which requests would drop) reaches that host, and the run does not measure a
    server it was not pointed at. Both servers are plain HTTP servers (HTTP/1.1 redirects
    as RFC 9110 defines them), not doubles of a product's API."""
    from gpu_bench.endpoint import EndpointPool, EndpointSettings
    from gpu_bench.workers import ConfigInfeasible

    redirecting = _Server(("127.0.0.1", 0), _Redirecting)
    redirecting.target = f"http://localhost:{server.server_address[1]}/predict"  # type: ignore[attr-defined]
    thread = threading.Thread(target=redirecting.serve_forever, daemon=True)
    thread.start()
    try:
        settings = EndpointSettings(
            url=f"http://127.0.0.1:{redirecting.server_address[1]}/predict",
            body=b"{}",
            headers={"X-Api-Key": SECRET, "Authorization": f"Bearer {SECRET}"},
            concurrency=1,
            timeout_s=5,
        )
        with pytest.raises(ConfigInfeasible) as refused:
            EndpointPool(settings).start()
    finally:
        redirecting.shutdown()
        thread.join()
        redirecting.server_close()
    assert "answered HTTP 307" in str(refused.value) and SECRET not in str(refused.value)
    assert server.seen == []  # the other host got no request, so no header


class _Dripping(BaseHTTPRequestHandler):
    """Answers 200 with a body it sends a byte every 0.2 s, for far longer than a test."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(100_000):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)

    def log_message(self, *_: object) -> None:
        pass


def test_an_answer_sent_a_byte_at_a_time_fails_within_the_timeout() -> None:
    """requests' timeout bounds each read, not the answer: a body that kept coming slowly
    (or a stream without end) held gpu-bench for ever, before any rate was measured."""
    from gpu_bench.endpoint import EndpointPool, EndpointSettings
    from gpu_bench.workers import ConfigInfeasible

    dripping = _Server(("127.0.0.1", 0), _Dripping)
    threading.Thread(target=dripping.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{dripping.server_address[1]}/predict"
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            EndpointPool(EndpointSettings(url=url, body=b"{}", timeout_s=1.0)).start()
            outcome.append(None)
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    try:
        starting = threading.Thread(target=start, daemon=True)
        starting.start()
        starting.join(15)
        assert outcome, "start() still waiting on the dripping answer after 15 s"
    finally:
        dripping.shutdown()
        dripping.server_close()
    assert isinstance(outcome[0], ConfigInfeasible)
    assert "not complete within 1 s" in str(outcome[0])


class _Shedding(BaseHTTPRequestHandler):
    """Serves one request at a time in 5 ms and turns away any past two in its hands, as
    an inference server with a bounded queue does: `server.shed` says how (a 503 or 429
    with Retry-After, or a reset: the connection closed with SO_LINGER 0, an RST)."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.in_hand += 1  # type: ignore[attr-defined]
            shed = self.server.in_hand > 2  # type: ignore[attr-defined]
        try:
            if shed:
                self._turn_away()
                return
            with self.server.serving:  # type: ignore[attr-defined]
                time.sleep(0.005)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        finally:
            with self.server.lock:  # type: ignore[attr-defined]
                self.server.in_hand -= 1  # type: ignore[attr-defined]

    def _turn_away(self) -> None:
        how = self.server.shed  # type: ignore[attr-defined]
        if how == "reset":
            linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(how)
        self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize("shed", [503, 429, "reset"])
def test_requests_a_server_sheds_under_load_fail_that_rate_not_the_run(shed, tmp_path) -> None:
    """A server that turns requests away past what it can take (its queue full) is
    measured: the requests it shed are that rate's failures, counted over the target and
    said in the probe's reason, never retried. Each one ended the whole run as a model
    failure (exit 3, no profile), though the search must probe rates past the capacity.
    The server is a plain HTTP/1.1 server of known speed, not a double of a product."""
    shedding = _Server(("127.0.0.1", 0), _Shedding)
    shedding.lock, shedding.serving = threading.Lock(), threading.Lock()  # type: ignore[attr-defined]
    shedding.in_hand, shedding.shed = 0, shed  # type: ignore[attr-defined]
    thread = threading.Thread(target=shedding.serve_forever, daemon=True)
    thread.start()
    body = tmp_path / "request.json"
    body.write_text("{}")
    try:
        result = CliRunner().invoke(app, [
            "run", "--endpoint", f"http://127.0.0.1:{shedding.server_address[1]}/predict",
            "--body-file", str(body), "--concurrency", "6", "--latency-target", "200ms",
            "--warmup", "0.2", "--max-warmup", "0.5", "--block-requests", "10",
            "--max-requests", "100", "--precision", "0.3", "--out", str(tmp_path / "p.yaml"),
        ])  # fmt: skip
    finally:
        shedding.shutdown()
        thread.join()
        shedding.server_close()
    assert result.exit_code == 0, result.output
    assert load_profile(tmp_path / "p.yaml").per_gpu_rps < 1 / 0.005
    said = "answered HTTP" if shed != "reset" else "ConnectionError"
    assert "not served (http://127.0.0.1:" in (tmp_path / "p.csv").read_text()
    assert said in (tmp_path / "p.csv").read_text()


@pytest.mark.parametrize("value", [f"Bearer {SECRET}€", f"Bearer {SECRET}\r\nX-Other: 1"])
def test_a_header_value_that_cannot_be_sent_is_refused_naming_the_option(value, tmp_path) -> None:
    """A value outside Latin-1 ended in http.client's UnicodeEncodeError traceback at the
    first request, and one with a line break in requests' InvalidHeader, said as the
    server's failure (exit 3): both are refused as options now, the value never shown."""
    body = tmp_path / "b.json"
    body.write_text("{}")
    result = CliRunner().invoke(app, [
        "run", "--endpoint", "http://127.0.0.1:9/predict", "--body-file", str(body),
        "--header", f"Authorization: {value}", "--out", str(tmp_path / "p.yaml"),
    ])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--header Authorization: the value must be one line" in result.output
    assert SECRET not in result.output


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, as `openssl req -x509` makes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inference.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    crt, pem = folder / "server.crt", folder / "server.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def test_an_https_endpoint_with_a_self_signed_certificate(server, tmp_path) -> None:
    """The server of known speed behind TLS (a real HTTPS server from the standard
    library) with a self-signed certificate. Unverified, it failed as 'model ... failed:
    ...: SSLError', naming neither the certificate nor a way to trust it (there was none
    but requests' REQUESTS_CA_BUNDLE): it now says what TLS found and names --ca-file,
    which verifies the server with that certificate. The URL's password is never shown."""
    from gpu_bench.endpoint import EndpointPool, EndpointSettings

    crt, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    url = f"https://reader:{SECRET}@127.0.0.1:{server.server_address[1]}/predict"
    body = tmp_path / "b.json"
    body.write_text("{}")
    run = ["run", "--endpoint", url, "--body-file", str(body), "--out", str(tmp_path / "p.yaml")]
    unverified = CliRunner().invoke(app, run)
    assert unverified.exit_code == 3, unverified.output
    assert "TLS certificate not verified (self-signed certificate)" in unverified.output
    assert "give its CA with --ca-file" in unverified.output
    assert SECRET not in unverified.output
    not_a_ca = CliRunner(env={"COLUMNS": "300"}).invoke(app, [*run, "--ca-file", str(body)])
    assert not_a_ca.exit_code == 2 and f"--ca-file {body}: not a readable PEM" in not_a_ca.output
    pool = EndpointPool(EndpointSettings(url=url, body=b"{}", timeout_s=5, ca_file=str(crt)))
    try:
        assert pool.start().single_seconds >= SERVICE_S
    finally:
        pool.stop()
    assert server.seen and server.seen[0][1] == b"{}"


class _Slow(BaseHTTPRequestHandler):
    """Answers each POST after 1.5 s: a model slower than the endpoint's least timeout."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(1.5)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


def test_an_answer_slower_than_the_timeout_is_awaited_past_twice_the_target() -> None:
    """The endpoint's timeout was 60 s whatever the target: a server that takes 90 s a
    request (video generation) failed as 'ReadTimeout' (exit 3) under a 5-minute target,
    never measured. An answer is now awaited for twice the target where that is longer
    (a rate whose requests wait so long is overloaded anyway). Here 1 s stands for the
    60 s and a plain HTTP server answering in 1.5 s for the slow model; under a 1 s
    target its time alone is measured, and the target said impossible (exit 4)."""
    from gpu_bench.endpoint import EndpointSettings
    from gpu_bench.sweep import run_config
    from tests.gpu_bench.quick_settings import quick

    slow = _Server(("127.0.0.1", 0), _Slow)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{slow.server_address[1]}/predict"
    try:
        result = run_config(
            quick(url, workers=[1], batches=[1], latency_target_s=1.0),
            workers=1,
            batch=1,
            endpoint=EndpointSettings(url=url, body=b"{}", concurrency=1, timeout_s=1.0),
        )
    finally:
        slow.shutdown()
        slow.server_close()
    assert result.status == "impossible", result.reason
    assert result.single_seconds is not None and result.single_seconds >= 1.5
