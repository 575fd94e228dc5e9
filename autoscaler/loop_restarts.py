"""What a loop-calibrated pool carries across a daemon restart: its calibration (margin,
member, aim, the static member's level, the floor, when each member last had a day over
the target: in the state file, saved every tick)
and its week of kept ticks (autoscaler.kept_ticks_file: written at each recalibration
and when the daemon stops). `LoopCalibrated` (autoscaler.calibration) takes these methods
in as a mixin and owns the state they read.

Without the week, a restart resumed the margin but replayed only the ticks since: the
members were compared again only a week later, and the budget's spend was judged on a
few hours. With it, the replay reads the week the loop ran, less the time the daemon was
down (no tick was made then: the replay steps over it).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from autoscaler.config.schema import Pool
from autoscaler.kept_ticks import DEMAND, KeptTicks
from autoscaler.kept_ticks_file import KeptWeek
from autoscaler.loop_replay import AIMS, MARGINS, LoopSettings, lowest_margin
from autoscaler.pool_state import aware_time
from autoscaler.portfolio import RecentPeak, members_of

SavedLoop = dict[str, float | str | dict[str, str] | dict[str, float | str]]
"""A calibration as the state file keeps it (LoopRestarts.saved)."""


class LoopRestarts:
    """The restart half of `autoscaler.calibration.LoopCalibrated`."""

    settings: LoopSettings
    pool: Pool
    margin: float
    member: str
    aim: float
    lowest: float
    _previous: float
    spent: float | None
    replayed_late: float | None
    outlier: bool
    held_from: float | None
    choice: str | None
    _spent_over: timedelta
    _held_level: float
    _calibrated: bool
    _ticks: KeptTicks
    _peaks: RecentPeak
    _refit_at: datetime | None
    _window_full: bool
    _day_over_at: dict[str, datetime]

    _let_go_before: Callable[[datetime], None]

    @property
    def recalibrated_at(self) -> datetime | None:
        """When the kept ticks were last replayed (None: not yet, in this run nor in the
        one whose week it took up)."""
        return self._refit_at

    def saved(self, now: datetime) -> SavedLoop | None:
        """What a restart resumes from (kept in the daemon's state file); None before the
        first calibration: a restart then starts from the band as made, as this run did
        (resumed, the ticks after it would count as calibrated ones)."""
        if not self._calibrated:
            return None
        saved: SavedLoop = {
            "margin": self.margin,
            "member": self.member,
            "aim": self.aim,
            "at": now.isoformat(),
        }
        if math.isfinite(self._held_level):
            saved["held_level"] = self._held_level
        if self.settings.widen_only and self.lowest < 1.0:  # `loop`'s is the range's own
            saved["floor"] = self.lowest
        if self._day_over_at:  # the members not trusted to take over yet (portfolio.choose)
            saved["day_over"] = {m: at.isoformat() for m, at in self._day_over_at.items()}
        if self.spent is not None and self.replayed_late is not None:
            saved["budget"] = self._budget_said()
        return saved

    def _budget_said(self) -> dict[str, float | str]:
        """The last recalibration's budget, as its reasons and /metrics say it: a restart
        says it on until the next one, not nothing (the gauge gone, the alert resolved)."""
        assert self.spent is not None and self.replayed_late is not None
        said: dict[str, float | str] = {
            "spent": self.spent,
            "over_s": self._spent_over.total_seconds(),
            "late": self.replayed_late,
            "previous": self._previous,
            "outlier": float(self.outlier),
        }
        if self.held_from is not None:
            said["held_from"] = self.held_from
        if self.choice is not None:
            said["choice"] = self.choice
        return said

    def _resume_budget(self, said: object) -> None:
        """Take up _budget_said's; one that does not read is left out (nothing said)."""
        if not isinstance(said, dict):
            return
        try:
            spent, over = float(said["spent"]), timedelta(seconds=float(said["over_s"]))
            late, previous = float(said["late"]), float(said["previous"])
            held = None if "held_from" not in said else float(said["held_from"])
            outlier = bool(float(said.get("outlier", 0.0)))
        except (KeyError, TypeError, ValueError, OverflowError):
            return
        choice = said.get("choice")
        self.spent, self._spent_over, self.replayed_late = spent, over, late
        self._previous, self.held_from, self.outlier = previous, held, outlier
        self.choice = None if choice is None else str(choice)

    def resume(self, saved: SavedLoop, now: datetime) -> bool:
        """Take up a saved calibration if it is recent (within the replay window) and fits
        the pool's policy and the margin's range; until the first recalibration on new
        ticks it is used as it was (the static member's level too: without one it is not
        taken up; nor the floor, where it does not fit the saved aim and margin: then the
        floor stands until the first recalibration). False (and nothing changed) otherwise."""
        try:
            margin, aim = float(saved["margin"]), float(saved["aim"])
            age = now - datetime.fromisoformat(str(saved["at"]))
            held = float(saved.get("held_level", math.nan))
            floor = float(saved.get("floor", math.nan))
            day_over = _days_over(saved.get("day_over", {}), members_of(self.settings.policy))
        except (KeyError, TypeError, ValueError):
            return False
        member = saved.get("member")
        lowest = lowest_margin(self.settings, aim)
        fits = member in members_of(self.settings.policy) and lowest <= margin <= MARGINS[1]
        if member == "static" and not (math.isfinite(held) and held >= 0):
            return False
        if not (fits and timedelta(0) <= age <= self.settings.window and AIMS[0] <= aim <= AIMS[1]):
            return False
        self.margin, self.member, self.aim, self._previous = margin, str(member), aim, margin
        self._held_level = held
        self._day_over_at = day_over
        if self.settings.widen_only and lowest <= floor <= min(margin, 1.0):
            self.lowest = floor
        self._resume_budget(saved.get("budget"))
        self._calibrated = True
        return True

    def restart_from(
        self, saved: SavedLoop | None, week: KeptWeek | None, now: datetime
    ) -> tuple[bool, bool]:
        """What a restart carries, in its order: the saved calibration (resume), then the
        week of ticks it was calibrated on (take_up_week). Whether each was taken up."""
        resumed = saved is not None and self.resume(saved, now)
        took_up = week is not None and self.take_up_week(week, now)
        return resumed, took_up

    def kept_week(self) -> KeptWeek | None:
        """The week of ticks to write for a restart (None: none kept)."""
        if not len(self._ticks):
            return None
        return KeptWeek(self._ticks, self._refit_at, self._window_full, settings_digest(self.pool))

    def take_up_week(self, week: KeptWeek, now: datetime) -> bool:
        """Take up the ticks a run before a restart kept, before any of this run's: only
        where the pool is configured as it was, and the newest is before `now` and within
        the window of it (a clock gone back, or a week long past, starts the week over).
        The ticks older than the window are let go; the replay's cadence goes on from the
        saved run's last. False (and nothing changed) otherwise."""
        newest = week.ticks.newest_at()
        try:
            recent = newest is not None and timedelta(0) < now - newest <= self.settings.window
        except TypeError:  # a zone against none
            return False
        if len(self._ticks) or not recent or week.pool_settings != settings_digest(self.pool):
            return False
        self._ticks, self._window_full = week.ticks, week.window_full
        self._let_go_before(now)
        self._peaks.refill(self._ticks.times(), self._ticks.column(DEMAND))
        at = week.recalibrated_at
        self._refit_at = at if at is not None and at <= now else None
        return True


def _days_over(saved: object, members: tuple[str, ...]) -> dict[str, datetime]:
    """The saved times of the members' last day over the target (those of members the
    policy no longer has are let go); a ValueError where one does not read."""
    if not isinstance(saved, dict):
        raise ValueError(f"day_over is not a mapping: {saved!r}")
    return {str(m): aware_time(str(at)) for m, at in saved.items() if m in members}


def settings_digest(pool: Pool) -> str:
    """The pool's settings, as a digest: a week kept under others is not taken up."""
    return hashlib.sha256(pool.model_dump_json().encode()).hexdigest()
