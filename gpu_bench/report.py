"""What a person reads: the results table, the chart, the profile, and a progress bar."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.table import Table

from common.atomic import replace_atomically, write_atomically
from common.extras import needs_extra
from gpu_bench.loadgen import RateMeasurement
from gpu_bench.profile import CapacityProfile
from gpu_bench.sweep_models import ConfigResult, SweepResult


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def results_table(sweep: SweepResult) -> Table:
    chosen = sweep.chosen()
    table = Table(
        title=f"gpu-bench: {sweep.settings.model} on {sweep.settings.device} "
        f"(p95 target {sweep.settings.latency_target_s}s; times in ms)"
    )
    headings = ("W", "B", "status", "req/s", "±", "p50", "p95", "p99", "queue", "compute")
    for heading in (*headings, "batch", "util"):
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("note")
    for result in sweep.results:
        mark = " *" if result is chosen else ""
        table.add_row(
            str(result.workers),
            str(result.batch),
            result.status + mark,
            "-" if result.rate_rps is None else f"{result.rate_rps:.1f}",
            _share(result.throughput_spread),
            _ms(result.median("p50_s")),
            _ms(result.median("p95_s")),
            _ms(result.median("p99_s")),
            _ms(result.median("queue_p50_s")),
            _ms(result.median("compute_p50_s")),
            "-" if result.median("mean_batch") is None else f"{result.median('mean_batch'):.1f}",
            _share(result.median("gpu_utilization")),
            ("generator-limited; " if result.generator_limited else "")
            + (result.reason if result.status != "ok" else ""),
        )
    for config, reason in sweep.skipped.items():
        workers, batch = config.split("x")
        table.add_row(workers, batch, "skipped", *["-"] * 9, reason)
    return table


def profile_table(profile: CapacityProfile, source: str = "") -> Table:
    table = Table(title=f"capacity profile {source}".strip(), show_header=False)
    table.add_column("field")
    table.add_column("value")
    for name, value in profile.model_dump().items():
        table.add_row(name, "-" if value is None else str(value))
    return table


CSV_FIELDS = (
    "rate_rps", "passed", "refused", "decided", "reason", "requests", "measured_s",
    "warmup_s", "late_share", "late_share_low", "late_share_high", "throughput_rps",
    "served_share", "p50_s", "p95_s", "p99_s", "tail_s", "queue_p50_s", "compute_p50_s",
    "mean_batch", "late_send_share", "gpu_utilization", "gpu_memory_used_mib", "gpu_power_w",
)  # fmt: skip


def write_csv(sweep: SweepResult, path: Path) -> Path:
    """Every measurement of every configuration, one row each, in the order they ran;
    whole or not at all (a full disk left one cut short in place of the last run's)."""
    import csv

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(("workers", "batch", *CSV_FIELDS))
    for result in sweep.results:
        for measurement in result.probes:
            row = measurement.model_dump()
            writer.writerow((result.workers, result.batch, *(row[f] for f in CSV_FIELDS)))
    write_atomically(path, buffer.getvalue(), new_mode=0o644)
    return path


def write_chart(sweep: SweepResult, path: Path) -> Path:
    """Latency at the percentile against offered rate: one curve per configuration.

    Every measured rate is a point (hollow when it failed); the edge each configuration
    settled on is a star, the profile's chosen one circled in red.
    """
    with needs_extra("gpu-bench's chart"):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

    settings = sweep.settings
    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    for result in sweep.results:
        points = sorted((m for m in result.probes if m.requests), key=lambda m: m.rate_rps)
        if not points:
            continue
        xs = [m.rate_rps for m in points]
        ys = [m.tail_s * 1000 for m in points]
        (line,) = axes.plot(xs, ys, lw=1, label=f"{result.workers} workers, batch {result.batch}")
        colour = line.get_color()
        failed = [(x, y) for m, x, y in zip(points, xs, ys, strict=True) if not m.passed]
        axes.scatter(xs, ys, s=18, color=colour, zorder=3)
        if failed:
            axes.scatter(*zip(*failed, strict=True), s=40, facecolors="white",
                         edgecolors=colour, zorder=4)  # fmt: skip
        edge = [m for m in points if m.rate_rps == result.rate_rps and m.passed]
        if result.status == "ok" and edge:
            axes.scatter([edge[0].rate_rps], [edge[0].tail_s * 1000], marker="*", s=180,
                         color=colour, edgecolors="black", zorder=5)  # fmt: skip
            if result is sweep.chosen():
                axes.scatter([edge[0].rate_rps], [edge[0].tail_s * 1000], s=400,
                             facecolors="none", edgecolors="red", linewidths=2, zorder=6,
                             label="chosen edge")  # fmt: skip
    axes.axhline(settings.latency_target_s * 1000, color="grey", ls="--", label="target")
    axes.set_xlabel("offered requests/s per device (hollow: failed; star: the edge found)")
    axes.set_ylabel(f"p{settings.percentile * 100:g} latency (ms)")
    axes.set_yscale("log")
    axes.set_title(f"{settings.model} on {settings.device}", fontsize="small")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    kind = path.suffix[1:] or None  # as savefig reads a path's
    try:  # whole or not at all, as the CSV
        replace_atomically(path, lambda h: figure.savefig(h, format=kind), new_mode=0o644)
    finally:
        plt.close(figure)
    return path


class BarProgress:
    """A tqdm bar over the sweep's configurations; probes show as the bar's postfix."""

    def __init__(self, sweep_size: int, already_measured: int = 0) -> None:
        from tqdm import tqdm

        self._bar: Any = tqdm(total=sweep_size, unit="config", dynamic_ncols=True)
        self._measured = already_measured
        self._config = ""

    def config_started(self, workers: int, batch: int) -> None:
        self._config = f"{workers}w x b{batch}"
        self._bar.set_description(self._config)

    def probe_done(self, measurement: RateMeasurement) -> None:
        verdict = "pass" if measurement.passed else "fail"
        self._bar.set_postfix_str(
            f"{measurement.rate_rps:.1f} req/s {verdict}, p95 {measurement.p95_s * 1000:.0f} ms"
        )

    def config_done(self, result: ConfigResult, skipped: int) -> None:
        self._measured += 1
        self._bar.n = min(self._bar.total, self._measured + skipped)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
