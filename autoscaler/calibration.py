"""Calibrate the loop, not the band: a margin chosen so the pool's own loop meets its target.

The forecaster's band is calibrated per lead on its own errors, but the service target
the user states is a property of the whole closed loop: boot delay, whole nodes, the
reactive floor, scale-down stabilization, step limits. So the band alone leaves most of
the budget unspent. `LoopCalibrated` wraps a predictor, keeps what each tick saw (the
newest demand, the forecast's upper band) and, every `refit_every`, replays the pool's
decide() (its bounds, schedules, stabilization, step limits, spare) over the last
`window` of those ticks with the band multiplied by a margin m, scores the replay with
the backtest's late-request rule (autoscaler.backtest.queue: the pool's boot time, its
per-node rate) and bisects m so that the worst day of the replay ends at `aim` x the
service target: every day of the window within the budget, so that one quiet day does
not set the margin for a busy one, and the window's mean is under it. Only the past is
read: the margin of a tick comes from ticks before it. Until `min_span` of ticks is
kept the margin stays 1 (the band as the forecaster made it). Under `margin: widen` (the
default) it does not go below 1 either while the budget is being spent: the loop widens,
and narrows only as far as the budget it left unspent earns back (loop_replay.lowest_margin).
Under either, a margin does not narrow while the margins calibrated before it are over
the budget on the kept ticks (loop_replay.overspent_now).

With `margin: loop` or `widen` the reactive floor sizes the demand seen now at full use
(sizing.size_fleet): the margin, not the target utilization, is the loop's headroom.

Overrides are not replayed (a person's count wins over any policy anyway); missing data
replays as a hold, as in the daemon.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from autoscaler.config.schema import Pool
from autoscaler.kept_ticks import (
    AIM,
    BAND_ARRIVAL,
    BAND_PEAK,
    DEMAND,
    USED_ARRIVAL,
    USED_PEAK,
    KeptTicks,
)
from autoscaler.loop_replay import (
    AIMS,
    DAY,
    FixedParts,
    Frame,
    LoopSettings,
    calibrate,
    fixed_parts,
    late_share,
    lowest_margin,
    mean_load,
    overspent_now,
    replay_lateness,
    tick_seconds,
)
from autoscaler.loop_restarts import LoopRestarts
from autoscaler.policy import Limits
from autoscaler.pool_predictor import make_pool_predictor, refit_phase_of
from autoscaler.portfolio import (
    DISTRUST_WINDOWS,
    RecentPeak,
    Trial,
    choose,
    member_peaks,
    member_upper_now,
    members_of,
    recent_peaks,
    window_peak,
)
from autoscaler.schedules import bounds_at
from autoscaler.sizing import arrival_peaks
from predictors import Calibration, Forecast, Predictor

LOOSEN_MOST = 1.25


def loop_settings(pool: Pool, per_node_rps: float, limits: Limits) -> LoopSettings:
    """The pool's own settings, its targets as its predictor config gives them."""
    return LoopSettings(
        per_node_rps=per_node_rps,
        utilization=pool.target_utilization,
        boot_time=pool.boot_time,
        spare_nodes=pool.spare_nodes,
        limits=limits,
        service_target=pool.predictor.service_target,
        latency_target_s=pool.predictor.latency_target_s,
        policy=pool.predictor.policy,
        phase=refit_phase_of(pool.name),
        widen_only=pool.predictor.margin == "widen",
    )


def pool_predictor(pool: Pool, per_node_rps: float, limits: Limits) -> Predictor:
    """The pool's predictor as configured: its band as the forecaster made it
    (`margin: band`, the default), or scaled by the loop-calibrated margin (`margin: loop`)."""
    inner = make_pool_predictor(pool)
    return with_margin(pool, inner, per_node_rps, limits)


def with_margin(pool: Pool, inner: Predictor, per_node_rps: float, limits: Limits) -> Predictor:
    """`inner` as the pool's margin asks: itself, or wrapped in the loop calibration."""
    if not pool.predictor.calibrated:
        return inner
    return LoopCalibrated(inner, loop_settings(pool, per_node_rps, limits), pool)


class LoopCalibrated(LoopRestarts):
    """A predictor whose band is the followed portfolio member's, scaled by its
    loop-calibrated margin (with the default policy, `forecast`: the band's excess)."""

    def __init__(self, inner: Predictor, settings: LoopSettings, pool: Pool) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = settings
        self.pool = pool
        self.member = members_of(settings.policy)[0]
        """The portfolio member followed (autoscaler.portfolio)."""
        self.margin = 1.0
        self.replayed_late: float | None = None
        self.aim = settings.aim
        """The worst day's late share aimed at, as a share of the target: moved by the
        budget actually spent (error-budget feedback)."""
        self.spent: float | None = None
        """The late share the loop had over the kept ticks, with the bands it used."""
        self.choice: str | None = None
        """Why the member followed is followed (said in the forecast's notes)."""
        self.outlier = False
        """The worst replayed day was let through (loop_replay.calibrate)."""
        self.held_from: float | None = None
        """The narrower margin the replay found, not taken while the budget is overspent."""
        self.lowest = lowest_margin(settings)
        """The narrowest margin the last calibration could choose (loop_replay.lowest_margin)."""
        self._previous = 1.0
        self._spent_over = timedelta(0)
        self._demand_now = math.nan
        """The demand seen at the newest fit, unmasked (the reactive member's level)."""
        self._ticks = KeptTicks()
        """Each tick's time, demand and schedule bounds; its forecast band as two peaks (a
        margin scales both: all the replay needs of the band); the same for the band it
        handed the sizing (member and margin applied); and the aim its margin was
        calibrated for (NaN before any calibration: what the error-budget feedback
        measures its aim against)."""
        self._calibrated = False
        self._peaks = RecentPeak()
        self._refit_at: datetime | None = None
        self._held_level = math.nan
        """The static member's level: the kept window's peak demand at the last
        recalibration (the margin scales it)."""
        self._day_over_at: dict[str, datetime] = {}
        """When each member's replay last had a day over the target at a comparison."""
        self._window_full = False
        """The kept ticks reach back a whole window (the oldest has been let go): only then
        are the portfolio's members compared (autoscaler.portfolio)."""

    sees_demand_now = True
    """fit() takes the demand seen now beside the history learned (sizing.size_fleet)."""

    def fit(self, history: pd.Series, demand_now: float | None = None) -> LoopCalibrated:
        """`history` as the forecaster learns it, demand.exclude masked: the kept ticks keep
        it so, and no masked minute teaches the margin. `demand_now`: the demand seen now,
        where that history hides it: the reactive member follows it, as the reactive floor
        does (README: demand seen now is never masked); the newest learned, if not given."""
        now = history.index[-1].to_pydatetime()
        learned = float(history.to_numpy()[-1])
        self._record(now, learned)
        self._demand_now = learned if demand_now is None else demand_now
        if self.recalibration_due(now):
            self._recalibrate(now)
        self.inner.fit(history)
        return self

    def recalibration_due(self, end: datetime) -> bool:
        """Whether a fit on a history ending at `end` recalibrates (the replay of the kept
        week, ~15-45 ms): every `refit_every` once the kept ticks reach back the first
        calibration's span. The daemon has its fit workers do those (autoscaler.fit_workers):
        for a tick ahead, from the newest sample it expects, a hint that costs time, not
        results, where it is wrong."""
        settings = self.settings
        if self._refit_at is not None and end - self._refit_at < settings.refit_every:
            return False
        oldest = self._ticks.oldest_at()
        first = settings.min_span - settings.phase * settings.refit_every
        return oldest is not None and end - oldest >= first

    def forecast(self, horizon: timedelta) -> Forecast:
        forecast = self.inner.forecast(horizon)
        upper = np.asarray(forecast.upper, dtype=float)
        ticks = self._ticks
        band = member_upper_now(
            self.member, upper, self._demand_now, self._peaks.peak, self._held_now()
        )
        scaled = np.maximum(self.margin * band, 0.0)
        # Each band as its peak, and its peak from when nodes ordered now would be ready
        # (the sizing's own rule); a forecast without steps stays missing (a hold).
        if len(upper):
            arriving = arrival_peaks((upper, scaled), forecast.times, self.settings.boot_time)
            ticks.set_newest(BAND_PEAK, float(upper.max()))
            ticks.set_newest(USED_PEAK, float(scaled.max()))
            ticks.set_newest(BAND_ARRIVAL, arriving[0])
            ticks.set_newest(USED_ARRIVAL, arriving[1])
        ticks.set_newest(AIM, self.aim if self._calibrated else math.nan)
        spent = None if self.spent is None else self.spent / self.settings.service_target
        said = self._notes()
        floor = self.lowest if self.settings.widen_only else None  # `loop` has none to say
        state = Calibration(
            self.margin, self.member, self.settings.service_target, spent, said, floor
        )
        notes = (*forecast.notes, *said)
        return replace(forecast, upper=scaled, notes=notes, calibration=state)

    def _notes(self) -> tuple[str, ...]:
        what = "upper band" if self.member == "forecast" else f"{self.member} demand"
        floor = ""
        if self.settings.widen_only and self.lowest < 1.0:
            floor = f"; budget unspent: floor {self.lowest:.2f} x {what}"
        if self.replayed_late is None or self.spent is None:
            return (f"loop margin {self.margin:.2f} x {what}{floor}",)
        hours = self._spent_over.total_seconds() / 3600
        budget = (
            f"budget: {self.spent:.3%} of {self.settings.service_target:.2%} used over "
            f"the last {hours:.0f} h, margin {self._previous:.2f} -> {self.margin:.2f} x "
            f"{what} (replayed worst day {self.replayed_late:.3%} late, aim "
            f"{self.aim:.2f} x target"
            + ("; that day let through: the window's budget absorbs it)" if self.outlier else ")")
        )
        if self.held_from is not None:
            budget += f"; over budget: held, not narrowed to the replay's {self.held_from:.2f}"
        budget += floor
        return (budget,) if self.choice is None else (self.choice, budget)

    def _held_now(self) -> float:
        """The static member's level now: the one set at the last recalibration; before the
        first, the peak of the ticks kept so far (as the margin is 1 until then)."""
        if self.member != "static" or self._calibrated:
            return self._held_level
        return window_peak(self._ticks.column(DEMAND))

    # ---- the replay ----------------------------------------------------------------

    def _record(self, now: datetime, demand: float) -> None:
        ticks = self._ticks
        newest = ticks.newest_at()
        if newest is not None and now == newest:
            return  # no newer sample (an interval shorter than the step): the same tick
        if newest is not None and now < newest:  # a restart or a clock going back
            ticks.clear()
            self._peaks.clear()
            self._window_full = False
        ticks.append(now, demand, bounds_at(self.pool.schedules, now))
        self._peaks.add(now, demand)
        self._let_go_before(now)

    def _let_go_before(self, now: datetime) -> None:
        """Drop the ticks older than the window before `now`: the window is full."""
        ticks = self._ticks
        while (oldest := ticks.oldest_at()) is not None and now - oldest > self.settings.window:
            ticks.drop_oldest()
            self._window_full = True

    def _recalibrate(self, now: datetime) -> None:
        """Called where recalibration_due(now)."""
        settings = self.settings
        self._refit_at = now
        frame = self._frame()
        fixed = fixed_parts(frame, settings)  # the same for the members' frames
        overspent = overspent_now(*self._feedback(frame, fixed))
        self._previous = self.margin
        target = self.settings.service_target * self.aim
        self.lowest = lowest_margin(settings, self.aim, mean_load(frame, settings))
        peaks = recent_peaks(frame.times, frame.demand)
        level = window_peak(frame.demand)
        members = members_of(self.settings.policy)
        compared = self._window_full or len(members) == 1
        trials = []
        for member in members if compared else (self.member,):
            if member == "static" and not math.isfinite(level):
                continue  # no demand known over the window: no level to hold
            peak, arrival = member_peaks(member, frame.peak, frame.arrival, frame.demand, peaks)
            member_frame = replace(frame, peak=peak, arrival=arrival)
            trials.append(calibrate(member_frame, target, settings, member, fixed, self.lowest))
        if not trials:  # pinned static, no demand known: the calibration in use stands
            return
        self._held_level = level
        distrusted = self._distrusted(now, trials) if compared and len(trials) > 1 else {}
        chosen, choice = choose(trials, self.member, distrusted)
        if chosen.member != self.member:
            choice += f"; switched from {self.member}"
        self.choice = choice if len(trials) > 1 else None
        if not compared:
            kept = (frame.times[-1] - frame.times[0]) / timedelta(days=1)
            window = settings.window / timedelta(days=1)
            self.choice = (
                f"policy {self.member}: the members are compared once {window:g} d of ticks "
                f"are kept ({kept:.1f} d so far)"
            )
        self.held_from = None
        margin = chosen.margin
        if chosen.member == self.member and margin < self.margin and overspent:
            self.held_from, margin = margin, self.margin
        self.member, self.margin, self.replayed_late = chosen.member, margin, chosen.late
        self.outlier = chosen.outlier
        self._calibrated = True

    def _distrusted(self, now: datetime, trials: list[Trial]) -> dict[str, datetime]:
        """The members whose replay had a day over the target at this comparison or at one
        of the last DISTRUST_WINDOWS windows, and from when each may take over again
        (autoscaler.portfolio.choose)."""
        for trial in trials:
            if not trial.meets or trial.outlier:
                self._day_over_at[trial.member] = now
        memory = self.settings.window * DISTRUST_WINDOWS
        # A time after now (a clock gone back, a skewed restart) counts as now: a bar of
        # one memory at most, never one that outlives it.
        kept = {m: min(at, now) for m, at in self._day_over_at.items()}
        self._day_over_at = {m: at for m, at in kept.items() if now - at < memory}
        return {member: at + memory for member, at in self._day_over_at.items()}

    def _feedback(
        self, frame: Frame, fixed: FixedParts | None = None
    ) -> tuple[float | None, float | None]:
        """Error-budget feedback: the share of the budget the loop actually spent over the
        kept ticks (replayed with the bands it used) moves the aim. Judged only on the ticks
        whose margin was calibrated, against the aim those margins were calibrated for:
        overspent, the new aim is that aim cut at once, in proportion once a window of
        calibrated ticks is in; under half spent, raised by at most a quarter; either by
        less on less evidence (measured, issue 15: a few hours of a sparse trace read as
        nothing spent and raised the aim to its top within two days). So the same
        overspend, still in the window, never cuts the aim again at every recalibration
        (no wind-up: it had cut the aim to a tenth within a day of starting), and the ticks
        before the first calibration (the band's own margin) do not count against the
        margins after. Returns the share of the budget the calibrated ticks spent, over the
        window and over its last day (None: none calibrated yet): what
        loop_replay.overspent_now judges."""
        self._spent_over = pd.Timedelta(frame.times[-1] - frame.times[0]).to_pytimedelta()
        ticks = self._ticks
        used = replace(
            frame, peak=ticks.column(USED_PEAK)[:-1], arrival=ticks.column(USED_ARRIVAL)[:-1]
        )
        late, arrivals = replay_lateness(used, 1.0, self.settings, fixed)
        self.spent = late_share(late, arrivals)
        aims = ticks.column(AIM)[:-1]
        calibrated = np.isfinite(aims)
        if arrivals[calibrated].sum() <= 0:  # none calibrated yet (or no demand)
            return None, None
        last_day = calibrated.copy()
        last_day[: -max(1, round(DAY.total_seconds() / frame.tick_s))] = False
        target = self.settings.service_target
        recent = late_share(late[last_day], arrivals[last_day]) / target
        aimed = float(np.average(aims[calibrated], weights=arrivals[calibrated]))
        share = late_share(late[calibrated], arrivals[calibrated]) / self.settings.service_target
        # The evidence grows with the calibrated span: a burst in the first hours after a
        # calibration is a noisy measure of a week's budget: the move is its power evidence.
        evidence = min(1.0, calibrated.sum() * frame.tick_s / self.settings.window.total_seconds())
        if share > 1.0:
            self.aim = aimed / share**evidence
        elif share < 0.5:
            loosen = min(LOOSEN_MOST, 0.75 / share) if share > 0 else LOOSEN_MOST
            self.aim = aimed * loosen**evidence
        self.aim = min(max(self.aim, AIMS[0]), AIMS[1])
        return share, recent

    def _frame(self) -> Frame:
        """The kept ticks as arrays (all but the newest, whose demand is yet to come)."""
        ticks = self._ticks
        times = ticks.times()
        return Frame(
            times=times[:-1],
            demand=ticks.column(DEMAND)[:-1],
            served=ticks.column(DEMAND)[1:],
            peak=ticks.column(BAND_PEAK)[:-1],
            arrival=ticks.column(BAND_ARRIVAL)[:-1],
            schedules=ticks.schedules()[:-1],
            tick_s=tick_seconds(times),
        )
