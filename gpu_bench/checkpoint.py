"""The sweep's checkpoint: what a rerun of `gpu-bench run` takes up from it.

A sweep writes everything it measured after each configuration (sweep.run_sweep), so an
interrupted one resumes where it stopped. A rerun takes up what the same settings
measured, and no more: not the model's failures, nor measurements of another version of
the model file.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.small_files import MIB, read_small_text
from gpu_bench.sweep_models import SweepResult, SweepSettings
from gpu_bench.workers import MODEL_FAILURES

CHECKPOINT_MAX_BYTES = 256 * MIB  # a sweep's probes come to a few MiB at most


def checkpoint_of(path: Path, settings: SweepSettings) -> tuple[SweepResult, str | None]:
    """Results of an earlier run with the same settings, and why any were set aside:
    not the model's failures (resumed, the rerun after a fix said the old failure again
    without trying), nor any result where the model file has changed since (they measured
    other bytes; a file whose digest either run could not read is taken as the same).
    ValueError where the other settings differ."""
    if not path.exists():
        return SweepResult(settings=settings), None
    try:  # a folder or an unreadable file was a traceback, a FIFO a wait for ever
        text = read_small_text(path, CHECKPOINT_MAX_BYTES)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the checkpoint: {error.strerror}") from None
    except ValueError:  # not UTF-8
        text = ""
    try:
        saved = SweepResult.model_validate(json.loads(text))
    except (ValueError, RecursionError):
        saved = None
    if saved is None or _shaping(saved.settings) != _shaping(settings):
        raise ValueError(
            f"{path}: checkpoint was written with other settings or an older version; "
            "remove it or rerun with the same options"
        )
    then, now = saved.settings.model_sha256, settings.model_sha256
    if then is not None and now is not None and then != now:
        note = (
            f"the model has changed since {path} was written (sha256 {then[:12]}, now "
            f"{now[:12]}): its {len(saved.results)} configurations are measured again"
        )
        return SweepResult(settings=settings), note
    saved.results = [r for r in saved.results if r.failure_kind not in MODEL_FAILURES]
    return saved, None


def _shaping(settings: SweepSettings) -> dict[str, object]:
    """The settings that shape the figures (all but how long a load may take), less the
    model's digest (which sets results aside rather than refusing the checkpoint)."""
    return settings.model_dump(exclude={"load_timeout_s", "model_sha256"})
