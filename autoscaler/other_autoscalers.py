"""Another autoscaler on a pool's fleet, and counts changed outside this one.

Two autoscalers on one fleet (a Kubernetes HPA on the workload, a Nomad group's enabled
scaling policy, an Auto Scaling group's policies or scheduled actions) undo each other's
counts: each takes the other's change for one by hand, holds for its cooldown and goes
round again. So each pool asks its backend (backends.base.other_autoscalers) once, at its
first tick after a start or a reload, before it acts: what is found is a WARNING and an
alert naming the other and how to turn it off (on Slack once per finding: not again at
each restart or cron `--once`). The daemon runs on (the other may be in a
mode that does not act). A failure to ask is a WARNING, once, never the tick's trouble.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from autoscaler.notify import Message, alert_message
from backends.base import Backend, BackendError, other_autoscalers
from common.secrets import redact

log = logging.getLogger(__name__)


# ---- pure: what to say ------------------------------------------------------------------


def found_text(pool: str, found: Sequence[str]) -> str | None:
    """The alert for other autoscalers found on the pool's fleet; None for none."""
    if not found:
        return None
    return (
        f"{pool}: another autoscaler also scales this fleet: {'; '.join(found)}. The two "
        "will fight over its count (each one's changes look like changes by hand to the "
        "other); the autoscaler runs on. Turn the other off as said, or take the pool out "
        "of this config"
    )


def check_failure(found: Sequence[str]) -> str:
    """What `validate --check-backends` says of other autoscalers found on a pool's fleet."""
    return (
        f"another autoscaler also scales this fleet: {'; '.join(found)}. The two would fight "
        "over its count: turn the other off as said (`run` does not refuse it: it warns)"
    )


def not_checked_text(pool: str, error: BaseException) -> str:
    """Why the pool's fleet could not be asked (a BackendError is already worded for people)."""
    said = error if isinstance(error, BackendError) else f"unexpected {type(error).__name__}"
    return redact(f"{pool}: could not check for another autoscaler: {said}")


def manual_change_text(
    pool: str,
    before: int,
    after: int,
    until: datetime,
    others: Sequence[str],
    set_to: int | None = None,
    dry_run: bool = False,
) -> str:
    """A count we did not set: held for the cooldown, or, outside the bounds in force, set
    to `set_to` at once (said so: "holding it" beside the scale that undid it misled);
    where another autoscaler was found on the fleet, it is named, as the likely author."""
    text = f"{pool}: the count changed from {before} to {after} outside the autoscaler"
    if others:
        text += f" (another autoscaler scales this fleet: {'; '.join(others)})"
    if set_to is not None and set_to != after:
        sets = "would set" if dry_run else "sets"
        return f"{text}; it lies outside the bounds in force: the autoscaler {sets} it to {set_to}"
    return f"{text}; holding it until {until:%Y-%m-%d %H:%M} UTC (cooldown)"


# ---- the adapter --------------------------------------------------------------------------


class OtherAutoscalers:
    """One pool's question, asked once by its ticker (a ticker lives from a start or a
    reload to the next reload), and its answer."""

    def __init__(self, pool: str) -> None:
        self.pool = pool
        self.asked = False
        self.found: list[str] = []

    def ask_once(
        self, backend: Backend, send: Callable[[Message], None], told: list[str]
    ) -> list[str]:
        """Ask the first time only; never raises (a failed question is said, and over).
        A WARNING at each start and reload; on Slack only what differs from `told` (the
        pool's state: what was told last), so that a `--once` from cron every minute, or a
        daemon restarted, does not post the same alert each time. Returns what is told now."""
        if self.asked:
            return told
        self.asked = True
        try:
            found = other_autoscalers(backend)
        except Exception as exc:  # denied, timed out, a surprise: the tick goes on
            log.warning("%s", not_checked_text(self.pool, exc))
            return told
        self.found = found
        text = found_text(self.pool, found)
        if text is not None:
            log.warning("%s", text)
            if sorted(found) != sorted(told):
                send(alert_message(text))
        return list(found)
