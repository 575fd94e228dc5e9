"""The sweep's checkpoint: what a rerun takes up, and what it sets aside."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from gpu_bench.checkpoint import checkpoint_of
from gpu_bench.sweep_models import ConfigResult, SweepResult, SweepSettings
from gpu_bench.workers import MODEL_FAILURES

BEFORE, AFTER = "a" * 64, "b" * 64


def _checkpoint(path: Path, digest: str | None) -> None:
    settings = SweepSettings(model="served.py:build", model_sha256=digest)
    measured = ConfigResult(workers=1, batch=1, status="ok", rate_rps=12.0)
    failed = ConfigResult(
        workers=2, batch=1, status="infeasible", failure_kind=next(iter(MODEL_FAILURES))
    )
    path.write_text(SweepResult(settings=settings, results=[measured, failed]).model_dump_json())


@pytest.mark.parametrize(
    ("then", "now"), [(BEFORE, BEFORE), (None, AFTER), (BEFORE, None)], ids=str
)
def test_the_same_model_resumes_its_measurements_not_its_failures(
    tmp_path: Path, then: str | None, now: str | None
) -> None:
    """A digest either run could not read (an older checkpoint, a file not found now)
    is taken as the same model."""
    path = tmp_path / "profile.yaml.checkpoint.json"
    _checkpoint(path, then)
    resumed, set_aside = checkpoint_of(
        path, SweepSettings(model="served.py:build", model_sha256=now)
    )
    assert set_aside is None
    assert [(r.workers, r.rate_rps) for r in resumed.results] == [(1, 12.0)]


def test_a_changed_model_file_measures_every_configuration_again(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml.checkpoint.json"
    _checkpoint(path, BEFORE)
    settings = SweepSettings(model="served.py:build", model_sha256=AFTER)
    resumed, set_aside = checkpoint_of(path, settings)
    assert resumed.results == [] and resumed.settings.model_sha256 == AFTER
    assert set_aside is not None
    assert "sha256 aaaaaaaaaaaa, now bbbbbbbbbbbb" in set_aside
    assert "its 2 configurations are measured again" in set_aside


def test_other_settings_still_refuse_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml.checkpoint.json"
    _checkpoint(path, BEFORE)
    other = SweepSettings(model="served.py:build", model_sha256=AFTER, batches=[1, 2])
    with pytest.raises(ValueError, match="other settings"):
        checkpoint_of(path, other)


def test_a_checkpoint_that_is_no_file_is_refused_naming_it(tmp_path: Path) -> None:
    """A folder or an unreadable file where the checkpoint should be was a traceback
    (IsADirectoryError), and a FIFO (`--checkpoint` at a pipe) a wait for ever."""
    settings = SweepSettings(model="served.py:build")
    folder, fifo = tmp_path / "folder", tmp_path / "fifo"
    folder.mkdir()
    os.mkfifo(fifo)
    answers: dict[Path, str] = {}

    def read(path: Path) -> None:
        try:
            checkpoint_of(path, settings)
        except ValueError as error:
            answers[path] = str(error)

    for path in (folder, fifo):
        reading = threading.Thread(target=read, args=(path,), daemon=True)
        reading.start()
        reading.join(10)
        assert path in answers, f"{path.name}: no answer within 10 s"
        assert answers[path].startswith(f"{path}: cannot read the checkpoint")
