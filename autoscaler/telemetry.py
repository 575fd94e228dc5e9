"""Self-metrics (/metrics, prometheus-client) and a health check (/healthz).

An autoscaler that silently stops evaluating is worse than none: /healthz turns
503 when no fully successful tick has finished for `unhealthy_after`, and the
metrics say per pool what the daemon sees, decides and fails at.
"""

from __future__ import annotations

import platform
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable
from datetime import timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    make_wsgi_app,
)

from autoscaler.notify import FAILURE_REASONS
from autoscaler.pool_gauges import PoolGauges
from autoscaler.reason_rules import rule_of
from autoscaler.tick_result import TickResult
from common.version import package_version


class Telemetry:
    def __init__(
        self,
        unhealthy_after: timedelta = timedelta(minutes=5),
        clock: Callable[[], float] = time.monotonic,
        *,
        leader_election: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`leader_election`: export autoscaler_leader (only a daemon with a lock has one).
        `clock` times /healthz's ages: elapsed time, as a wall clock stepped back an hour
        kept a daemon whose ticks then failed healthy for that hour; `wall` stamps the
        exported time of the last success."""
        self.registry = CollectorRegistry()
        self.unhealthy_after = unhealthy_after
        self._clock = clock
        self._wall = wall
        self._started = clock()
        self._last_success: float | None = None
        self._standby = False  # the last success was a standby's stand-aside, not a tick
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.pool_gauges = PoolGauges()
        self.registry.register(self.pool_gauges)
        gauge = self._gauge
        self.last_success = gauge(
            "autoscaler_last_successful_tick_timestamp_seconds",
            "When every pool last ticked without an error",
            [],
        )
        self.leader = (
            gauge(
                "autoscaler_leader",
                "1 while this daemon holds the leader lock and acts; 0 on standby or lock trouble",
                [],
            )
            if leader_election
            else None
        )
        Info("autoscaler_build", "The running version", registry=self.registry).info(
            {"version": package_version(), "python": platform.python_version()}
        )
        self.tick_seconds = Histogram(
            "autoscaler_tick_duration_seconds",
            "Time one tick of every pool takes",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.errors = Counter(
            "autoscaler_errors_total",
            "Errors by pool and kind",
            ["pool", "kind"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "autoscaler_decisions_total",
            "Decisions by pool and action",
            ["pool", "action"],
            registry=self.registry,
        )
        self.notifications_failed = Counter(
            "autoscaler_notifications_failed_total",
            "Slack posts dropped (each an alert or a tick's news), by reason",
            ["reason"],
            registry=self.registry,
        )
        for reason in FAILURE_REASONS:  # 0 from the start: an alert's increase() sees the 1st
            self.notifications_failed.labels(reason)
        self.rules = Counter(
            "autoscaler_decision_rules_total",
            "Rules that shaped decisions, by pool and rule",
            ["pool", "rule"],
            registry=self.registry,
        )

    def _gauge(self, name: str, doc: str, labels: list[str]) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    # ---- recording -----------------------------------------------------------------

    def _of(self, metric: Gauge | Counter, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept: labels() checks its values and takes a lock on
        each call, ~4 µs, and a pool's tick counts a few."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record(self, result: TickResult) -> None:
        """The pool's gauges are made at the next scrape (autoscaler.pool_gauges); its
        counters count now."""
        self.pool_gauges.record(result)
        pool = result.pool
        for kind in result.errors:
            self._of(self.errors, pool, kind).inc()
        if result.decision is not None:
            decision = result.decision
            self._of(self.decisions, pool, decision.action).inc()
            for rule in {rule_of(reason) for reason in decision.reasons}:
                self._of(self.rules, pool, rule).inc()

    def notification_failed(self, reason: str) -> None:
        """A Slack post dropped (autoscaler.notify_slack's hook; any thread)."""
        self.notifications_failed.labels(reason).inc()

    def keep_pools(self, names: Collection[str]) -> None:
        """Only these pools' series from now on: a pool a reload removed is not exported
        as if it still ran (its last gauges, its counters), nor kept in memory."""
        self.pool_gauges.keep(names)
        for key in [key for key in self._children if key[1][0] not in names]:
            metric, labels = key
            del self._children[key]
            metric.remove(*labels)

    def tick_finished(self, results: Iterable[TickResult], seconds: float) -> None:
        self.tick_seconds.observe(seconds)
        if all(not r.errors and r.decision is not None for r in results):
            self._standby = False
            self._last_success = self._clock()
            self.last_success.set(self._wall())

    def set_leader(self, leading: bool) -> None:
        """Not leading, the pools' gauges go: a standby's last ticks are no fleet's state
        now (two counts of each fleet beside the leader's, an alert on a stale value)."""
        if self.leader is not None:
            self.leader.set(1 if leading else 0)
        if not leading:
            self.pool_gauges.keep(())

    def standby_tick(self) -> None:
        """A standby that reached the lock and stood aside is healthy: it is ready to act.
        /healthz says so: "last successful tick 3 s ago" read as if it scaled."""
        self._standby = True
        self._last_success = self._clock()
        self.last_success.set(self._wall())

    # ---- health --------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """Healthy while the last fully successful tick is recent (a grace period at start)."""
        now = self._clock()
        limit = self.unhealthy_after.total_seconds()
        if self._last_success is None:
            if now - self._started < limit:
                return True, "starting: no successful tick yet"
            return False, f"no successful tick in the {now - self._started:.0f} s since start"
        age = now - self._last_success
        what = (
            "standby: another daemon leads; lock read" if self._standby else "last successful tick"
        )
        if age > limit:
            return False, f"{what} {age:.0f} s ago (limit {limit:.0f} s)"
        return True, f"{what} {age:.0f} s ago"

    # ---- serving -------------------------------------------------------------------

    def wsgi_app(self) -> Callable[..., Iterable[bytes]]:
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok, detail = self.health()
                status = "200 OK" if ok else "503 Service Unavailable"
                start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
                return [f"{'ok' if ok else 'unhealthy'}: {detail}\n".encode()]
            return metrics(environ, start_response)

        return app

    def serve(self, host: str, port: int) -> WSGIServer:
        """Serve /metrics and /healthz in a daemon thread; returns the server (for its port)."""
        server = make_server(
            host, port, self.wsgi_app(), server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        threading.Thread(target=server.serve_forever, name="telemetry", daemon=True).start()
        return server


MAX_CONNECTIONS = 16
"""Connections served at once; more are closed as they come. Without a bound, clients
that open connections and send a byte now and then (a slow-loris, a scanner) took a
thread and a file descriptor each for as long as they kept on: at the daemon's 1024
descriptors (systemd's default) its ticks could open no socket or file."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A thread per connection: one idle client must not block every scrape and /healthz."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client too slow or gone is no error of the daemon's: each printed a traceback
        of 25 lines on stderr (the journal)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # seconds an idle connection may hold its thread

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s are not worth a log line each."""
