"""Forecast accuracy on the bundled traces: MASE of the seasonal and linear predictors.

For each trace in bench/traces/ (or `--traces DIR`) with at least 14 days, demand in req/s is
requests/60. After a warm-up (7 days), at an origin every `--every` minutes, each
predictor is fitted on the history up to the origin (one predictor object per
trace, kept across origins as the daemon keeps it) and forecasts `--horizon`.

MASE = mean |actual - forecast| at a lead, divided by the in-sample MAE of the
one-day seasonal-naive forecast (|y[t] - y[t - 1 day]| over the warm-up days).
The seasonal-naive row forecasts y[t + lead - 1 day]; below 1 beats its in-sample
error, and comparing rows at the same lead is what matters.

Coverage: the share of actuals above the upper band over all leads 1..horizon,
per minute and per request (what the service target bounds), against the target.

    python bench/forecast_accuracy.py [--every 20] [--traces DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from trace_files import DEFAULT_TRACES, trace_name, trace_paths  # run from bench/: on sys.path

from predictors.linear import LinearTrendPredictor
from predictors.seasonal import SeasonalPredictor

DAY = 1440


@dataclass
class Scores:
    name: str
    mase: dict[int, float]
    above_minutes: float | None = None
    above_requests: float | None = None
    ms_per_call: float | None = None


def load_trace(path: Path) -> pd.Series:
    frame = pd.read_csv(path)
    index = pd.to_datetime(frame["timestamp"], utc=True)
    return pd.Series(frame["requests"].to_numpy(dtype=float) / 60.0, index=index)


def evaluate(
    demand: pd.Series, every: int, warmup_days: int, horizon: int, leads: list[int], target: float
) -> list[Scores]:
    values = demand.to_numpy()
    warm = warmup_days * DAY
    scale = float(np.mean(np.abs(values[DAY:warm] - values[: warm - DAY])))
    origins = np.arange(warm - 1, len(values) - 1 - horizon, every)
    lead_steps = np.arange(1, horizon + 1)
    actual = values[origins[:, None] + lead_steps]
    naive = values[origins[:, None] + lead_steps - DAY]
    rows = [_score("seasonal-naive (1 day)", actual, naive, None, scale, leads, None)]
    makers = {
        "seasonal": lambda: SeasonalPredictor(service_target=target),
        "linear (seed)": lambda: LinearTrendPredictor(quantile=1 - target),
    }
    for name, make in makers.items():
        predictor = make()
        point = np.empty_like(actual)
        upper = np.empty_like(actual)
        started = time.perf_counter()
        for row, origin in enumerate(origins):
            forecast = predictor.fit(demand.iloc[: origin + 1]).forecast(timedelta(minutes=horizon))
            point[row], upper[row] = forecast.point, forecast.upper
        per_call = (time.perf_counter() - started) / len(origins) * 1000
        rows.append(_score(name, actual, point, upper, scale, leads, per_call))
    return rows


def _score(
    name: str,
    actual: np.ndarray,
    point: np.ndarray,
    upper: np.ndarray | None,
    scale: float,
    leads: list[int],
    per_call: float | None,
) -> Scores:
    mase = {
        lead: float(np.mean(np.abs(actual[:, lead - 1] - point[:, lead - 1])) / scale)
        for lead in leads
    }
    scores = Scores(name, mase, ms_per_call=per_call)
    if upper is not None:
        above = actual > upper
        scores.above_minutes = float(np.mean(above))
        scores.above_requests = float(np.sum(np.where(above, actual, 0.0)) / np.sum(actual))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    parser.add_argument("--every", type=int, default=20, help="minutes between origins")
    parser.add_argument("--warmup-days", type=int, default=7)
    parser.add_argument("--horizon", type=int, default=30, help="minutes")
    parser.add_argument("--service-target", type=float, default=0.01)
    args = parser.parse_args()
    leads = [10, 30]
    print(
        f"MASE scale: in-sample MAE of the 1-day seasonal-naive over the first "
        f"{args.warmup_days} days; origins every {args.every} min after them; "
        f"band target: {args.service_target:.0%} of minutes/requests above upper\n"
    )
    header = f"{'trace':<20} {'predictor':<24}" + "".join(f" MASE@{lead:<3}" for lead in leads)
    print(header + "  above(min) above(req)  ms/call")
    for path in trace_paths(args.traces):
        demand = load_trace(path)
        if len(demand) < 14 * DAY:  # servegen_msmall is exactly 14 days of minutes
            continue
        rows = evaluate(
            demand, args.every, args.warmup_days, args.horizon, leads, args.service_target
        )
        for scores in rows:
            cells = "".join(f" {scores.mase[lead]:8.3f}" for lead in leads)
            band = (
                f"  {scores.above_minutes:9.2%} {scores.above_requests:9.2%}"
                if scores.above_minutes is not None
                else " " * 21
            )
            speed = f" {scores.ms_per_call:8.2f}" if scores.ms_per_call is not None else ""
            print(f"{trace_name(path):<20} {scores.name:<24}{cells}{band}{speed}")


if __name__ == "__main__":
    main()
