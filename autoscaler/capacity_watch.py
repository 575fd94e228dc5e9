"""The tick's side of the capacity check: fetch the fleet's series, estimate, tell once.

The estimate itself is pure (autoscaler/capacity_check.py). A drift beyond the tolerance
is told on Slack once, with both figures, and again only after it came back within.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from autoscaler.capacity_check import (
    CapacityCheck,
    CapacityEstimate,
    estimate,
    per_node_series,
    sizing_rps,
)
from autoscaler.metrics import MetricsError, MetricsSource, fetch_series
from autoscaler.notify import Message, alert_message

log = logging.getLogger(__name__)


def measure(
    check: CapacityCheck, metrics: MetricsSource, now: datetime, profile: float
) -> CapacityEstimate:
    """Fetch the check's series over its window and estimate (raises MetricsError, or
    ValueError on a utilization outside 0-100 %)."""

    def series(query: str) -> pd.Series:
        return fetch_series(metrics, query, now, check.window, check.step)

    if check.per_node_query is not None:
        per_node = series(check.per_node_query)
    else:
        assert check.served_query is not None and check.nodes_query is not None
        per_node = per_node_series(series(check.served_query), series(check.nodes_query))
    utilization = series(check.utilization_query) if check.utilization_query else None
    return estimate(per_node, utilization, check, profile)


class CapacityWatch:
    """Kept by a pool's ticker: measures every `check.every`, reuses the figure between."""

    def __init__(self, pool: str, check: CapacityCheck, profile: float) -> None:
        self.pool = pool
        self.check = check
        self.profile = profile
        self.found: CapacityEstimate | None = None
        self.measured_at: datetime | None = None

    def refresh(self, metrics: MetricsSource, now: datetime) -> CapacityEstimate | None:
        since = None if self.measured_at is None else now - self.measured_at
        if since is not None and timedelta(0) <= since < self.check.every:
            return self.found
        self.measured_at = now
        try:
            found = measure(self.check, metrics, now, self.profile)
        except ValueError as exc:  # a utilization outside 0-100 %: the profile sizes
            log.warning("%s: capacity check skipped: %s", self.pool, exc)
            self.found = None
            return None
        except MetricsError as exc:
            log.warning("%s: capacity check skipped: %s%s", self.pool, exc, self._kept())
            return self.found
        if found.measured is None and self._kept():  # a quiet window: no evidence
            log.info("%s: capacity check: %s%s", self.pool, found.describe(), self._kept())
            return self.found
        self.found = found
        return found

    def _kept(self) -> str:
        """Words for the measured figure that stands while a check measures nothing: a
        quiet night or a failed query is no evidence that a node's capacity changed back."""
        if self.found is None or self.found.measured is None:
            return ""
        return f"; the measured {self.found.measured:.2f} req/s per node stands"

    def resume(self, saved: dict[str, Any] | None) -> None:
        """Before a fresh watch's first check: the figure measured before (PoolState's
        capacity, saved by the daemon), where it was against this profile."""
        if self.measured_at is not None or saved is None or saved["profile"] != self.profile:
            return
        self.found = CapacityEstimate(
            self.profile, saved["measured"], saved["samples"], saved["busy_gate"]
        )

    def saved(self) -> dict[str, Any] | None:
        """The figure measured, for the state file (None: nothing measured stands)."""
        found = self.found
        if found is None or found.measured is None:
            return None
        return {
            "measured": found.measured,
            "samples": found.samples,
            "busy_gate": found.busy_gate,
            "profile": found.profile,
        }

    def sizing(self) -> tuple[float, str | None]:
        """Per-node req/s to size with now, and the reason when it is the measured one."""
        if self.found is None:
            return self.profile, None
        return sizing_rps(self.found, self.check)

    def message(self, alerted: bool) -> tuple[Message | None, bool]:
        """What to tell (None: nothing new) and whether a drift is being alerted now."""
        found, check = self.found, self.check
        if found is None or found.measured is None:
            return None, alerted
        drifted = found.drifted(check.tolerance)
        if drifted and not alerted:
            then = (
                f"sizing with the measured figure, within {check.measured_min:g}-"
                f"{check.measured_max:g} × the profile"
                if check.use_measured
                else "still sizing with the profile (capacity_check.use_measured: true "
                "sizes with the measured figure)"
            )
            return alert_message(
                f"{self.pool}: capacity drift beyond {check.tolerance:.0%}: one node serves "
                f"{found.measured:.2f} req/s under load, the profile says {found.profile:.2f} "
                f"({found.drift:+.0%}); {then}"
            ), True
        if alerted and found.within(check.tolerance):
            return alert_message(
                f"{self.pool}: capacity back within {check.tolerance:.0%} of the profile "
                f"({found.measured:.2f} req/s against {found.profile:.2f})"
            ), False
        return None, alerted
