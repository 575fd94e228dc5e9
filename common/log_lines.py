"""Where the commands' log lines go and how they read: plain lines on a terminal, one
JSON object per line otherwise (journald, files)."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import TextIO

from common.secrets import RedactingJsonFormatter

JOURNAL_LEVELS = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
"""Python's levels as syslog priorities (crit, err, warning, info; below INFO debug, 7)."""


class JournalLevels(logging.Formatter):
    """Each line begins with its syslog priority (`<3>` for an ERROR), which journald
    takes for the line's and strips (SyslogLevelPrefix=, on by default; sd-daemon(3)):
    without it every line was filed at info, and `journalctl -p warning` showed no
    failing pool."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in JOURNAL_LEVELS if record.levelno >= level), 7)
        return f"<{priority}>{self.inner.format(record)}"


def to_the_journal(stream: TextIO) -> bool:
    """Whether `stream` is journald's: systemd names the device and inode of the stream it
    connects in $JOURNAL_STREAM (systemd.exec(5)); a file or pipe it is redirected to is not."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):  # a stream without a file (a test's)
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{info.st_dev}:{info.st_ino}"


class ErrorText:
    """stderr for a command's error text (a rich Console's file), found at each write as
    Console(stderr=True) finds it. Where it is the journal's, each line begins with `<3>`
    (err), as the log lines carry their levels: a start refused ('invalid config', exit 2,
    which the unit does not restart) said why at info, unseen by `journalctl -p err`."""

    def __init__(self) -> None:
        self._mid_line = False

    def write(self, text: str) -> int:
        stream = sys.stderr
        if not text or not to_the_journal(stream):
            return stream.write(text)
        pieces = text.splitlines(keepends=True)
        marked = [p if i == 0 and self._mid_line else f"<3>{p}" for i, p in enumerate(pieces)]
        self._mid_line = not pieces[-1].endswith("\n")
        stream.write("".join(marked))
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def setup_logging(level: str) -> None:
    """Plain lines on a terminal; one JSON object per line otherwise (journald, files)."""
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        # In UTC, said so, as every other time the daemon prints (decisions, status,
        # Slack): a terminal line in the host's local time without a zone misled.
        plain = logging.Formatter(
            "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
        plain.converter = time.gmtime
        handler.setFormatter(plain)
    else:
        # One time field (`timestamp`, ISO 8601 in UTC); what a line is about goes in
        # fields of its own (`extra=`), never as a dict's repr inside `message`.
        lines = RedactingJsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)
        handler.setFormatter(JournalLevels(lines) if to_the_journal(sys.stderr) else lines)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # A library's warning (urllib3's at every unverified request, under verify_tls: false
    # with allow_insecure) was printed by Python as two plain lines beside the JSON ones:
    # now a line like the others, redacted, and that one said once for each host.
    logging.captureWarnings(True)
    warnings.filterwarnings("default", message="Unverified HTTPS request")
    for noisy in ("apscheduler", "urllib3", "kubernetes.client.rest", "botocore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # "skipped: maximum number of running instances": the daemon says it itself, once per
    # run of late ticks and only outside a simulation (autoscaler.daemon).
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
