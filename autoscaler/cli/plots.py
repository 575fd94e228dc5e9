"""PNG plots for `autoscaler backtest --plot` and `autoscaler forecast --plot` (Agg backend).

matplotlib is imported inside the functions: the daemon never pays for it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from autoscaler.backtest.queue import queue_lateness
from autoscaler.config.schema import Pool
from autoscaler.digest import PoolDigest
from autoscaler.overrides import OverridesFile, active_override
from autoscaler.plan import limits_of
from autoscaler.policy import Observation, apply_bounds, nodes_for
from autoscaler.schedules import bounds_at
from common.atomic import replace_atomically
from common.cli import option_output
from common.extras import needs_extra
from predictors.base import Forecast

if TYPE_CHECKING:
    from autoscaler.backtest.runner import BacktestReport

MAX_POINTS = 3000
"""Longer series are shown in blocks (mean demand, least ready capacity) to stay legible."""


def _pyplot() -> Any:
    with needs_extra("a plot"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt


def _block(frame: pd.DataFrame, how: dict[str, str]) -> pd.DataFrame:
    if len(frame) <= MAX_POINTS:
        return frame
    minutes = int(np.ceil(len(frame) / MAX_POINTS))
    return frame.resample(f"{minutes}min").agg(how)


def plot_output(path: Path) -> Path:
    """--plot's file as it will be written (none given a suffix: PNG, named .png, as _save
    names it, for the command to say the file it wrote), checked before the work
    (common.cli.option_output) and in a picture format matplotlib writes; a ValueError
    names the option."""
    from matplotlib.backend_bases import FigureCanvasBase

    option_output("--plot", path)
    known = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lower().removeprefix(".")
    if suffix and suffix not in known:
        raise ValueError(
            f"--plot: {path}: matplotlib writes no {suffix!r} picture; name it .png "
            f"(or one of {', '.join(sorted(known))})"
        )
    return path if suffix else option_output("--plot", path.with_name(f"{path.name}.png"))


def backtest_plot(report: BacktestReport, path: Path) -> None:
    """Demand against the policy's ready capacity, minutes with late requests marked; below,
    the node counts of the policy, the best baseline that meets the target, and the oracle."""
    plt = _pyplot()
    replay = report.replay
    policy = report.result("policy")
    best = report.best_baseline()
    times = report.times[replay.sim_start :]
    per_node = replay.per_node_rps
    rps = np.nan_to_num(replay.rps[replay.sim_start :], nan=0.0)
    late = queue_lateness(rps * 60.0, policy.ready * per_node, replay.latency_target_s).late
    columns: dict[str, Any] = {
        "demand": rps,
        "ready_capacity": policy.ready * per_node,
        "policy_nodes": policy.desired,
        "late": late,
    }
    how = {"demand": "mean", "ready_capacity": "min", "policy_nodes": "mean", "late": "sum"}
    if best is not None:
        columns["best_nodes"] = best.desired
        how["best_nodes"] = "mean"
    try:
        columns["oracle_nodes"] = report.result("oracle").desired
        how["oracle_nodes"] = "mean"
    except StopIteration:
        pass
    frame = pd.DataFrame(columns, index=times)
    frame = _block(frame[frame.index >= pd.Timestamp(report.scored_from)], how)

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(frame.index, frame["demand"], lw=0.6, color="#1f77b4", label="demand (req/s)")
    top.plot(
        frame.index,
        frame["ready_capacity"],
        lw=0.8,
        color="#2ca02c",
        drawstyle="steps-post",
        label="policy: ready capacity (req/s)",
    )
    late_at = frame.index[frame["late"] > 1e-9]
    if len(late_at):
        top.scatter(
            late_at,
            np.zeros(len(late_at)),
            marker="|",
            s=120,
            color="#d62728",
            label="late requests",
            zorder=3,
        )
    top.set_ylabel("req/s")
    top.set_ylim(bottom=0)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(_title(report), fontsize=9)
    bottom.plot(frame.index, frame["policy_nodes"], lw=0.8, color="#2ca02c", label="policy")
    if best is not None:
        bottom.plot(
            frame.index, frame["best_nodes"], lw=0.6, color="#ff7f0e", label=f"{best.name} (best)"
        )
    if "oracle_nodes" in frame:
        bottom.plot(
            frame.index, frame["oracle_nodes"], lw=0.6, color="#7f7f7f", label="oracle", alpha=0.8
        )
    bottom.set_ylabel("nodes paid")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper left", fontsize=8, ncol=3)
    figure.autofmt_xdate()
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def _save(figure: Any, path: Path) -> None:
    """Whole or not at all (common.atomic), a new file 0644 (a picture to share): savefig
    straight to `path` left a picture cut short where the disk filled, in place of the last
    run's. In the format the suffix names; none: PNG, its name given .png, as savefig does."""
    kind = path.suffix.lower().removeprefix(".")
    if not kind:
        kind, path = "png", path.with_name(f"{path.name}.png")
    replace_atomically(
        path, lambda handle: figure.savefig(handle, dpi=90, format=kind), new_mode=0o644
    )


def _title(report: BacktestReport) -> str:
    policy = report.result("policy")
    best = report.best_baseline()
    text = (
        f"{Path(report.trace).name}: policy {policy.score.node_hours:,.0f} node-hours, "
        f"{policy.score.late_share:.2%} late"
    )
    if best is not None:
        text += (
            f"; best baseline {best.name} {best.score.node_hours:,.0f} node-hours, "
            f"{best.score.late_share:.2%} late"
        )
    return text


def forecast_plot(
    path: Path,
    pool: Pool,
    history: pd.Series,
    forecast: Forecast,
    per_node_rps: float,
    overrides: OverridesFile | None = None,
) -> None:
    """History, forecast with its upper-quantile band, and per forecast step the nodes the
    upper forecast needs, the count after bounds (desired) and any schedule floor."""
    plt = _pyplot()
    times = forecast.times
    nodes, desired, floors = _forecast_counts(pool, forecast, per_node_rps, overrides)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    # The recent past at the forecast's own scale: as much history as the forecast spans
    # (at least a day), not the whole week the predictor learned from.
    span = max(times[-1] - history.index[-1], pd.Timedelta(days=1))
    shown = history[history.index >= history.index[-1] - span].dropna()
    top.plot(shown.index, shown.to_numpy(), lw=0.8, color="#1f77b4", label="demand (req/s)")
    top.plot(times, forecast.point, lw=1.2, color="#ff7f0e", label=f"forecast ({forecast.model})")
    top.fill_between(
        times, forecast.point, forecast.upper, color="#ff7f0e", alpha=0.25, label="upper quantile"
    )
    top.set_ylabel("req/s")
    top.set_ylim(bottom=0)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(
        f"{pool.name}: {per_node_rps:g} req/s per node at "
        f"{pool.target_utilization:.0%} target utilization",
        fontsize=9,
    )
    spare = f" + {pool.spare_nodes} spare" if pool.spare_nodes else ""
    bottom.step(
        times, nodes, where="post", lw=1.0, color="#ff7f0e", label=f"nodes for upper{spare}"
    )
    bottom.step(times, desired, where="post", lw=1.4, color="#2ca02c", label="after bounds")
    if any(f is not None for f in floors):
        values = [np.nan if f is None else f for f in floors]
        bottom.step(times, values, where="post", ls="--", color="#9467bd", label="schedule floor")
    bottom.set_ylabel("nodes")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def _forecast_counts(
    pool: Pool, forecast: Forecast, per_node_rps: float, overrides: OverridesFile | None
) -> tuple[list[int], list[int], Sequence[int | None]]:
    limits = limits_of(pool)
    nodes, desired, floors = [], [], []
    for at, upper in zip(forecast.times, forecast.upper, strict=True):
        when = at.to_pydatetime()
        count = nodes_for(float(upper), per_node_rps, pool.target_utilization) + pool.spare_nodes
        schedule = bounds_at(pool.schedules, when)
        override = active_override(overrides, pool.name, when) if overrides else None
        obs = Observation(
            at=when, current=count, forecast_nodes=count, schedule=schedule, override=override
        )
        nodes.append(count)
        desired.append(apply_bounds(count, obs, limits, []))
        floors.append(schedule.floor)
    return nodes, desired, floors


def digest_png(digest: PoolDigest) -> bytes:
    """A pool's day for the digest: demand against ready capacity, late minutes shaded; below,
    the nodes paid for and the nodes ready."""
    plt = _pyplot()
    frame = digest.frame
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    times = frame.index.tz_convert(None)
    top.plot(times, frame["demand"], lw=0.8, color="#1f77b4", label="demand")
    top.step(times, frame["capacity"], where="post", lw=1.0, color="#2ca02c", label="capacity")
    short = frame["demand"] > frame["capacity"]
    if short.any():
        top.fill_between(
            times, 0, frame["demand"].where(short), step="post", color="#d62728", alpha=0.3,
            label="demand above capacity",
        )  # fmt: skip
    top.set_ylabel("req/s")
    top.set_ylim(bottom=0)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(
        f"{digest.pool}: {digest.start:%Y-%m-%d %H:%M} to {digest.end:%Y-%m-%d %H:%M} UTC"
    )
    bottom.step(times, frame["nodes"], where="post", lw=1.2, color="#ff7f0e", label="nodes")
    bottom.step(times, frame["ready"], where="post", lw=1.0, color="#2ca02c", label="ready")
    bottom.set_ylabel("nodes")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="upper left", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
