"""An HTTP inference server the user already runs (Triton, TorchServe, vLLM, ...) as a pool.

The open-loop generator submits request ids here exactly as it does to worker processes;
`concurrency` sender threads take them in order and POST the body, each with its own
connection. A request waiting for a free sender is queueing, and its latency (from its
scheduled send) says so. Header values are secrets as far as this module knows: they go
on the wire and nowhere else (no log, error, checkpoint or profile holds them).
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gpu_bench.workers import DONE, MODEL_ERROR, ConfigInfeasible, PoolTimings

_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class EndpointSettings:
    url: str
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    concurrency: int = 8
    timeout_s: float = 60.0


def shown_url(url: str) -> str:
    """The URL without any user:password@ part, for anything a person or file will read."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' as a pair; ValueError (naming the header, never its value) otherwise."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise ValueError("a --header is not 'Name: value' (its text is not shown: may be secret)")
    return name.strip(), value.strip()


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

    def _post(self, session: Any) -> str | None:
        """One request; None when it was answered well, else what went wrong (no secrets).

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
            ) as response:
                if response.status_code >= 300:
                    return f"{url} answered HTTP {response.status_code}"
                while response.raw.read1(_CHUNK_BYTES, decode_content=True):  # what came
                    if time.monotonic() > deadline:
                        return f"{url}: answer not complete within {limit:g} s"
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            return f"{url}: {type(error).__name__}"
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
            problem = self._post(session)
            if problem is not None:
                self._results.put(("failed", index, MODEL_ERROR, problem))
                return
            self._results.put((DONE, index, [request_id], started, time.monotonic()))

    def start(self) -> PoolTimings:
        """Time three requests one at a time (the service time), then start the senders."""
        session = self._session()
        taken = []
        for _ in range(3):
            started = time.monotonic()
            problem = self._post(session)
            if problem is not None:
                raise ConfigInfeasible(MODEL_ERROR, problem)
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
