"""Where the commands' log lines go and how they read: plain lines on a terminal, one
JSON object per line otherwise (journald, files)."""

from __future__ import annotations

import logging
import sys
import time
import warnings

from common.secrets import RedactingJsonFormatter


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
        handler.setFormatter(
            # One time field (`timestamp`, ISO 8601 in UTC); what a line is about goes in
            # fields of its own (`extra=`), never as a dict's repr inside `message`.
            RedactingJsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)
        )
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
