"""One daemon per state folder: a second `autoscaler run` on the same state is refused.

Without it, a daemon started by hand while the service runs (or a cron `run --once`)
ticks the same pools: both scale the fleets, interleave the decision log, overwrite each
other's state, and Slack hears everything twice. The lock is flock(2) on a file in the
state folder: the kernel drops it when the process ends, however it ends, so a crash or
SIGKILL leaves nothing to clean up (a stale pid in the file is only a hint).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO


class InstanceLockHeld(Exception):
    """Another process holds the lock."""


def hold_instance_lock(path: Path) -> IO[str]:
    """Lock `path` (exclusive, without waiting) and write this process's pid into it.
    Returns the open file: the lock lasts as long as it stays open. InstanceLockHeld names
    the holder's pid; OSError where the file cannot be made (a read-only folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    held = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.seek(0)
        holder = held.read(32).strip() or "unknown"
        held.close()
        raise InstanceLockHeld(f"{path} is held by process {holder}") from None
    except OSError:
        held.close()
        raise
    with contextlib.suppress(OSError):  # the pid is a hint; the lock is what counts
        held.seek(0)
        held.truncate()
        held.write(f"{os.getpid()}\n")
        held.flush()
    return held
