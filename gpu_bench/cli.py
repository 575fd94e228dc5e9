"""`gpu-bench run` measures a model's capacity profile; `gpu-bench show` prints one."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.durations import parse_duration
from gpu_bench.profile import load_profile

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{option} needs positive integers, got {text!r}")
    return values


def _seconds(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _command_line(context: typer.Context) -> str:
    """The options given on the command line, for the profile's record of how it was made."""
    parts = ["gpu-bench", context.info_name or "run"]
    for parameter in context.command.params:
        source = context.get_parameter_source(parameter.name or "")
        if source is not None and source.name == "COMMANDLINE" and parameter.opts:
            parts += [parameter.opts[0], str(context.params[parameter.name or ""])]
    return shlex.join(parts)


@app.command()
def run(
    context: typer.Context,
    model: Annotated[
        str,
        typer.Option(help="module:function, a TorchScript file, or a reference: cnn, transformer"),
    ],
    out: Annotated[Path, typer.Option(help="capacity profile to write (YAML)")],
    workers: Annotated[str, typer.Option(help="worker processes per device to try")] = "1,2,4,8",
    batch: Annotated[str, typer.Option(help="maximum dynamic batch sizes to try")] = "1,4,16",
    latency_target: Annotated[str, typer.Option(help="p95 latency to hold")] = "3s",
    max_batch_wait: Annotated[str, typer.Option(help="longest wait to fill a batch")] = "10ms",
    gpus_per_node: Annotated[
        int | None, typer.Option(help="devices per node (default: GPUs visible here, or 1)")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda:0, ...")] = "auto",
    input_shape: Annotated[
        str | None, typer.Option(help="example input shape for a TorchScript file: 1,3,224,224")
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="measurements at the found rate")] = 3,
    warmup: Annotated[str, typer.Option(help="warm-up before each measurement")] = "3s",
    window: Annotated[str, typer.Option(help="shortest measurement window")] = "2s",
    min_window_requests: Annotated[int, typer.Option(min=10)] = 100,
    max_windows: Annotated[int, typer.Option(min=3)] = 10,
    memory_cap_mib: Annotated[
        int | None, typer.Option(help="per-worker memory cap; over it counts as out of memory")
    ] = None,
    threads_per_worker: Annotated[int | None, typer.Option(min=1)] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="resume file (default: OUT.checkpoint.json)")
    ] = None,
    chart: Annotated[Path | None, typer.Option(help="PNG chart (default: OUT.png)")] = None,
    precision: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="stop bisecting within this share")
    ] = 0.05,
    seed: int = 0,
) -> None:
    """Sweep workers x batch, find each one's highest rate under the target, write a profile."""
    from gpu_bench.models import ModelLoadError, parse_model_spec
    from gpu_bench.profile import save_profile
    from gpu_bench.report import BarProgress, profile_table, results_table, write_chart
    from gpu_bench.sampling import device_count, device_name, resolve_device
    from gpu_bench.sweep import SweepSettings, load_checkpoint, run_sweep, to_profile

    shape = _ints(input_shape, "--input-shape") if input_shape else None
    try:
        spec = parse_model_spec(model, shape)
    except ModelLoadError as error:
        raise typer.BadParameter(str(error)) from None
    resolved = resolve_device(device)
    settings = SweepSettings(
        model=spec.target,
        input_shape=spec.input_shape,
        device=resolved,
        workers=_ints(workers, "--workers"),
        batches=_ints(batch, "--batch"),
        max_batch_wait_s=_seconds(max_batch_wait),
        latency_target_s=_seconds(latency_target),
        gpus_per_node=gpus_per_node or device_count(resolved),
        repeats=repeats,
        warmup_s=_seconds(warmup),
        window_s=_seconds(window),
        min_window_requests=min_window_requests,
        max_windows=max_windows,
        memory_cap_mib=memory_cap_mib,
        threads_per_worker=threads_per_worker,
        precision=precision,
        seed=seed,
    )
    checkpoint = checkpoint or out.with_name(out.name + ".checkpoint.json")
    chart = chart or out.with_suffix(".png")
    try:
        already = len(load_checkpoint(checkpoint, settings).results)
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    if already:
        console.print(f"resuming from {checkpoint}: {already} configurations already measured")
    progress = BarProgress(len(settings.workers) * len(settings.batches), already)
    try:
        sweep = run_sweep(settings, checkpoint, progress)
    finally:
        progress.close()
    wide = console if console.is_terminal else Console(stderr=True, width=150)
    wide.print(results_table(sweep))
    console.print(f"chart: {write_chart(sweep, chart)}")
    command = _command_line(context)
    try:
        profile = to_profile(sweep, device_name(resolved), command)
    except ValueError as error:
        console.print(f"[red]{error}; no profile written[/red]")
        raise typer.Exit(1) from None
    save_profile(out, profile)
    console.print(profile_table(profile, str(out)))


@app.command()
def show(path: Path) -> None:
    """Print a capacity profile, validating it the way the daemon does."""
    from gpu_bench.report import profile_table

    try:
        profile = load_profile(path)
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    Console().print(profile_table(profile, str(path)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
