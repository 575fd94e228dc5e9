"""Self-metrics (/metrics, prometheus-client) and a health check (/healthz).

An autoscaler that silently stops evaluating is worse than none: /healthz turns
503 when no fully successful tick has finished for `unhealthy_after`, and the
metrics say per pool what the daemon sees, decides and fails at.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
import pandas as pd
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    make_wsgi_app,
)

from autoscaler.policy import rule_of
from autoscaler.portfolio import MEMBERS
from autoscaler.sizing import span_in_unit
from autoscaler.tick import TickResult
from common.version import package_version
from predictors import Calibration, Forecast

_SCORED_WITHIN = timedelta(seconds=120)
"""A previous forecast is scored only where one of its steps is this close to now."""


class Telemetry:
    def __init__(
        self,
        unhealthy_after: timedelta = timedelta(minutes=5),
        clock: Callable[[], float] = time.time,
        *,
        leader_election: bool = False,
    ) -> None:
        """`leader_election`: export autoscaler_leader (only a daemon with a lock has one)."""
        self.registry = CollectorRegistry()
        self.unhealthy_after = unhealthy_after
        self._clock = clock
        self._started = clock()
        self._last_success: float | None = None
        self._last_forecast: dict[str, Forecast] = {}
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        labels = ["pool"]
        gauge = self._gauge
        self.current = gauge("autoscaler_pool_current_nodes", "Nodes the fleet is set to", labels)
        self.desired = gauge(
            "autoscaler_pool_desired_nodes", "Nodes the last decision wants", labels
        )
        self.ready = gauge("autoscaler_pool_ready_nodes", "Nodes serving now", labels)
        self.pending = gauge("autoscaler_pool_pending_nodes", "Nodes booting", labels)
        self.demand = gauge(
            "autoscaler_pool_demand_requests_per_second", "Demand seen now, req/s", labels
        )
        self.forecast = gauge(
            "autoscaler_pool_forecast_requests_per_second", "Forecast peak over the horizon", labels
        )
        self.upper = gauge(
            "autoscaler_pool_forecast_upper_requests_per_second",
            "Upper-quantile forecast peak",
            labels,
        )
        self.forecast_error = gauge(
            "autoscaler_pool_forecast_abs_error_requests_per_second",
            "|demand now - what the previous tick forecast for now|",
            labels,
        )
        self.margin = gauge(
            "autoscaler_pool_loop_margin_ratio",
            "margin: loop: the multiple of the followed policy's band the fleet is sized for",
            labels,
        )
        self.budget_spent = gauge(
            "autoscaler_pool_error_budget_spent_ratio",
            "margin: loop: late share over the kept ticks (replayed) / the service target",
            labels,
        )
        self.policy = gauge(
            "autoscaler_pool_policy",
            "margin: loop: 1 for the policy the pool follows (policy: auto may switch)",
            ["pool", "policy"],
        )
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
        each call, ~4 µs, and a pool's tick sets a dozen (a tenth of the daemon's own
        work a steady tick of 1,000 pools)."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record(self, result: TickResult) -> None:
        pool = result.pool
        for kind in result.errors:
            self._of(self.errors, pool, kind).inc()
        if result.fleet is not None:
            self._of(self.current, pool).set(result.fleet.desired)
            self._of(self.ready, pool).set(result.fleet.ready)
            self._of(self.pending, pool).set(result.fleet.pending)
        sizing = result.sizing
        if sizing.demand_now is not None:
            self._of(self.demand, pool).set(sizing.demand_now)
            self._score_previous_forecast(pool, result, sizing.demand_now)
        if sizing.forecast is not None:
            self._of(self.forecast, pool).set(sizing.forecast.peak_point())
            self._of(self.upper, pool).set(sizing.forecast.peak_upper())
            self._last_forecast[pool] = sizing.forecast
            self._record_calibration(pool, sizing.forecast.calibration)
        if result.decision is not None:
            decision = result.decision
            self._of(self.desired, pool).set(decision.desired)
            self._of(self.decisions, pool, decision.action).inc()
            for rule in {rule_of(reason) for reason in decision.reasons}:
                self._of(self.rules, pool, rule).inc()

    def _record_calibration(self, pool: str, calibration: Calibration | None) -> None:
        if calibration is None:
            return
        self._of(self.margin, pool).set(calibration.margin)
        if calibration.budget_spent is not None:
            self._of(self.budget_spent, pool).set(calibration.budget_spent)
        for member in MEMBERS:
            self._of(self.policy, pool, member).set(1 if member == calibration.member else 0)

    def _score_previous_forecast(self, pool: str, result: TickResult, demand: float) -> None:
        previous = self._last_forecast.get(pool)
        if previous is None or len(previous.times) == 0:
            return
        times = previous.times  # in integers: index arithmetic was ~0.2 ms a pool a tick
        at = pd.Timestamp(result.at).as_unit(times.unit).asm8.astype(np.int64)
        offsets = np.abs(times.asi8 - at)
        nearest = int(np.argmin(offsets))
        if offsets[nearest] <= span_in_unit(_SCORED_WITHIN, times.unit):  # it covered now
            self._of(self.forecast_error, pool).set(abs(demand - float(previous.point[nearest])))

    def tick_finished(self, results: Iterable[TickResult], seconds: float) -> None:
        self.tick_seconds.observe(seconds)
        if all(not r.errors and r.decision is not None for r in results):
            self._last_success = self._clock()
            self.last_success.set(self._last_success)

    def set_leader(self, leading: bool) -> None:
        if self.leader is not None:
            self.leader.set(1 if leading else 0)

    def standby_tick(self) -> None:
        """A standby that reached the lock and stood aside is healthy: it is ready to act."""
        self._last_success = self._clock()
        self.last_success.set(self._last_success)

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
        if age > limit:
            return False, f"last successful tick {age:.0f} s ago (limit {limit:.0f} s)"
        return True, f"last successful tick {age:.0f} s ago"

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


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A thread per connection: one idle client must not block every scrape and /healthz."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # seconds an idle connection may hold its thread

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s are not worth a log line each."""
