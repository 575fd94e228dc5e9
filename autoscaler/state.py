"""What the daemon remembers across restarts, saved atomically as one JSON file (and, just
before a pool's fleet is written, that pool's own, in a journal beside it).

A missing state file is a first start. A corrupt one is reported and set aside
(renamed), and the daemon starts with empty memory, which is safe: an empty
stabilization window holds the fleet rather than shrinking it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import zipfile
from datetime import date, tzinfo
from pathlib import Path
from typing import Any

from autoscaler.kept_ticks_file import WEEK_KEPT_FOR, KeptWeek, read_week, write_week
from autoscaler.pool_state import (
    UNREADABLE,
    PoolState,
    pool_from_json,
    pool_named,
    pool_to_json,
)
from common.atomic import fsync_folder, write_atomically
from common.secrets import redacted_json
from common.small_files import MIB, ends_mid_line, open_to_append, read_small_text

log = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_MAX_BYTES = 256 * MIB
"""Far above any fleet's memory (a few kB a pool); the state file and its journal are read
as regular files of at most this: a FIFO put in their place would hold the start for ever
(common.small_files), a file larger is set aside (the state) or ignored (the journal)."""
DIGEST_RECORD_MAX_BYTES = 4096


class StateStore:
    """The state file, and a journal beside it of the saves made just before a pool's
    fleet is written (`save_pool`: one line and one fsync), which `load` lays over the
    state file's and the next whole `save` empties. Saving the whole file before each
    write cost every pool's state and two fsyncs per write: seconds a tick for 1,000
    pools when many scale at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal = path.with_name(path.name + ".journal")
        """The pools' saves since the last whole one, a JSON line each."""
        self.problem: str | None = None
        """Why the last load found the file unusable (for the daemon to alert on)."""
        self._journal_lock = threading.Lock()
        self._last_ns = 0  # the latest stamp this store wrote or read (`_stamp`)
        self._stamp_lock = threading.Lock()

    def _stamp(self) -> int:
        """A save's `saved_ns`: the wall clock's, but after every stamp before it. The
        journal's lines are told from a whole save's by these, and a clock stepped back
        (an NTP step) made a pool's save before its fleet write look older than the state
        file: the next start ignored it and took the write for a change by hand."""
        with self._stamp_lock:
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            return self._last_ns

    def _saw_stamp(self, saved_ns: int) -> None:
        with self._stamp_lock:
            self._last_ns = max(self._last_ns, saved_ns)

    def load(self, *, set_aside_corrupt: bool = True) -> dict[str, PoolState]:
        """The saved memory; `set_aside_corrupt=False` for read-only callers (`forecast`)."""
        if set_aside_corrupt:
            self._remove_interrupted_saves()
            self._remove_stale_weeks()
        pools, saved_ns = self._load_whole(set_aside_corrupt)
        self._saw_stamp(saved_ns)
        pools.update(self._load_journal(saved_ns))
        return pools

    def _load_whole(self, set_aside_corrupt: bool) -> tuple[dict[str, PoolState], int]:
        if not self.path.exists():
            return {}, 0
        try:
            text = read_small_text(self.path, STATE_MAX_BYTES)
            raw = _versioned(json.loads(text))
            pools = {name: pool_named(name, data, text) for name, data in raw["pools"].items()}
            return pools, int(raw.get("saved_ns", 0))
        except UNREADABLE as exc:
            if not set_aside_corrupt:
                log.warning("state file %s is unreadable (%s); ignoring it", self.path, exc)
                self.problem = f"state file {self.path} is unreadable ({exc}); read as empty"
                return {}, 0
            aside = self.path.with_name(self.path.name + ".corrupt")
            try:  # said only once done; a failure stops the start, saying both
                self.path.replace(aside)
            except OSError as err:
                raise OSError(
                    f"state file {self.path} is unreadable ({exc}) and cannot be set aside "
                    f"as {aside.name}: {err.strerror or err}"
                ) from err
            self.problem = (
                f"state file {self.path} was unreadable ({exc}); set aside as {aside.name}; "
                "started with empty memory (the fleet is held, not shrunk)"
            )
            log.error(
                "state file %s is unreadable (%s); set aside as %s, starting with "
                "empty memory (the fleet is held, not shrunk)",
                self.path,
                exc,
                aside.name,
            )
            return {}, 0

    def _load_journal(self, saved_ns: int) -> dict[str, PoolState]:
        """The pools' saves newer than the whole file's (older lines are left from a whole
        save cut short before it emptied the journal), the last of each pool winning; a
        line that does not read (a save cut short mid-line) is ignored: that pool keeps
        what the whole file, or an earlier line, has."""
        try:
            lines = read_small_text(self.journal, STATE_MAX_BYTES).splitlines()
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("state journal %s is unreadable (%s); ignoring it", self.journal, exc)
            return {}
        pools: dict[str, PoolState] = {}
        for number, line in enumerate(lines, 1):
            try:
                raw = _versioned(json.loads(line))
                self._saw_stamp(int(raw["saved_ns"]))
                if int(raw["saved_ns"]) > saved_ns:
                    pools[str(raw["name"])] = pool_from_json(raw["pool"])
            except UNREADABLE as exc:
                log.warning("%s line %d is unreadable (%s); ignoring it", self.journal, number, exc)
        return pools

    def _remove_interrupted_saves(self) -> None:
        """A save killed before its rename leaves its temporary file (the state file itself
        is whole: the old or the new one); the next start clears them away, where it can
        (on a folder gone read-only mid-save one stays, said: no reason not to start)."""
        for leftover in [
            *self.path.parent.glob(f".{self.path.name}.*.tmp"),
            *self.path.parent.glob(f".{self.digest_record.name}.*.tmp"),
            *self.weeks.glob(".*.npz.*.tmp"),
        ]:
            log.info("removing %s, left by an interrupted save", leftover.name)
            try:
                leftover.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s (%s); left there", leftover, exc.strerror)

    def _remove_stale_weeks(self) -> None:
        """A week file not written for WEEK_KEPT_FOR cannot be taken up (its newest tick is
        older than the replay's week): a pool removed from the config, or one that has
        not ticked since, would leave its 0.57 MB there for good. The start clears them."""
        now = time.time()
        for week in self.weeks.glob("*.npz"):
            with contextlib.suppress(OSError):
                if now - week.stat().st_mtime > WEEK_KEPT_FOR.total_seconds():
                    log.info("removing %s, too old to be taken up", week)
                    week.unlink()

    @property
    def weeks(self) -> Path:
        """The folder of the loop-calibrated pools' weeks of ticks, one file a pool
        (autoscaler.kept_ticks_file)."""
        return self.path.parent / "loop-ticks"

    def week_path(self, pool: str) -> Path:
        return self.weeks / f"{pool}.npz"

    def save_week(self, pool: str, week: KeptWeek) -> None:
        write_week(self.week_path(pool), week)

    def load_week(self, pool: str, zone: tzinfo | None) -> KeptWeek | None:
        """The pool's saved week of ticks; None where there is none, or where it does not
        read whole (said: the file is a cache, and the week starts over)."""
        path = self.week_path(pool)
        try:
            return read_week(path, zone)
        except FileNotFoundError:
            return None
        except (*UNREADABLE, zipfile.BadZipFile, EOFError) as exc:
            log.warning(
                "%s is unreadable (%s); pool %s starts its loop's week over", path, exc, pool
            )
            return None

    @property
    def digest_record(self) -> Path:
        """The local day of the last daily digest this host sent: a file of its own, written
        as the post is taken (beside the ticks, which save the state file)."""
        return self.path.with_name("digest.json")

    def load_digest_day(self) -> date | None:
        """The day the record names; None where there is none yet, or it does not read
        (said: a restart after the digest's time may then send that day's again)."""
        try:
            raw = _versioned(
                json.loads(read_small_text(self.digest_record, DIGEST_RECORD_MAX_BYTES))
            )
            return date.fromisoformat(raw["sent"])
        except FileNotFoundError:
            return None
        except UNREADABLE as exc:
            log.warning("%s is unreadable (%s); ignoring it", self.digest_record, exc)
            return None

    def save_digest_day(self, day: date) -> None:
        record = {"version": STATE_VERSION, "sent": day.isoformat()}
        write_atomically(self.digest_record, json.dumps(record) + "\n")

    def save(self, pools: dict[str, PoolState]) -> None:
        """Every pool's state, as one file; the journal of the pools' own saves is then
        emptied."""
        write_atomically(self.path, _state_text(pools, self._stamp()))
        with self._journal_lock, contextlib.suppress(FileNotFoundError):
            os.truncate(self.journal, 0)

    def save_pool(self, name: str, state: PoolState) -> None:
        """One pool's state, just before its fleet is written (a line in the journal, on
        disk when this returns): a restart then knows of the write (its cooldown, and a
        count it did not see) even if killed right after it."""
        data = {
            "version": STATE_VERSION,
            "saved_ns": self._stamp(),
            "name": name,
            "pool": pool_to_json(state),
        }
        line = redacted_json(data) + "\n"
        with self._journal_lock:
            created = not self.journal.exists()
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            with open_to_append(self.journal) as handle:
                if not created and ends_mid_line(self.journal):  # a save cut short
                    handle.write("\n")  # not glued to it, which would lose this one too
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            if created:  # a new file's name is on disk once its folder is
                fsync_folder(self.journal.parent)


class ReadOnlyStateStore(StateStore):
    """A dry run's store: it reads the memory a real run left, and never changes the file
    (no save, no clearing of leftovers, no setting aside), so the next real run starts
    from what it would have without the dry run."""

    def load(self, *, set_aside_corrupt: bool = True) -> dict[str, PoolState]:
        return super().load(set_aside_corrupt=False)

    def save(self, pools: dict[str, PoolState]) -> None:
        log.debug("dry run: would save the state of %d pools to %s", len(pools), self.path)

    def save_pool(self, name: str, state: PoolState) -> None:
        log.debug("dry run: would save the state of pool %s", name)

    def save_digest_day(self, day: date) -> None:
        log.debug("dry run: would record the daily digest of %s as sent", day)

    def save_week(self, pool: str, week: KeptWeek) -> None:
        log.debug("dry run: would save the loop's week of ticks of pool %s", pool)


def _versioned(raw: Any) -> Any:
    """A saved object of this version (the state file or a journal line), else ValueError."""
    if raw.get("version") != STATE_VERSION:
        raise ValueError(f"unknown state version {raw.get('version')!r}")
    return raw


def _state_text(pools: dict[str, PoolState], saved_ns: int) -> str:
    """The state file: one JSON document, a line per pool (sorted, its keys sorted) to read
    and grep. Indented throughout, it took the pure-Python encoder: ~30 ms a tick for
    1,000 pools, against ~10 ms."""
    lines = ",\n".join(
        f"{json.dumps(name)}: {redacted_json(pool_to_json(state), sort_keys=True)}"
        for name, state in sorted(pools.items())
    )
    head = json.dumps({"version": STATE_VERSION, "saved_ns": saved_ns})[:-1]
    return f'{head}, "pools": {{\n{lines}\n}}}}\n'
