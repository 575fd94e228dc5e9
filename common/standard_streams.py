"""Standard streams closed by whoever started the process (`2>&-`, a careless
supervisor), opened again on /dev/null before anything else runs.

With fd 2 closed Python sets `sys.stderr` to None, and setting up logging failed on it
(`None.isatty()`): the daemon exited 1 before its first tick, saying nothing. Worse, the
first file it opened (the state file, the decision log) would have become fd 2, where
anything writing to stderr at the C level (a library, faulthandler) lands in it.
"""

from __future__ import annotations

import os
import sys

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
