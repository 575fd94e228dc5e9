"""A SIGHUP that arrives while the daemon is still starting must not kill it.

Python's default action for SIGHUP ends the process, and starting (imports, the
config, backends, predictors) takes seconds, in which logrotate or a `systemctl
reload` may send one. The console script installs this handler before anything slow;
the daemon takes over signals when it runs and acts on a reload asked for meanwhile.
"""

from __future__ import annotations

import signal
import threading

reload_asked = threading.Event()


def install() -> None:
    """Note a SIGHUP for later instead of dying of it (main thread only)."""
    signal.signal(signal.SIGHUP, lambda *_: reload_asked.set())


def take_reload() -> bool:
    """Whether a reload was asked for before the daemon's own handlers; clears it."""
    asked = reload_asked.is_set()
    reload_asked.clear()
    return asked
