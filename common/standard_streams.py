"""Standard streams closed by whoever started the process (`2>&-`, a careless
supervisor), opened again on /dev/null before anything else runs.

With fd 2 closed Python sets `sys.stderr` to None, and setting up logging failed on it
(`None.isatty()`): the daemon exited 1 before its first tick, saying nothing. Worse, the
first file it opened (the state file, the decision log) would have become fd 2, where
anything writing to stderr at the C level (a library, faulthandler) lands in it.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any

STREAMS = (
    ("stdin", 0, os.O_RDONLY, "r"),
    ("stdout", 1, os.O_WRONLY, "w"),
    ("stderr", 2, os.O_WRONLY, "w"),
)


def reopen_closed_standard_streams() -> None:
    """Each of fds 0, 1, 2 that is closed is opened on /dev/null (the lowest free fd is
    the one closed, lowest first), and a `sys` stream Python left as None is set on it:
    output meant for it goes nowhere instead of failing."""
    for _, fd, flags, _ in STREAMS:
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, flags)
            if null != fd:  # a lower fd was open after all: put it where it belongs
                os.dup2(null, fd)
                os.close(null)
    for name, fd, _, mode in STREAMS:
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115 (kept for the process)


class _Fd1(io.FileIO):
    """stdout's file, remembering a write it refused: that, and not another file's
    failure, is what `said_when_stdout_refuses` says in a line."""

    refused: OSError | None = None

    def write(self, data: Any) -> int | None:
        try:
            return super().write(data)
        except OSError as exc:
            self.refused = exc
            raise


def said_when_stdout_refuses(program: str, cli: Callable[[], None]) -> None:
    """Run a console script's `cli`; where stdout refuses what it prints (`> /dev/full`, a
    full disk, an I/O error) say so in one line on stderr and exit 1, as a closed pipe
    exits, rather than a traceback (typer's, of rich's or click's write). An OSError of
    any other file is the command's own and goes on as it was."""
    old = sys.stdout
    fd1 = _Fd1(old.fileno(), "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(fd1),
        encoding=old.encoding,
        errors=old.errors,
        line_buffering=old.line_buffering,
        write_through=old.write_through,
    )
    try:
        try:
            cli()
        finally:
            sys.stdout.flush()  # what was printed last, while a failure can still be said
    except OSError as exc:
        if fd1.refused is None:
            raise
        _let_stdout_go()
        if not isinstance(exc, BrokenPipeError):  # a reader gone: quiet, as rich and click are
            sys.stderr.write(f"{program}: cannot write to stdout: {exc.strerror or exc}\n")
        raise SystemExit(1) from None


def _let_stdout_go() -> None:
    """stdout on /dev/null, so that the flush at exit does not fail again (Python's way for
    a closed pipe)."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, sys.stdout.fileno())
    finally:
        os.close(null)
