"""Console output for a simulated run (the demo): one line per decision and a summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from rich.console import Console

from autoscaler.tick import TickResult


@dataclass
class PoolTally:
    ticks: int = 0
    scale_ups: int = 0
    scale_downs: int = 0
    node_hours: float = 0.0
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

    def __call__(self, result: TickResult) -> None:
        tally = self.tallies.setdefault(result.pool, PoolTally())
        tally.ticks += 1
        decision, fleet, sizing = result.decision, result.fleet, result.sizing
        demand = sizing.demand_now
        upper = sizing.forecast.peak_upper() if sizing.forecast else None
        if fleet is not None:
            tally.node_hours += fleet.desired * self.interval.total_seconds() / 3600
            tally.peak_nodes = max(tally.peak_nodes, fleet.desired)
            if demand is not None:
                capacity = fleet.ready * self.per_node_rps[result.pool]
                tally.demand_sum += demand
                tally.served_sum += min(demand, capacity)
                tally.short_ticks += demand > capacity
        if decision is None:
            tally.held_ticks += 1
            self.console.print(f"{result.at:%a %H:%M} {result.pool}: no decision ({result.errors})")
            return
        tally.scale_ups += decision.action == "scale_up"
        tally.scale_downs += decision.action == "scale_down"
        arrow = {"scale_up": "[green]↑[/]", "scale_down": "[yellow]↓[/]"}.get(decision.action, " ")
        ready = f" ({fleet.ready} ready)" if fleet and fleet.pending else ""
        figures = f"demand {_rps(demand)}  forecast {_rps(upper)}"
        line = f"{result.at:%a %H:%M} {result.pool} {arrow} {figures}  {decision.current:>3} → "
        line += f"{decision.desired:<3}{ready}"
        reasons = list(decision.reasons if decision.action != "none" else decision.reasons[:1])
        if result.dry_run:
            verb = "hold" if decision.action == "none" else decision.action.replace("_", " ")
            reasons.insert(0, f"would {verb} (dry run)")
        self.console.print(line + "  [dim]" + "; ".join(reasons) + "[/]", highlight=False)

    def print_summary(self) -> None:
        self.console.rule("summary")
        for pool, t in self.tallies.items():
            served = 100 * t.served_sum / t.demand_sum if t.demand_sum else 100.0
            self.console.print(
                f"{pool}: {t.ticks} ticks, {t.scale_ups} scale-ups, {t.scale_downs} scale-downs, "
                f"peak {t.peak_nodes} nodes, {t.node_hours:.1f} node-hours; "
                f"ready capacity short of demand in {t.short_ticks} ticks; "
                f"{served:.2f}% of demand within ready capacity",
                highlight=False,
            )


def _rps(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f}/s"
