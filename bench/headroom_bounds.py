"""How cheap can simple rules get on each trace when their knobs are tuned in hindsight?

The issue's goal (policy ≤ 0.9 × the best baseline that meets 1 % late) asks how much a
forecaster can save. This script measures what some families of rules reach under the
backtest's own fleet and queue model (autoscaler.backtest.queue via Replay.score), with
every knob chosen *on the very span that is scored*. No deployed policy can know that,
so the figures are optimistic for each family:

- persistence: nodes for the trailing k-minute mean demand (k = 1 is the last minute)
  × a headroom, or plus a Poisson-like band (a multiple of sqrt(demand × one node's
  rate)); the multiple is bisected to the cheapest that meets the service target (finer
  than any grid, which favours the rule);
- volatility: the same, with the headroom scaled by recent volatility,
  exp(a + b·log(v / median v)), v an exponential mean of |Δ log demand|; k, the half-life
  and b swept, a bisected;
- hour-to-come (not causal): nodes for the mean demand of the hour centred on each
  minute, with either band: a forecaster that knows the coming hour's level exactly
  and misses only the noise inside it;
- last + hour-to-come (not causal): nodes for the larger of the trailing k-minute mean
  and the hour-to-come mean, with either band: what knowing the coming hour adds to
  what the last minutes already tell.

Run by hand; it is not a timed test. Compare with the policy's figure from
bench/backtest_targets.py (the same settings):

    python bench/headroom_bounds.py [--traces DIR] [--only NAME]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from backtest_targets import (  # run from bench/: its folder is on sys.path
    DEFAULT_TRACES,
    GOAL,
    capacity_for,
)
from rich.console import Console
from rich.table import Table
from trace_files import trace_path

from autoscaler.backtest.baselines import BASELINES, Replay, node_counts
from autoscaler.backtest.queue import Score
from autoscaler.backtest.runner import BacktestSettings, frame_replay, load_trace

TRAILING_MINUTES = (1, 5, 15, 30, 60)
VOLATILITY_HALF_LIVES = (10, 30, 60, 120)
VOLATILITY_WEIGHTS = (0.05, 0.1, 0.2, 0.3)
BISECTION_STEPS = 24
COMPARED = ("hpa", "linear-20m", "seasonal-naive")


def cheapest_log_headroom(
    replay: Replay, reference: np.ndarray, shape: np.ndarray, law: str = "scaled"
) -> tuple[Score, float] | None:
    """The smallest a whose band meets the target (bisection): demand reference·exp(a + shape)
    ("scaled"), or reference + exp(a)·sqrt(reference · one node) ("sqrt", Poisson-like noise)."""

    def scored(a: float) -> Score:
        if law == "sqrt":
            need = reference + np.exp(a) * np.sqrt(reference * replay.per_node_rps)
        else:
            need = reference * np.exp(a + shape)
        return replay.score(node_counts(need, replay.per_node_rps))[0]

    low, high = -1.0, 3.0
    if not scored(high).meets(replay.service_target):
        return None
    for _ in range(BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if scored(middle).meets(replay.service_target):
            high = middle
        else:
            low = middle
    return scored(high), high


def trailing_means(replay: Replay, minutes: int) -> np.ndarray:
    """Per decision minute from sim_start: the mean demand of the `minutes` before it."""
    rps = np.nan_to_num(replay.rps, nan=0.0)
    total = np.concatenate([[0.0], np.cumsum(rps)])
    now = np.arange(replay.sim_start, len(rps))
    since = np.maximum(now - minutes, 0)
    return (total[now] - total[since]) / np.maximum(now - since, 1)


def volatility(replay: Replay, half_life: int) -> np.ndarray:
    """log(v / its median), v the exponential mean of |Δ log demand| up to the minute before."""
    rps = np.nan_to_num(replay.rps, nan=0.0)
    logs = np.log(rps + 0.5 * replay.per_node_rps)
    steps = np.abs(np.diff(logs, prepend=logs[0]))
    smoothed = pd.Series(steps).ewm(halflife=half_life).mean().to_numpy()
    seen = smoothed[replay.sim_start - 1 : -1]
    return np.log(np.maximum(seen, 1e-9) / max(float(np.median(seen)), 1e-9))


def hour_to_come(replay: Replay) -> np.ndarray:
    """Not causal: the mean demand of the hour centred on each minute."""
    rps = np.nan_to_num(replay.rps, nan=0.0)
    centred = pd.Series(rps).rolling(60, center=True, min_periods=1).mean().to_numpy()
    return centred[replay.sim_start :]


Try = tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]], str]


def best_of(replay: Replay, tries: list[Try]) -> tuple[str, Score] | None:
    best: tuple[str, Score] | None = None
    for label, make, law in tries:
        reference, shape = make()
        found = cheapest_log_headroom(replay, reference, shape, law)
        if found and (best is None or found[0].node_hours < best[1].node_hours):
            score, a = found
            band = f"+ {np.exp(a):.2f}·sqrt(demand·node)" if law == "sqrt" else f"× {np.exp(a):.3f}"
            best = (f"{label} {band}", score)
    return best


def families(replay: Replay) -> dict[str, tuple[str, Score, float] | None]:
    flat = np.zeros(len(replay.rps) - replay.sim_start)
    references = {k: trailing_means(replay, k) for k in TRAILING_MINUTES}
    shapes = {hl: volatility(replay, hl) for hl in VOLATILITY_HALF_LIVES}
    persistence: list[Try] = [
        (f"k={k}", lambda k=k: (references[k], flat), law)
        for k, law in itertools.product(TRAILING_MINUTES, ("scaled", "sqrt"))
    ]
    scaled: list[Try] = [
        (f"k={k} hl={hl} b={b}", lambda k=k, hl=hl, b=b: (references[k], b * shapes[hl]), "scaled")
        for k, hl, b in itertools.product(
            TRAILING_MINUTES, VOLATILITY_HALF_LIVES, VOLATILITY_WEIGHTS
        )
    ]
    coming = hour_to_come(replay)
    return {
        "persistence": best_of(replay, persistence),
        "volatility": best_of(replay, scaled),
        "hour-to-come": best_of(
            replay, [("centred 60 min", lambda: (coming, flat), law) for law in ("scaled", "sqrt")]
        ),
        "last + hour-to-come": best_of(
            replay,
            [
                (
                    f"max(k={k}, centred 60 min)",
                    lambda k=k: (np.maximum(references[k], coming), flat),
                    law,
                )
                for k, law in itertools.product(TRAILING_MINUTES, ("scaled", "sqrt"))
            ],
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--only", action="append", help="run only this trace (repeatable)")
    args = parser.parse_args()
    console = Console(width=140)
    console.print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}")
    for name in args.only or ["nasa_jul95", "servegen_msmall", "alibaba_genai_lora"]:
        began = time.perf_counter()
        trace = load_trace(trace_path(args.traces, name))
        settings = BacktestSettings(per_node_rps=capacity_for(name, float(trace.mean())))
        replay = frame_replay(trace, settings)
        baselines = [BASELINES[b](replay) for b in COMPARED]
        meeting = [b for b in baselines if b.meets_target]
        best = min(meeting, key=lambda b: b.score.node_hours) if meeting else None
        table = Table(title=f"{name}: knobs tuned on the scored span (hindsight)")
        for column in ("rule", "setting", "node-hours", "× best baseline", "late"):
            table.add_column(column, justify="right" if column != "rule" else "left")
        for result in baselines:
            table.add_row(
                result.name,
                " ".join(f"{k}={v}" for k, v in result.knobs.items()),
                f"{result.score.node_hours:,.0f}",
                f"{result.score.node_hours / best.score.node_hours:.3f}" if best else "-",
                f"{result.score.late_share:.3%}",
            )
        for family, found in families(replay).items():
            if found is None:
                table.add_row(family, "never meets the target", "-", "-", "-")
                continue
            label, score = found
            table.add_row(
                family,
                label,
                f"{score.node_hours:,.0f}",
                f"{score.node_hours / best.score.node_hours:.3f}" if best else "-",
                f"{score.late_share:.3%}",
            )
        console.print(table)
        if best:
            console.print(
                f"goal: ≤ {GOAL} × {best.name} = {GOAL * best.score.node_hours:,.0f} node-hours; "
                f"{time.perf_counter() - began:.1f} s",
                highlight=False,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
