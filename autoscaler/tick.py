"""One tick for one pool: observe, forecast, size, decide, act, tell, remember.

Steps 2-4 are pure (predictors/, autoscaler/policy.py); this module is the thin
adapter around them. A failure in one step is contained: metrics trouble holds
the fleet, backend trouble skips acting, notification trouble is only logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

import pandas as pd

from autoscaler.calibration import LoopCalibrated, pool_predictor
from autoscaler.capacity_watch import CapacityWatch
from autoscaler.config.schema import Pool
from autoscaler.decision_log import DecisionLog
from autoscaler.history_masks import history_to_learn
from autoscaler.kept_demand import KeptDemand
from autoscaler.kept_ticks_file import KeptWeek
from autoscaler.metrics import MetricsSource, newest_time, step_floor
from autoscaler.notify import Notifier
from autoscaler.other_autoscalers import OtherAutoscalers
from autoscaler.overrides import OverridesFile
from autoscaler.plan import act, limits_of, noticing_change_by_hand, plan
from autoscaler.pool_state import last_count_of
from autoscaler.signals.observe import observe_signals, signal_problems
from autoscaler.sizing import Sizing, forecast_demand, observe_demand
from autoscaler.state import PoolState, StateStore
from autoscaler.tick_news import TickNews
from autoscaler.tick_result import TickResult, decision_record
from backends.base import (
    Backend,
    BackendError,
    ChangedByOthersError,
    CountChangedError,
    FleetState,
    calls_off_once,
)
from predictors import Predictor

log = logging.getLogger(__name__)


class PoolTicker(TickNews):
    """Runs the tick for one pool; holds only the collaborators, never the decision. What
    it tells on Slack: autoscaler.tick_news."""

    def __init__(
        self,
        pool: Pool,
        backend: Backend,
        per_node_rps: float,
        metrics: MetricsSource,
        max_staleness: Any,
        notifier: Notifier,
        decision_log: DecisionLog,
        dry_run: bool,
        predictor: Predictor | None = None,
        weeks: StateStore | None = None,
        written_by: str | None = None,
    ) -> None:
        self.pool = pool
        self.backend = backend
        self.per_node_rps = per_node_rps
        self.metrics = metrics
        self.max_staleness = max_staleness
        self.notifier = notifier
        self.decision_log = decision_log
        self.dry_run = dry_run or pool.dry_run
        self.persist: Callable[[], None] = lambda: None
        """Saves the daemon's state; called right before a write to the fleet."""
        self.in_flight = False  # a tick of this pool is running (maybe one left behind)
        self.abandoned = threading.Event()  # the daemon stopped waiting: write nothing
        self.others = OtherAutoscalers(pool.name)  # asked at the first tick: start, reload
        self.fleet = pool.backend.fleet_key()
        self.written_by = written_by
        """The pool that scales this dry_run pool's fleet (config.fleets.watched_fleets):
        its counts are no change by hand here."""
        check = pool.capacity_check
        self.capacity = CapacityWatch(pool.name, check, per_node_rps) if check else None
        # Kept across ticks: a predictor may reuse what it learned (see predictors.base).
        self.predictor = predictor or pool_predictor(pool, per_node_rps, limits_of(pool))
        self._loop_resumed = False
        self.weeks = weeks
        """Where the loop's week of ticks is kept across restarts (None: not kept, as in a
        simulation)."""
        self._week_saved_for: datetime | None = None
        """The recalibration the week last written was kept up to."""
        self._week_found: KeptWeek | None = None
        """The week read for the first tick to take up (find_week)."""
        self.fitted = False
        """A tick has forecast: the predictor is no longer fresh (autoscaler.fit_workers)."""
        self._observed: tuple[datetime, pd.Series | str] | None = None
        self._held_at: int | None = None  # the fleet held its count at its bound last tick
        self._would: tuple[int, int] | None = None  # a dry run's, told last tick
        self._kept_demand: KeptDemand | None = None
        """The last checked demand history: the next tick asks only for what came since."""
        self._lag = timedelta(0)
        """How far its newest sample was behind the tick's grid end (a source that lags)."""

    def carry_over(self, previous: PoolTicker) -> bool:
        """Take over what `previous` (this pool's ticker before a config reload) has
        learned: its predictor, with the history, the fitted model and the loop's week of
        ticks and calibration in it, and its capacity check's figure (measured over hours: a
        quiet window after a reload has nothing to measure it again from). Only where the
        pool is configured the same, and no tick of `previous` is still running (one left
        behind would share the predictor)."""
        same = previous.pool == self.pool and previous.per_node_rps == self.per_node_rps
        if not same or previous.in_flight:
            return False
        self.predictor = previous.predictor
        self._kept_demand, self._lag = previous._kept_demand, previous._lag
        self._loop_resumed = previous._loop_resumed
        self._week_saved_for = previous._week_saved_for
        self.fitted = previous.fitted
        self.capacity = previous.capacity
        return True

    @property
    def forecaster(self) -> Predictor:
        """What fits the demand history: the predictor, or the one its loop calibration wraps."""
        predictor = self.predictor
        return predictor.inner if isinstance(predictor, LoopCalibrated) else predictor

    def observe(self, now: datetime) -> pd.Series | str:
        """The pool's checked demand history at `now`, or why there is none. A good answer
        is kept (in one assignment: a call left behind past its deadline may still finish
        beside the next tick's, and either answer is a whole one)."""
        answer = observe_demand(self.pool, self.metrics, now, self.max_staleness, self._kept_demand)
        if isinstance(answer, str):
            return answer
        self._kept_demand = answer
        self._lag = step_floor(now, self.pool.demand.step) - newest_time(answer.series.index)
        return answer.series

    def history_to_fit(self, history: pd.Series) -> pd.Series | None:
        """What the forecaster learns from `history` (demand.exclude masked); None if nothing."""
        learned, _, unusable = history_to_learn(history, self.pool.demand.exclude)
        return None if unusable else learned

    def heavy_fit_due(self, now: datetime) -> bool:
        """Whether this tick's fit is likely a heavy one, worth a worker process
        (autoscaler.fit_workers): a fresh forecaster's, or a refit due by the newest sample
        the tick will read (as far behind as the last one was). A hint: a wrong one costs
        a round trip, or a refit in the tick."""
        if not self.fitted:
            return True
        due = getattr(self.forecaster, "heavy_fit_due", None)  # one that ever refits
        newest = self._newest_expected(now)
        return (due is not None and bool(due(newest))) or self._recalibration_due(newest)

    @property
    def recalibrates(self) -> bool:
        """Its loop calibration replays its kept week from time to time (margin widen, loop)."""
        return isinstance(self.predictor, LoopCalibrated)

    def predictor_to_fit(self, now: datetime) -> Predictor:
        """What a fit worker fits for the tick at `now`: the forecaster; the whole
        predictor where its loop calibration recalibrates on that tick too (once resumed:
        a first tick resumes the saved one before its fit)."""
        if self._recalibration_due(self._newest_expected(now)):
            return self.predictor
        return self.forecaster

    def _newest_expected(self, now: datetime) -> datetime:
        """The newest sample a tick at `now` will read, as far behind as the last one was."""
        return step_floor(now, self.pool.demand.step) - self._lag

    def _recalibration_due(self, newest: datetime) -> bool:
        predictor = self.predictor
        return (
            self._loop_resumed
            and isinstance(predictor, LoopCalibrated)
            and predictor.recalibration_due(newest)
        )

    def take_fit(
        self, now: datetime, observed: pd.Series | str, forecaster: Predictor | None
    ) -> None:
        """What the fit workers (autoscaler.fit_workers) made for the tick at `now`: the
        pool's observation, used instead of a second query, and its forecaster fitted on
        it (the tick's own fit on the same samples then costs no refit)."""
        self._observed = (now, observed)
        if forecaster is None:
            return
        if isinstance(self.predictor, LoopCalibrated) and not isinstance(
            forecaster, LoopCalibrated
        ):
            self.predictor.inner = forecaster
        else:  # the forecaster, or the whole predictor (predictor_to_fit)
            self.predictor = forecaster

    def tick(self, now: datetime, state: PoolState, overrides: OverridesFile) -> TickResult:
        """One tick; never raises. An error nobody foresaw (a number that overflows, a
        library's surprise) holds the fleet, is logged with its traceback and alerted
        once as kind "tick", like a metrics or backend failure."""
        self.in_flight = True
        try:
            result = self._tick(now, state, overrides)
        except Exception as exc:
            log.exception("pool %s: tick failed", self.pool.name)
            result = TickResult(self.pool.name, now, None, Sizing(), None, dry_run=self.dry_run)
            result.errors["tick"] = (
                f"tick failed ({type(exc).__name__}: {exc}); the fleet is held as it is"
            )
        finally:
            self.in_flight = False
        self._track_failures(now, state, result)
        state.last_decision = self._log(result)  # for `status`, as the log has it
        return result

    def _tick(self, now: datetime, state: PoolState, overrides: OverridesFile) -> TickResult:
        pool = self.pool
        state.others_told = self.others.ask_once(self.backend, self._send, state.others_told)
        per_node_rps, capacity_note = self._capacity(now, state)
        self._resume_loop(now, state)
        taken, self._observed = self._observed, None
        observed = taken[1] if taken is not None and taken[0] == now else self.observe(now)
        sizing = forecast_demand(pool, self.predictor, observed, per_node_rps)
        self.fitted = self.fitted or sizing.forecast is not None
        if isinstance(self.predictor, LoopCalibrated) and sizing.forecast is not None:
            state.loop = self.predictor.saved(now)
            if self.predictor.recalibrated_at != self._week_saved_for:
                self.save_week()
        sizing = replace(sizing, capacity_note=capacity_note)
        result = TickResult(pool.name, now, None, sizing, None, dry_run=self.dry_run)
        if sizing.missing_reason:
            result.errors["metrics"] = sizing.missing_reason
        try:
            result.fleet = self.backend.read()
        except BackendError as exc:
            result.errors["backend"] = str(exc)
            if isinstance(exc, CountChangedError):  # its own doing: no change by hand next
                state.last_known_desired = None
        self._report_expired(now, state, overrides)
        if result.fleet is not None:
            readings = observe_signals(
                pool, self.metrics, now, self.max_staleness, result.fleet, sizing, per_node_rps
            )
            result.sizing = replace(sizing, signals=readings)
            problems = signal_problems(result.sizing.signals)
            if problems:
                result.errors["signals"] = problems
            self._decide_and_act(now, state, overrides, result)
        return result

    def _resume_loop(self, now: datetime, state: PoolState) -> None:
        """Once, at the first tick: a loop-calibrated pool takes up its saved margin, and
        the week of ticks it was calibrated on."""
        predictor = self.predictor
        if self._loop_resumed or not isinstance(predictor, LoopCalibrated):
            return
        self._loop_resumed = True
        name = self.pool.name
        if self._week_found is None:
            self.find_week(now.tzinfo)
        week, self._week_found = self._week_found, None
        resumed, took_up = predictor.restart_from(state.loop, week, now)
        if resumed and state.loop is not None:
            log.info(
                "pool %s: resumed the loop calibration saved at %s (margin %.2f x %s)",
                name,
                state.loop["at"],
                predictor.margin,
                predictor.member,
            )
        if took_up and week is not None:
            self._week_saved_for = predictor.recalibrated_at
            log.info(
                "pool %s: took up %d loop ticks kept before the restart", name, len(week.ticks)
            )

    def find_week(self, zone: tzinfo | None) -> None:
        """Read the loop's week kept before a restart, for the first tick to take up: the
        daemon has each pool read its own as it starts (~1 ms a pool), not in that tick."""
        if self.weeks is not None and isinstance(self.predictor, LoopCalibrated):
            self._week_found = self.weeks.load_week(self.pool.name, zone)

    def save_week(self) -> None:
        """Write the loop's week of ticks for a restart: at each recalibration, and when
        the daemon stops. Its trouble is logged, never the tick's: the week is a cache."""
        predictor, store = self.predictor, self.weeks
        week = predictor.kept_week() if isinstance(predictor, LoopCalibrated) else None
        if store is None or week is None:
            return
        try:
            store.save_week(self.pool.name, week)
        except OSError as exc:
            where = store.week_path(self.pool.name)
            log.warning("pool %s: its loop's week not saved to %s (%s)", self.pool.name, where, exc)
        self._week_saved_for = week.recalibrated_at

    def _capacity(self, now: datetime, state: PoolState) -> tuple[float, str | None]:
        """Per-node req/s to size with: the profile's, or the measured one (see
        capacity_watch); a drift is told once."""
        if self.capacity is None:
            return self.per_node_rps, None
        self.capacity.resume(state.capacity)  # at a start: the figure measured before
        self.capacity.refresh(self.metrics, now)
        state.capacity = self.capacity.saved()
        message, state.capacity_alerted = self.capacity.message(state.capacity_alerted)
        if message is not None:
            self._send(message)
        return self.capacity.sizing()

    def _decide_and_act(
        self, now: datetime, state: PoolState, overrides: OverridesFile, result: TickResult
    ) -> None:
        assert result.fleet is not None
        by_hand = self._notice_manual_change(now, state, result.fleet)
        decision, memory = plan(
            self.pool, result.sizing, now, result.fleet.desired, overrides, state.memory
        )
        result.decision = decision
        state.memory = memory
        if by_hand is not None:  # told with the decision: held, or set back at once
            self._tell_manual_change(now, by_hand, decision)
        if decision.desired != decision.current and not self.dry_run:
            # Until the write is answered the count is unknown: a crash or a lost answer
            # must not make the next reading look like a change by hand. The memory (with
            # this action's time, which starts the cooldown even if the write fails, since
            # it may have landed) is saved before the write, so a restart does not repeat it.
            state.last_known_desired = None
            try:
                if self.abandoned.is_set():  # the daemon stopped waiting: too late to write
                    raise BackendError("tick past its deadline: not written")
                with calls_off_once(self.abandoned):  # nor once it stops waiting mid-write
                    result.backend_note = act(self.backend, decision, self.persist)
                result.acted = True
            except BackendError as exc:
                result.errors["backend"] = str(exc)
                if isinstance(exc, ChangedByOthersError):  # theirs next tick: a change by hand
                    state.last_known_desired = decision.current
        if "backend" not in result.errors:
            result.after = self._count_after(decision.desired, result)
            state.last_known_desired = result.after
        self._tell_scale(decision, result, state)

    def _count_after(self, asked: int, result: TickResult) -> int | None:
        """The count the fleet holds after this tick: the one asked for, or where the fleet
        clamped it (MaxSize, scale-in protection) the one read back: neither a clamp taken
        for a change by hand nor one by hand at the cap missed. None: that read failed."""
        assert result.fleet is not None
        if not result.acted:
            return result.fleet.desired
        if result.backend_note is None:
            return asked
        try:
            return self.backend.read().desired
        except BackendError:
            return None

    def _notice_manual_change(
        self, now: datetime, state: PoolState, fleet: FleetState
    ) -> int | None:
        """A count we did not set means someone scaled by hand: not fought (within the
        bounds in force). Returns the count before it; None: no such change."""
        before = self.last_count(state)
        state.fleet = self.fleet
        memory = state.memory
        state.memory = noticing_change_by_hand(memory, before, fleet.desired, now)
        return None if state.memory is memory else before

    def last_count(self, state: PoolState) -> int | None:
        """The count the last tick left, against which a change by hand is noticed; None:
        none to notice (the pool moved to another fleet, or watches one another pool
        scales, whose counts are the autoscaler's own)."""
        return None if self.written_by is not None else last_count_of(state, self.fleet)

    def _log(self, result: TickResult) -> dict[str, Any]:
        """Every decision at INFO with its reasons (WARNING when something failed), and
        in the decision log; the record logged, as plain JSON values."""
        record = self.decision_log.append(decision_record(result))
        level = logging.WARNING if result.errors else logging.INFO
        fields = {k: record[k] for k in ("pool", "action", "current", "desired", "ready")}
        log.log(
            level,
            "pool=%s action=%s current=%s desired=%s reasons=%s errors=%s",
            result.pool,
            record["action"],
            record["current"],
            record["desired"],
            " | ".join(record["reasons"]),
            "; ".join(f"{kind}: {text}" for kind, text in result.errors.items()) or "-",
            extra={"decision": {**fields, "reasons": record["reasons"], "errors": result.errors}},
        )
        return record
