"""Reading a small file people edit (a config, the overrides file), and opening a log to
append to, without letting what the path names decide how long that takes.

A plain `read_text` opens a FIFO and waits for a writer that may never come, and reads a
100 MB file whole before YAML spends minutes on it; the daemon reads these files between
ticks (a reload, an overrides file that changed), so either would stall every pool. Here
the file is opened without blocking and must be a regular file of at most `max_bytes`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO, TextIO

MIB = 1 << 20
CREDENTIAL_MAX_BYTES = MIB
"""A password, token, certificate or key file is far smaller: anything larger, or not a
regular file (a FIFO would hold a start or a reload for ever), is refused."""


class NotASmallFileError(OSError):
    """The path names something other than a regular file within the size allowed."""


def read_small_text(path: Path, max_bytes: int, encoding: str = "utf-8") -> str:
    """The file's text; OSError where it cannot be read (FileNotFoundError when missing),
    NotASmallFileError (its `strerror` says what it is) where it is not a regular file or
    is larger than `max_bytes`, UnicodeDecodeError where it is not `encoding`."""
    with open_regular(path) as handle:
        info = os.fstat(handle.fileno())
        data = handle.read(max_bytes + 1)  # a file growing meanwhile is caught here too
    if len(data) > max_bytes or info.st_size > max_bytes:
        size = max(len(data), info.st_size)
        raise NotASmallFileError(
            0, f"{_size(size)}, larger than the {_size(max_bytes)} such a file may be", str(path)
        )
    return data.decode(encoding)


def open_regular(path: Path) -> BinaryIO:
    """The file at `path` opened to read, if it is a regular file; NotASmallFileError (its
    `strerror` says what it is) for anything else, at once: opening a FIFO to read waits
    for a writer, maybe for ever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotASmallFileError(0, f"not a regular file ({_kind(mode)})", str(path))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def open_to_append(path: Path, encoding: str = "utf-8") -> TextIO:
    """The regular file at `path` (made if missing) opened to append; NotASmallFileError
    for anything else. Opening a FIFO to write waits for a reader, maybe for ever: here
    it is refused at once, with a reader or without."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # ENXIO: a FIFO without a reader
            raise
        raise NotASmallFileError(0, "not a regular file (a FIFO)", str(path)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotASmallFileError(0, f"not a regular file ({_kind(mode)})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "a", encoding=encoding)
    except BaseException:
        os.close(fd)
        raise


def ends_mid_line(path: Path) -> bool:
    """Whether the file's last byte is something other than a newline (a line-a-record
    file whose last write was cut short: the next record must not be glued to it)."""
    try:
        with path.open("rb") as tail:
            if tail.seek(0, os.SEEK_END) == 0:
                return False
            tail.seek(-1, os.SEEK_END)
            return tail.read(1) != b"\n"
    except OSError:  # unreadable: the append itself will say what is wrong
        return False


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


def _size(count: int) -> str:
    if count >= MIB:
        return f"{count / MIB:.1f} MiB"
    return f"{count / 1024:.0f} KiB" if count >= 1024 else f"{count} bytes"
