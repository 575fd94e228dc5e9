"""What a person reads: the results table, the chart, the profile, and a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from common.extras import needs_extra
from gpu_bench.loadgen import RateMeasurement
from gpu_bench.profile import CapacityProfile
from gpu_bench.sweep import ConfigResult, SweepResult


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


def write_chart(sweep: SweepResult, path: Path) -> Path:
    """Sustained rate against p95, one point per configuration, the chosen one marked."""
    with needs_extra("gpu-bench's chart"):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    usable = [r for r in sweep.results if r.status == "ok" and r.rate_rps]
    batches = sorted({r.batch for r in usable})
    for batch in batches:
        points = sorted((r for r in usable if r.batch == batch), key=lambda r: r.workers)
        xs = [r.rate_rps or 0.0 for r in points]
        ys = [(r.median("p95_s") or 0.0) * 1000 for r in points]
        axes.plot(xs, ys, marker="o", label=f"batch {batch}")
        for result, x, y in zip(points, xs, ys, strict=True):
            axes.annotate(f"{result.workers}w", (x, y), textcoords="offset points", xytext=(4, 4))
    chosen = sweep.chosen()
    if chosen is not None:
        axes.scatter(
            [chosen.rate_rps],
            [(chosen.median("p95_s") or 0.0) * 1000],
            s=250,
            facecolors="none",
            edgecolors="red",
            linewidths=2,
            label=f"chosen: {chosen.workers} workers, batch {chosen.batch}",
            zorder=5,
        )
    axes.axhline(sweep.settings.latency_target_s * 1000, color="grey", ls="--", label="target")
    axes.set_xlabel("sustained requests/s per device")
    axes.set_ylabel("p95 latency (ms)")
    axes.set_title(f"{sweep.settings.model} on {sweep.settings.device}")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
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
