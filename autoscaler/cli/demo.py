"""Console output for a simulated run (the demo): one line per decision, a summary, and
what a static and a reactive fleet would have cost on the same traffic.

Times are shown in each pool's schedule time zone (else its forecaster's), the zone its
schedules and its day are written in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from rich.console import Console
from rich.markup import escape

from autoscaler.config.schema import Pool
from autoscaler.daily_report import share_text
from autoscaler.digest import DigestSettings, pool_digest
from autoscaler.tick_result import TickResult, decision_record
from common.durations import format_duration
from common.secrets import redact

UTC_ZONE = ZoneInfo("UTC")


def pool_zone(pool: Pool) -> ZoneInfo:
    """The zone a pool's day is written in: its first schedule's, else its forecaster's."""
    if pool.schedules:
        return ZoneInfo(pool.schedules[0].timezone)
    return ZoneInfo(str(pool.predictor.params.get("timezone", "UTC")))


@dataclass
class PoolTally:
    ticks: int = 0
    scale_ups: int = 0
    scale_downs: int = 0
    short_ticks: int = 0
    held_ticks: int = 0
    peak_nodes: int = 0
    demand_sum: float = 0.0
    served_sum: float = 0.0


@dataclass
class ConsoleReporter:
    """Prints each decision as the daemon makes it, and tallies what the fleet cost."""

    per_node_rps: dict[str, float]
    interval: timedelta
    console: Console = field(default_factory=lambda: Console(soft_wrap=True))
    tallies: dict[str, PoolTally] = field(default_factory=dict)
    zones: dict[str, ZoneInfo] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    """Each tick's decision record, for the comparison at the end."""

    def __call__(self, result: TickResult) -> None:
        self.records.append(decision_record(result))
        tally = self.tallies.setdefault(result.pool, PoolTally())
        tally.ticks += 1
        decision, fleet, sizing = result.decision, result.fleet, result.sizing
        demand = sizing.demand_now
        point = sizing.forecast.peak_point() if sizing.forecast else None
        upper = sizing.forecast.peak_upper() if sizing.forecast else None
        at = f"{result.at.astimezone(self.zones.get(result.pool, UTC_ZONE)):%a %H:%M %Z}"
        if fleet is not None:
            tally.peak_nodes = max(tally.peak_nodes, fleet.desired)
            if demand is not None:
                capacity = fleet.ready * self.per_node_rps[result.pool]
                tally.demand_sum += demand
                tally.served_sum += min(demand, capacity)
                tally.short_ticks += demand > capacity
        if decision is None:
            tally.held_ticks += 1
            errors = "; ".join(f"{kind}: {text}" for kind, text in result.errors.items())
            said = f"{at} {result.pool}: no decision ({escape(redact(errors))})"
            self.console.print(said, highlight=False)
            return
        tally.scale_ups += decision.action == "scale_up"
        tally.scale_downs += decision.action == "scale_down"
        arrow = {"scale_up": "[green]↑[/]", "scale_down": "[yellow]↓[/]"}.get(decision.action, " ")
        ready = f" ({fleet.ready} ready)" if fleet and fleet.pending else ""
        figures = f"demand {_rps(demand)}  forecast {_rps(point)}  upper band {_rps(upper)}"
        line = f"{at} {result.pool} {arrow} {figures}  {decision.current:>3} → "
        line += f"{decision.desired:<3}{ready}"
        # A hold says its first reason, unless a bound, an override or a signal moved the
        # count from what the forecast asked: then what moved it too (else "1 → 1 forecast
        # needs 6 nodes" hides the override that keeps it at 1).
        asked = {sizing.nodes, sizing.arrival_nodes, sizing.demand_nodes}
        whole = decision.action != "none" or decision.target not in asked
        reasons = list(decision.reasons if whole else decision.reasons[:1])
        if result.dry_run:
            verb = "hold" if decision.action == "none" else decision.action.replace("_", " ")
            reasons.insert(0, f"would {verb} (dry run)")
        said = escape(redact("; ".join(reasons)))
        self.console.print(line + "  [dim]" + said + "[/]", highlight=False)

    def print_summary(self) -> None:
        self.console.rule("summary")
        for pool, t in self.tallies.items():
            served = t.served_sum / t.demand_sum if t.demand_sum else 1.0
            self.console.print(
                f"{pool}: {t.ticks} ticks, {t.scale_ups} scale-ups, {t.scale_downs} scale-downs, "
                f"peak {t.peak_nodes} nodes; "
                f"ready capacity short of demand in {t.short_ticks} ticks; "
                f"{share_text(served, '')} of demand within ready capacity",
                highlight=False,
            )

    def print_comparison(
        self,
        pools: list[Pool],
        settings: dict[str, DigestSettings],
        demand: pd.Series,
        start: datetime,
        end: datetime,
    ) -> None:
        """This run against a static fleet sized for the day's peak and a reactive one (the
        HPA rule at the pool's utilization), on the same traffic, by the daily digest's
        rules (autoscaler/digest.py): node-hours and late requests, computed here."""
        for pool in pools:
            seen = pool_digest(pool.name, self.records, demand, settings[pool.name], start, end)
            ours = seen.fleet.node_hours
            level = seen.service_level  # None: no request came (0.0: every one was late)
            if level is not None:
                late = f"{share_text(1 - level, '')} late"
            else:  # a span of missing samples is not a span without requests
                late = "no requests" if seen.peak_rps is not None else "no demand samples"
            parts = [f"{pool.name}: this run {ours:.1f} node-hours, {late}"]
            if seen.static is not None:
                parts.append(
                    f"a static fleet for the day's peak ({seen.static_nodes} nodes) "
                    f"{seen.static.node_hours:.1f} node-hours ({_ratio(ours, seen.static)})"
                )
            if seen.reactive is not None:
                share = seen.reactive.late_share
                parts.append(
                    f"a reactive fleet (target tracking at {pool.target_utilization:.0%}, "
                    f"nodes after {format_duration(pool.boot_time)}) "
                    f"{seen.reactive.node_hours:.1f} node-hours"
                    + (f", {share_text(share, '')} late" if share is not None else "")
                    + f" ({_ratio(ours, seen.reactive)})"
                )
            self.console.print("; ".join(parts), highlight=False)


def _ratio(ours: float, other: Any) -> str:
    """'0.62 × its cost' (this run's node-hours over the other fleet's)."""
    return f"this run costs {ours / other.node_hours:.2f} × it" if other.node_hours else "-"


def _rps(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f}/s"
