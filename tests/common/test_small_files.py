"""A small file read without letting it decide how long the read takes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from common.small_files import NotASmallFileError, read_small_text


def test_a_regular_file_within_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("name: é\n", encoding="utf-8")
    assert read_small_text(path, 100) == "name: é\n"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(NotASmallFileError, match="not a regular file \\(a FIFO\\)"):
        read_small_text(path, 100)
    assert time.monotonic() - started < 1


def test_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotASmallFileError, match="a directory"):
        read_small_text(tmp_path, 100)
    with pytest.raises(FileNotFoundError):
        read_small_text(tmp_path / "absent", 100)


def test_a_file_over_the_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big"
    with path.open("wb") as handle:
        handle.truncate(3 << 20)  # sparse: nothing written, 3 MiB long
    with pytest.raises(NotASmallFileError, match=r"3\.0 MiB, larger than the 1 KiB") as caught:
        read_small_text(path, 1024)
    assert caught.value.filename == str(path)
    assert read_small_text(tmp_path / "big", 4 << 20).count("\0") == 3 << 20
