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
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

POLL_S = 1.0
"""How often a start that waits for the lock asks for it again."""


class InstanceLockHeld(Exception):
    """Another process holds the lock."""


def hold_instance_lock(
    path: Path, wait_s: float = 0.0, waiting: Callable[[str], None] | None = None
) -> IO[str]:
    """Lock `path` (exclusive) and write this process's pid into it, waiting up to `wait_s`
    for a holder to let go (`waiting(who holds it)` told once, as the wait begins).
    Returns the open file: the lock lasts as long as it stays open. InstanceLockHeld names
    the holder's pid; OSError where the file cannot be made (a read-only folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    held = path.open("a+", encoding="utf-8")
    give_up = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            held.seek(0)
            who = f"{path} is held by process {held.read(32).strip() or 'unknown'}"
            left = give_up - time.monotonic()
            if left <= 0:
                held.close()
                raise InstanceLockHeld(who) from None
            if waiting is not None and not told:
                waiting(who)
                told = True
            time.sleep(min(POLL_S, left))
        except OSError:
            held.close()
            raise
    with contextlib.suppress(OSError):  # the pid is a hint; the lock is what counts
        held.seek(0)
        held.truncate()
        held.write(f"{os.getpid()}\n")
        held.flush()
    return held
