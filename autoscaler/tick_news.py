"""What a pool's ticks tell on Slack: a scale with its reasons, a change by hand, an
override that expired, a failure when it starts and when it clears.

Its own room because wording and sending the news (and sending it once: a count the
fleet held, an expired override, a failure that goes on) is apart from deciding and
acting. `autoscaler.tick.PoolTicker` takes these methods in as a mixin and owns the state
they read; a notifier that fails is only logged, never the tick's trouble.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from autoscaler.config.schema import Pool
from autoscaler.notify import (
    Notifier,
    alert_message,
    failure_cleared_message,
    failure_started_message,
    scale_message,
)
from autoscaler.other_autoscalers import OtherAutoscalers, manual_change_text
from autoscaler.overrides import OverridesFile, expired_overrides
from autoscaler.policy import Decision
from autoscaler.state import PoolState
from autoscaler.tick_result import TickResult, peak_of

log = logging.getLogger("autoscaler.tick")  # the tick's logger, as before the split


class TickNews:
    """The tick's Slack messages for `autoscaler.tick.PoolTicker`, which sets these."""

    pool: Pool
    notifier: Notifier
    dry_run: bool
    others: OtherAutoscalers
    _held_at: int | None  # the fleet held its count at its bound last tick
    _would: tuple[int, int] | None  # a dry run's count and what it would set, told last tick

    def _tell_manual_change(self, now: datetime, before: int, decision: Decision) -> None:
        """A change by hand, told with the decision: held, or set back at once."""
        until, others = now + self.pool.cooldown, self.others.found
        text = manual_change_text(
            self.pool.name,
            before,
            decision.current,
            until,
            others,
            decision.desired,
            self.dry_run,
        )
        self._send(alert_message(text))

    def _tell_scale(self, decision: Decision, result: TickResult, state: PoolState) -> None:
        """A scale done (or a dry run's) with its reasons; a count the fleet held, or a dry
        run's (which the fleet never follows), told once, not at every tick that asks again."""
        told = decision.desired != decision.current and (result.acted or self.dry_run)
        held = told and result.acted and state.last_known_desired == decision.current
        would = (decision.current, decision.desired) if told and self.dry_run else None
        again = (held and self._held_at == decision.current) or (
            would is not None and would == self._would
        )
        if told and not again:
            self._send(
                scale_message(
                    self.pool.name,
                    decision.current,
                    decision.desired,
                    (*decision.reasons, *([result.backend_note] if result.backend_note else [])),
                    peak_of(result.sizing.forecast, "point"),
                    peak_of(result.sizing.forecast, "upper"),
                    result.sizing.demand_now,
                    self.dry_run,
                )
            )
        self._held_at = decision.current if held else None
        self._would = would

    def _report_expired(self, now: datetime, state: PoolState, overrides: OverridesFile) -> None:
        expired = expired_overrides(overrides, now).get(self.pool.name)
        if expired is None:
            return
        key = expired.expires.isoformat()
        if key not in state.reported_expired:
            state.reported_expired = [*state.reported_expired[-9:], key]
            self._send(
                alert_message(
                    f"{self.pool.name}: override {expired.reason!r} expired at {key}; "
                    "it is ignored now (remove it with `autoscaler override clear`)"
                )
            )

    def _track_failures(self, now: datetime, state: PoolState, result: TickResult) -> None:
        """One message when a failure starts and one when it clears, not one per tick. A
        step this tick did not reach (the signals, read only with the fleet; every step
        after a surprise) is not said to have cleared: it was not checked."""
        problems = {**result.errors, **rollout_problem(result)}
        unsettled = state.write_failing and not write_settled(result)
        for kind in ("metrics", "signals", "backend", "tick", "rollout"):
            detail = problems.get(kind)
            if detail is None and (
                kind not in checked_steps(result) or (kind == "backend" and unsettled)
            ):
                continue
            if detail is not None and kind not in state.failing:
                state.failing[kind] = now
                self._send(failure_started_message(self.pool.name, kind, detail))
            elif detail is None and kind in state.failing:
                since = state.failing.pop(kind)
                self._send(failure_cleared_message(self.pool.name, kind, now - since))
        state.write_failing = "backend" in state.failing and (unsettled or write_failed(result))

    def _send(self, message: Any) -> None:
        try:
            self.notifier.send(message)
        except Exception:  # a notifier must never break a tick
            log.exception("notifier failed")


def checked_steps(result: TickResult) -> set[str]:
    """The steps whose failure this tick could see: a surprise stopped it before any it
    names; without the fleet the signals are not read, nor its rollout."""
    if "tick" in result.errors:
        return {"tick"}
    read = {"signals", "rollout"} if result.fleet is not None else set()
    return {"metrics", "backend", "tick"} | read


def write_failed(result: TickResult) -> bool:
    """The backend failed at the write: the fleet was read, so the error is the write's."""
    return "backend" in result.errors and result.fleet is not None


def write_settled(result: TickResult) -> bool:
    """A write failed before is settled by one that succeeds, or by a tick that needs
    none: the fleet holds the count the rules ask for (their target, before a cooldown or
    stabilization holds it). A tick that only read, held by the cooldown the failed write
    started, leaves the count the write was for not reached: not "backend recovered"."""
    if "backend" in result.errors:
        return False
    decision = result.decision
    if result.acted:
        return True
    return decision is not None and decision.current == decision.desired == decision.target


def rollout_problem(result: TickResult) -> dict[str, str]:
    """Pending nodes that will not come up (FleetState.stuck), told as a failure of kind
    "rollout" (once, and once when they come): it is no error of the tick, which goes on,
    so /healthz and the error counters are not touched. Scale-ups are still written: what
    adds GPU nodes (a cluster autoscaler) reacts to the pods waiting, and one pod stuck on
    a bad node must not freeze a pool through a surge."""
    fleet = result.fleet
    if fleet is None or fleet.stuck is None:
        return {}
    # the pending count is not the stuck one: nodes on their way pend beside them
    pending = f"{fleet.pending} of {fleet.desired} pending"
    return {"rollout": f"nodes are not coming up ({pending}): {fleet.stuck}"}
