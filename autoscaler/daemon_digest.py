"""The daemon's daily digest: sent by its daily job, and caught up at a start or a takeover.

Nothing recorded the last digest sent, so a daemon started, restarted or taking over the
leader lock just after `digest.at` (a deploy at 09:01, a crash, a reboot over 09:00, an
active daemon that died at 08:59) sent none that day: the job's next time is tomorrow's.
The day of the last one sent is now kept in the state folder (StateStore's digest
record, per host: a standby shares no files with the active daemon), and one due today
and not sent is sent after the first tick as the active daemon, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from autoscaler.config.schema import Config
from autoscaler.daily_report import digest_post
from autoscaler.digest_trigger import digest_due, digest_trigger
from autoscaler.runtime import Runtime
from backends.leases import LeaderLock

log = logging.getLogger("autoscaler.daemon")  # the daemon's logger, as before the split


def digest_day(config: Config, due: datetime) -> date:
    """The local day a digest due at `due` is that day's (in the digest's zone)."""
    zone = ZoneInfo(config.digest.timezone if config.digest else "UTC")
    return due.astimezone(zone).date()


def unsent_today(config: Config, now: datetime, last: date | None) -> datetime | None:
    """When today's digest was due, where it is due by `now` and `last` (the day of the
    last one sent or under way) is before today. One due on an earlier local day is not
    caught up: today's, due later, covers the day from its end."""
    if config.digest is None:
        return None
    due = digest_due(config, now)
    day = digest_day(config, due)
    if day != digest_day(config, now) or (last is not None and last >= day):
        return None
    return due


class DigestSends:
    """The digest's side of `autoscaler.daemon.Daemon`, which sets these."""

    runtime: Runtime
    leader: LeaderLock | None
    _leading: bool | None
    _tick_lock: threading.Lock
    _stop: threading.Event
    _digest_lock: threading.Lock
    _digest_sent: date | None  # the record: the day of the last digest sent from this host
    _digest_claimed: date | None  # the day of the last one sent or under way, this process
    dry_run: bool
    _still_lead: Callable[[], bool]  # autoscaler.daemon_leadership

    def _catch_up_digest(self) -> None:
        """After a tick of the daemon's loop as the active daemon: today's digest, where it
        was due before this daemon started or took the lead and was not sent (by this
        host). None where the daily job is not scheduled (a dry run, a simulation)."""
        if self.leader is not None and not self._leading:
            return
        if digest_trigger(self.runtime.config, self.dry_run) is None:
            return
        try:
            now = self.runtime.clock.now()
            due = unsent_today(self.runtime.config, now, self._digest_claimed)
            if due is not None:
                day = digest_day(self.runtime.config, due)
                log.info("the daily digest of %s was not sent: sending it now", day)
                self._start_digest(due)
        except Exception:  # a digest must never stop the daemon
            log.exception("daily digest failed")

    def _start_digest(self, due: datetime | None = None) -> None:
        """The digest due at `due` (by default, the last `digest.at`) on a thread of its own,
        which a stop does not wait for: a slow Prometheus or Slack (minutes for many pools)
        held the stop past systemd's timeout. Claimed first, on the caller's thread: the
        job and a catch-up of one day never both send it. A standby claims nothing."""
        if self.leader is not None and not self._leading:
            return
        due = due or digest_due(self.runtime.config, self.runtime.clock.now())
        day = digest_day(self.runtime.config, due)
        with self._digest_lock:
            if self._digest_claimed is not None and self._digest_claimed >= day:
                log.info("the daily digest of %s was sent already (or is under way)", day)
                return
            self._digest_claimed = day
        threading.Thread(target=self.send_digest, args=(due,), name="digest", daemon=True).start()

    def send_digest(self, end: datetime | None = None) -> bool:
        """The daily digest of the day ended at `end` (now, by default), from the active
        daemon only (a standby stays quiet): built and posted beside the ticks, from the
        runtime of the moment (a slow Prometheus or Slack holds no tick). Once Slack took
        it, its day is recorded; one dropped or refused is not, for a restart to send."""
        try:
            with self._tick_lock:
                if not self._still_lead():  # by the lease: one stopped past its TTL led no more
                    return False
                runtime = self.runtime
                end = (end or runtime.clock.now()).replace(second=0, microsecond=0)
            rates = {t.pool.name: t.per_node_rps for t in runtime.tickers}  # as ticks sized
            post = digest_post(runtime.config, runtime.metrics, runtime.notifier, end, rates)
            if post is not None and self._stop.is_set():
                log.info("daily digest dropped: the daemon is stopping")
                return False
            sent = post is not None and post()
            if sent:
                self._record_digest(runtime, digest_day(runtime.config, end))
            return sent
        except Exception:  # a digest must never stop the daemon
            log.exception("daily digest failed")
            return False

    def _record_digest(self, runtime: Runtime, day: date) -> None:
        with self._digest_lock:
            if self._digest_sent is not None and self._digest_sent >= day:
                return
            self._digest_sent = day
            self._digest_claimed = max(day, self._digest_claimed or day)
            try:
                runtime.state_store.save_digest_day(day)
            except OSError as exc:
                log.warning(
                    "cannot record the daily digest of %s as sent (%s): a restart today may "
                    "send it again",
                    day,
                    exc.strerror or exc,
                )
