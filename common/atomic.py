"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, text: str, *, new_mode: int = 0o600) -> None:
    replace_atomically(path, lambda handle: handle.write(text.encode("utf-8")), new_mode=new_mode)


def replace_atomically(
    path: Path,
    write: Callable[[BinaryIO], object],
    *,
    durable: bool = True,
    new_mode: int = 0o600,
) -> None:
    """`write` fills a temporary file beside `path`, which then takes its place (with its
    mode, where it exists; else `new_mode`, for a file another user reads). `durable`: on
    disk when this returns (the file and the rename fsynced); a cache, rebuilt when lost,
    may leave that to the kernel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        _take_place_of(tmp, path, new_mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(path.parent)


def _take_place_of(tmp: str, path: Path, new_mode: int) -> None:
    """The mode of the file replaced (else `new_mode`), and, run as root, its owner: a
    file the daemon's user owns, mode 0600, rewritten by `sudo autoscaler override set`
    became root's, which the daemon could no longer read."""
    try:
        info = path.stat()
    except FileNotFoundError:
        os.chmod(tmp, new_mode)
        return
    os.chmod(tmp, info.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(tmp, info.st_uid, info.st_gid)


def fsync_folder(folder: Path) -> None:
    """The folder's entries (a file made or renamed in it) on disk."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
