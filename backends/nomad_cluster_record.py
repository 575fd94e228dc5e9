"""A cluster scale-in's record kept on disk (`<pool>.backend.json` beside the daemon's
state): read at the first use after a start, written at each step, removed once no node
is leaving.

Its own room because keeping the record (read as a small regular file, written
atomically; an unusable one repaired and replaced; a first save that fails stops the
scale-in, a later one is only logged) is apart from the scale-in it records
(backends.nomad_cluster) and from the pure rules of its steps (backends.nomad_drain).
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable
from pathlib import Path

from backends.base import BackendError
from backends.nomad_drain import ScaleInRecord, record_from_json
from common.atomic import write_atomically
from common.small_files import MIB, read_small_text

log = logging.getLogger("backends.nomad_cluster")  # the backend's logger, as before the split

RECORD_MAX_BYTES = 16 * MIB
"""A scale-in record names a few nodes; read as a regular file of at most this (a FIFO in
its place held every read, under the tick lock, for a writer that never came)."""


class RecordFile:
    """One group's scale-in record, in memory and at `path` (None: in memory only).

    `repair` gives back every node the cluster tagged, where the file is unusable: it
    may save (the record then in memory is the empty one), and raises BackendError
    where it could not finish (the file stays, to repair again on the next use)."""

    def __init__(
        self, path: Path | None, group: str, target: str, repair: Callable[[], None]
    ) -> None:
        self.path = path
        self.group = group
        self.target = target
        self._repair = repair
        self._record: ScaleInRecord | None = None  # loaded on first use

    def loaded(self) -> ScaleInRecord:
        if self._record is None:
            self._record = self._load()
        return self._record

    def _load(self) -> ScaleInRecord:
        empty = ScaleInRecord(group=self.group)
        if self.path is not None:
            self._remove_interrupted_saves(self.path)
        if self.path is None or not self.path.exists():
            return empty
        try:
            text = read_small_text(self.path, RECORD_MAX_BYTES)
            record = record_from_json(text, self.group)
        except (OSError, ValueError) as error:
            log.error(
                "%s: scale-in record %s is unusable (%s); repairing nodes we tagged",
                self.target,
                self.path,
                type(error).__name__,
            )
            self._record = empty  # what the repair edits while repairing
            try:
                self._repair()
            except BackendError:
                self._record = None  # the file stays: repair again on the next call
                raise
            self.save(self._record)  # replaces the unusable file (or removes it)
            return self._record
        if record.nodes:
            log.info("%s: resuming a scale-in of %d nodes", self.target, len(record.nodes))
        return record

    def _remove_interrupted_saves(self, path: Path) -> None:
        """A save killed before its rename leaves its temporary file beside the record (the
        record is whole: the old one or the new); the first use after a start clears them,
        as the state file's start does, or each kill mid-save left one there for good."""
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            try:
                leftover.unlink(missing_ok=True)
            except OSError as error:
                log.warning("cannot remove %s (%s); left there", leftover, error.strerror)

    def save(self, record: ScaleInRecord, *, first: bool = False) -> None:
        """A scale-in starts only once its record is on disk (else BackendError, nothing
        touched); a later save that fails is logged, the record in memory goes on."""
        try:
            if self.path is not None and record.nodes:
                write_atomically(self.path, record.to_json())
            elif self.path is not None:
                self.path.unlink(missing_ok=True)
        except OSError as error:
            problem = f"scale-in record {self.path} cannot be written ({error.strerror or error})"
            if first:
                raise BackendError(f"{self.target}: not scaling in: {problem}") from None
            log.error("%s: %s; going on with the record in memory", self.target, problem)
        self._record = record
