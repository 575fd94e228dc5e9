"""`gpu-bench run` measures a model's capacity profile; `gpu-bench show` prints one."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from common.cli import CONTEXT, add_version_option, option_duration, option_output
from common.standard_streams import said_when_stdout_refuses
from gpu_bench.profile import load_profile

if TYPE_CHECKING:
    from types import FrameType

    from gpu_bench.endpoint import EndpointSettings
    from gpu_bench.report import BarProgress
    from gpu_bench.sweep_models import SweepResult, SweepSettings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, context_settings=CONTEXT
)
add_version_option(app, "gpu-bench")


def _plain_console(**options: Any) -> Console:
    """A console that prints text as it is. A model's path, name or error message is the
    user's text: rich would read its brackets as markup (`[/batch]` raised MarkupError, a
    traceback in place of the result) and `:three:` as an emoji code."""
    return Console(markup=False, emoji=False, **options)


console = _plain_console(stderr=True, soft_wrap=True)  # a path in a message stays whole


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{option}: expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{option} needs positive integers, got {text!r}")
    return values


def _seconds(text: str, option: str) -> float:
    """As every command line reads a duration (a bare number is seconds), naming the option."""
    try:
        return option_duration(option, text).total_seconds()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _positive_seconds(text: str, option: str) -> float:
    seconds = _seconds(text, option)
    if seconds <= 0:
        raise typer.BadParameter(f"{option} must be longer than 0s, got {text!r}")
    return seconds


def _command_line(context: typer.Context) -> str:
    """The options given on the command line, for the profile's record of how it was made."""
    parts = ["gpu-bench", context.info_name or "run"]
    for parameter in context.command.params:
        source = context.get_parameter_source(parameter.name or "")
        if source is not None and source.name == "COMMANDLINE" and parameter.opts:
            value = context.params[parameter.name or ""]
            for one in value if isinstance(value, list | tuple) else [value]:
                parts += [parameter.opts[0], _shown(parameter.name or "", str(one))]
    return shlex.join(parts)


def _shown(option: str, value: str) -> str:
    """An option's value as a record may show it: header values and URL passwords hidden."""
    from gpu_bench.endpoint import shown_url

    if option == "header":
        return value.partition(":")[0].strip() + ": ***"
    return shown_url(value) if option == "endpoint" else value


@app.command()
def run(
    context: typer.Context,
    out: Annotated[Path, typer.Option(help="capacity profile to write (YAML)")],
    model: Annotated[
        str | None,
        typer.Option(
            help="module:function, file.py:function, an exported program (.pt2), a "
            "TorchScript file, or a reference: cnn, transformer"
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="URL of an HTTP inference server to drive instead of a --model"),
    ] = None,
    body_file: Annotated[
        Path | None, typer.Option(help="request body for --endpoint (JSON or raw bytes)")
    ] = None,
    content_type: Annotated[
        str, typer.Option(help="Content-Type of the --endpoint body")
    ] = "application/json",
    header: Annotated[
        list[str] | None,
        typer.Option(help="'Name: value' header for --endpoint, repeatable; values never shown"),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="requests in flight at most to --endpoint")
    ] = 8,
    ca_file: Annotated[
        Path | None, typer.Option(help="CA (PEM) to verify an https --endpoint: a self-signed one")
    ] = None,
    workers: Annotated[str, typer.Option(help="worker processes per device to try")] = "1,2,4,8",
    batch: Annotated[str, typer.Option(help="maximum dynamic batch sizes to try")] = "1,4,16",
    latency_target: Annotated[
        str, typer.Option(help="latency that --percentile of requests must stay under")
    ] = "3s",
    percentile: Annotated[
        float,
        typer.Option(min=50, max=99.99, help="percentile held under the target (95 = p95)"),
    ] = 95.0,
    max_batch_wait: Annotated[str, typer.Option(help="longest wait to fill a batch")] = "10ms",
    gpus_per_node: Annotated[
        int | None,
        typer.Option(min=1, help="devices per node (default: GPUs visible here, or 1)"),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda:0, ...")] = "auto",
    input_shape: Annotated[
        str | None,
        typer.Option(
            help="example input shape for a TorchScript file (or a .pt2 saved without "
            "its example): 1,3,224,224"
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option(min=1, help="measurements that must confirm the found rate")
    ] = 1,
    warmup: Annotated[
        str, typer.Option(help="shortest warm-up before each measurement (longer near capacity)")
    ] = "2s",
    max_warmup: Annotated[str, typer.Option(help="longest warm-up near capacity")] = "9s",
    block_requests: Annotated[
        int,
        typer.Option(min=5, help="requests per block of the confidence bound (batch means)"),
    ] = 50,
    max_requests: Annotated[
        int,
        typer.Option(min=50, help="requests at most per rate; near the edge the estimate decides"),
    ] = 2000,
    generator_retries: Annotated[
        int, typer.Option(min=0, help="re-measure a rate whose sends ran late this many times")
    ] = 2,
    memory_cap_mib: Annotated[
        int | None,
        typer.Option(min=1, help="per-worker memory cap; over it counts as out of memory"),
    ] = None,
    threads_per_worker: Annotated[
        int | None, typer.Option(min=1, help="torch threads per worker (default: share cores)")
    ] = None,
    load_timeout: Annotated[
        str,
        typer.Option(help="how long workers may take to load the model (and each start-up call)"),
    ] = "10m",
    checkpoint: Annotated[
        Path | None, typer.Option(help="resume file (default: OUT.checkpoint.json)")
    ] = None,
    chart: Annotated[Path | None, typer.Option(help="PNG chart (default: OUT.png)")] = None,
    csv: Annotated[
        Path | None, typer.Option(help="every measurement as CSV (default: OUT.csv)")
    ] = None,
    precision: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="stop bisecting within this share")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="seed of the Poisson arrival schedules")] = 0,
) -> None:
    """Sweep workers x batch, find each one's highest rate under the target, write a profile."""
    from gpu_bench.checkpoint import checkpoint_of
    from gpu_bench.endpoint import shown_url
    from gpu_bench.outcome import refusal, to_profile
    from gpu_bench.profile import save_profile
    from gpu_bench.report import (
        BarProgress,
        profile_table,
        results_table,
        write_chart,
        write_csv,
    )
    from gpu_bench.sweep_models import SweepSettings

    common = {
        "workers": _ints(workers, "--workers"),
        "batches": _ints(batch, "--batch"),
        "max_batch_wait_s": _seconds(max_batch_wait, "--max-batch-wait"),
        "latency_target_s": _seconds(latency_target, "--latency-target"),
        "percentile": percentile / 100,
        "repeats": repeats,
        "warmup_s": _seconds(warmup, "--warmup"),
        "max_warmup_s": _seconds(max_warmup, "--max-warmup"),
        "block_requests": block_requests,
        "max_requests": max_requests,
        "generator_retries": generator_retries,
        "memory_cap_mib": memory_cap_mib,
        "threads_per_worker": threads_per_worker,
        "load_timeout_s": _positive_seconds(load_timeout, "--load-timeout"),
        "precision": precision,
        "seed": seed,
    }
    if (model is None) == (endpoint is None):
        raise typer.BadParameter("give either --model or --endpoint")
    target: EndpointSettings | None = None
    if endpoint is not None:
        target = _endpoint(endpoint, body_file, content_type, header or [], concurrency, ca_file)
        settings = SweepSettings(
            **{**common, "workers": [1], "batches": [1]},
            model=shown_url(endpoint), device="endpoint", gpus_per_node=gpus_per_node or 1,
            endpoint_body=str(body_file), endpoint_headers=sorted(target.headers),
            endpoint_concurrency=concurrency,
        )  # fmt: skip
        device_label = f"endpoint {shown_url(endpoint)}"
    else:
        assert model is not None
        settings, device_label = _model_settings(model, input_shape, device, gpus_per_node, common)
    checkpoint = checkpoint or out.with_name(out.name + ".checkpoint.json")
    chart = chart or out.with_suffix(".png")
    csv = csv or out.with_suffix(".csv")
    outputs = {"--out": out, "--checkpoint": checkpoint, "--chart": chart, "--csv": csv}
    for option, path in outputs.items():
        _writable(option, path)
    try:
        resumed, set_aside = checkpoint_of(checkpoint, settings)
    except ValueError as error:
        console.print(str(error), style="red")
        raise typer.Exit(2) from None
    already = len(resumed.results)
    if set_aside:
        console.print(set_aside, style="yellow")
    if already:
        console.print(f"resuming from {checkpoint}: {already} configurations already measured")
    progress = BarProgress(len(settings.workers) * len(settings.batches), already)
    sweep = _interruptible_sweep(settings, checkpoint, progress, target, resumed)
    wide = console if console.is_terminal else _plain_console(stderr=True, width=150)
    wide.print(results_table(sweep))
    _written("--chart", chart, checkpoint, lambda: write_chart(sweep, chart))
    console.print(f"chart: {chart}")
    _written("--csv", csv, checkpoint, lambda: write_csv(sweep, csv))
    console.print(f"measurements: {csv}")
    refused = refusal(sweep)
    if refused is not None:
        console.print(f"{refused.message}; no profile written", style="red")
        raise typer.Exit(refused.exit_code)
    profile = to_profile(sweep, device_label, _command_line(context))
    _written("--out", out, checkpoint, lambda: save_profile(out, profile))
    console.print(profile_table(profile, str(out)))


def _writable(option: str, path: Path) -> None:
    """Refuse, before measuring, an output no file can be written to (its folder a file, a
    read-only disk, the path a folder): found after the sweep, it was a traceback and the
    profile lost, after minutes or hours of measuring."""
    try:
        option_output(option, path)
    except ValueError as error:
        console.print(str(error), style="red")
        raise typer.Exit(2) from None


def _written(option: str, path: Path, checkpoint: Path, write: Callable[[], object]) -> None:
    """An output written once the sweep is done. A disk that filled (or went read-only)
    since `_writable` looked is said, naming the file and where the measurements are
    kept: it was a traceback naming no file, and no profile, after hours of measuring."""
    try:
        write()
    except OSError as error:
        console.print(
            f"{option}: cannot write {path}: {error.strerror or error}; what was measured is "
            f"kept in {checkpoint}: the same command, once there is room, resumes from there "
            "and measures nothing again",
            style="red",
        )
        raise typer.Exit(1) from None


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _interruptible_sweep(
    settings: SweepSettings,
    checkpoint: Path,
    progress: BarProgress,
    target: EndpointSettings | None,
    resumed: SweepResult,
) -> SweepResult:
    """The sweep, ended by Ctrl-C or SIGTERM (kill, a CI job's timeout) the same way: the
    workers stopped, the checkpoint kept, a line saying how to resume, exit code 130.
    Without this, SIGTERM ended the process where it stood, leaving its workers behind."""
    from gpu_bench.sweep import CheckpointUnwritten, run_sweep

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_sweep(settings, checkpoint, progress, target, resumed)
    except CheckpointUnwritten as error:  # the sweep's end would meet the same full disk
        progress.close()
        kept = "what it held before is kept" if checkpoint.exists() else "nothing is kept"
        console.print(
            f"{error}; the sweep stopped: {kept}, and the same command, once there is room, "
            "resumes from there",
            style="red",
        )
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        progress.close()
        kept = (
            f"what was measured is kept in {checkpoint}: the same command resumes from there"
            if checkpoint.exists()
            else "no configuration was measured yet"
        )
        console.print(f"interrupted; {kept}", style="red")
        raise typer.Exit(130) from None
    finally:
        progress.close()
        signal.signal(signal.SIGTERM, previous)


def _model_settings(
    model: str,
    input_shape: str | None,
    device: str,
    gpus_per_node: int | None,
    common: dict[str, Any],
) -> tuple[SweepSettings, str]:
    from gpu_bench.models import ModelLoadError, model_sha256, parse_model_spec
    from gpu_bench.sampling import device_count, device_name, resolve_device
    from gpu_bench.sweep_models import SweepSettings

    shape = _ints(input_shape, "--input-shape") if input_shape else None
    try:
        spec = parse_model_spec(model, shape)
    except ModelLoadError as error:
        raise typer.BadParameter(str(error)) from None
    try:
        resolved = resolve_device(device)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    settings = SweepSettings(
        **common,
        model=spec.target,
        model_sha256=model_sha256(spec),
        input_shape=spec.input_shape,
        device=resolved,
        gpus_per_node=gpus_per_node or device_count(resolved),
    )
    return settings, device_name(resolved)


def _endpoint(
    url: str, body_file: Path | None, content_type: str, headers: list[str], concurrency: int,
    ca_file: Path | None,
) -> EndpointSettings:  # fmt: skip
    from gpu_bench.endpoint import EndpointSettings, ca_file_problem, parse_header

    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter("--endpoint needs an http:// or https:// URL")
    if body_file is None:
        raise typer.BadParameter("--endpoint needs --body-file (the request to send)")
    try:
        body = body_file.read_bytes()
        pairs = dict(parse_header(text) for text in headers)
    except OSError as error:
        raise typer.BadParameter(f"{body_file}: cannot read: {error.strerror}") from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    ca = str(ca_file) if ca_file else None
    if ca is not None and (problem := ca_file_problem(ca)) is not None:
        raise typer.BadParameter(problem)
    return EndpointSettings(url, body, content_type, pairs, concurrency, ca_file=ca)


@app.command()
def show(
    path: Annotated[Path, typer.Argument(help="capacity profile (YAML) to print")],
) -> None:
    """Print a capacity profile, validating it the way the daemon does."""
    from gpu_bench.report import profile_table

    try:
        profile = load_profile(path)
    except ValueError as error:
        console.print(str(error), style="red")
        raise typer.Exit(2) from None
    _plain_console().print(profile_table(profile, str(path)))


def main() -> None:
    said_when_stdout_refuses("gpu-bench", app)


if __name__ == "__main__":
    main()
