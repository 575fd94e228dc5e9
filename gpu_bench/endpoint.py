"""An HTTP inference server the user already runs (Triton, TorchServe, vLLM, ...) as a pool.

The open-loop generator submits request ids here exactly as it does to worker processes;
`concurrency` sender threads take them in order and POST the body, each with its own
connection. A request waiting for a free sender is queueing, and its latency (from its
scheduled send) says so. Under load, a request the server sheds (429, 503, a connection
reset or timed out) is a failed request of that rate, never retried; any other failure is
the server's (a model failure). Header values are secrets as far as this module knows:
they go on the wire and nowhere else (no log, error, checkpoint or profile holds them).
"""

from __future__ import annotations

import queue
import re
import ssl
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from common.transport import HEADER_NAME, HEADER_VALUE
from gpu_bench.loadgen import LOST
from gpu_bench.workers import DONE, MODEL_ERROR, ConfigInfeasible, PoolTimings

_CHUNK_BYTES = 64 * 1024
SHEDDING_STATUSES = frozenset({429, 503})
"""Too Many Requests, Service Unavailable: the server turning a request away under load."""


@dataclass(frozen=True)
class Failure:
    """What went wrong with one request (no secrets), and whether the server shed it."""

    reason: str
    shed: bool


@dataclass(frozen=True)
class EndpointSettings:
    url: str
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    concurrency: int = 8
    timeout_s: float = 60.0  # at least: the sweep waits twice the latency target
    ca_file: str | None = None  # verifies an https server's certificate (a self-signed one)


def shown_url(url: str) -> str:
    """The URL without any user:password@ part, for anything a person or file will read."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' as a pair; ValueError (naming the header, never its value) otherwise.
    A value requests cannot send (a character outside Latin-1, a line break) failed at the
    first request: a traceback, or the server's failure ('InvalidHeader', exit 3)."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise ValueError("a --header is not 'Name: value' (its text is not shown: may be secret)")
    name, value = name.strip(), value.strip()
    if not re.match(HEADER_NAME, name):
        raise ValueError(f"--header: {name!r} is not an HTTP header name")
    if not HEADER_VALUE.fullmatch(value):
        raise ValueError(
            f"--header {name}: the value must be one line of printable Latin-1 characters "
            "(it is not shown: may be secret)"
        )
    return name, value


def ca_file_problem(path: str) -> str | None:
    """Why `path` cannot verify a certificate (unreadable, no PEM certificate in it), or None."""
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as error:
        return f"--ca-file {path}: not a readable PEM certificate file ({error.strerror or error})"
    return None


def _unverified(error: BaseException) -> str | None:
    """TLS's own words where the server's certificate was not verified ('self-signed
    certificate'); requests' SSLError says only that it failed, deep in its chain."""
    cause: BaseException | None = error
    for _ in range(8):
        if cause is None or isinstance(cause, ssl.SSLCertVerificationError):
            break
        cause = cause.__cause__ or cause.__context__
    if not isinstance(cause, ssl.SSLCertVerificationError):
        return None
    return cause.verify_message or "certificate verify failed"


def _shed(error: Exception) -> bool:
    """A timeout, or a connection reset or closed before the whole answer: what a server
    does with requests past what it can take. A refused connection, a TLS or DNS error
    say the server is not there at all."""
    import requests
    import urllib3

    cause = error.args[0] if isinstance(error, requests.ConnectionError) and error.args else None
    broken = (urllib3.exceptions.ProtocolError, requests.Timeout, urllib3.exceptions.TimeoutError)
    return isinstance(error, broken) or isinstance(cause, urllib3.exceptions.ProtocolError)


class EndpointPool:
    """Sends each submitted request id to the endpoint; reports completions like workers do."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self.requests: queue.Queue[int | None] = queue.Queue()
        self._results: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def _session(self) -> Any:
        import requests

        session = requests.Session()
        session.headers.update(
            {"Content-Type": self.settings.content_type, **self.settings.headers}
        )
        return session

    def _post(self, session: Any) -> Failure | None:
        """One request; None when it was answered well, else what went wrong.

        The answer is read within `timeout_s` in all: requests' timeout bounds each read,
        so a server that sent its body a byte at a time (or a stream without end) held
        the run for ever."""
        import requests
        import urllib3

        url, limit = shown_url(self.settings.url), self.settings.timeout_s
        deadline = time.monotonic() + limit
        try:  # a redirect is not followed: its host would get every header (an API key)
            with session.post(
                self.settings.url,
                data=self.settings.body,
                timeout=limit,
                allow_redirects=False,
                stream=True,
                verify=self.settings.ca_file
                or True,  # per request: an env bundle beats a session's
            ) as response:
                status = response.status_code
                if status >= 300:
                    return Failure(f"{url} answered HTTP {status}", status in SHEDDING_STATUSES)
                while response.raw.read1(_CHUNK_BYTES, decode_content=True):  # what came
                    if time.monotonic() > deadline:
                        return Failure(f"{url}: answer not complete within {limit:g} s", True)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            unverified = _unverified(error)
            if unverified is not None:
                why = f"TLS certificate not verified ({unverified}): give its CA with --ca-file"
                return Failure(f"{url}: {why}", False)
            return Failure(f"{url}: {type(error).__name__}", _shed(error))
        return None

    def _send_loop(self, index: int) -> None:
        session = self._session()
        while not self._stop.is_set():
            try:
                request_id = self.requests.get(timeout=0.05)
            except queue.Empty:
                continue
            if request_id is None:
                return
            started = time.monotonic()
            failure = self._post(session)
            if failure is None:
                self._results.put((DONE, index, [request_id], started, time.monotonic()))
            elif failure.shed:  # the rate's failure: counted over the target, not the run's
                self._results.put((LOST, index, [request_id], failure.reason))
            else:
                self._results.put(("failed", index, MODEL_ERROR, failure.reason))
                return

    def start(self) -> PoolTimings:
        """Time three requests one at a time (the service time), then start the senders."""
        session = self._session()
        taken = []
        for _ in range(3):
            started = time.monotonic()
            failure = self._post(session)  # one request alone: the server must answer it
            if failure is not None:
                raise ConfigInfeasible(MODEL_ERROR, failure.reason)
            taken.append(time.monotonic() - started)
        for index in range(self.settings.concurrency):
            thread = threading.Thread(
                target=self._send_loop, args=(index,), name=f"gpu-bench-http-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        single = statistics.median(taken)
        return PoolTimings(batch_seconds=single, single_seconds=single, startup_s=())

    def submit(self, request_id: int) -> None:
        self.requests.put(request_id)

    def next_message(self, timeout: float) -> tuple[Any, ...] | None:
        try:
            message = (
                self._results.get(timeout=timeout) if timeout > 0 else self._results.get_nowait()
            )
        except queue.Empty:
            return None
        if message[0] == "failed":
            raise ConfigInfeasible(message[2], message[3])
        return message

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.settings.timeout_s + 1)
        self._threads.clear()
