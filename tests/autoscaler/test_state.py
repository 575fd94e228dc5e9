"""State survives a restart, is written atomically, and a broken file never stops the daemon."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.policy import Memory
from autoscaler.state import STATE_VERSION, PoolState, ReadOnlyStateStore, StateStore

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def sample_pools() -> dict[str, PoolState]:
    return {
        "faces": PoolState(
            memory=Memory(
                last_action_at=T0 - timedelta(minutes=7),
                recommendations=((T0 - timedelta(minutes=2), 4), (T0, 3)),
                signal_counts=(("backlog", T0 - timedelta(minutes=1), 6),),
            ),
            failing={"metrics": T0 - timedelta(minutes=30)},
            reported_expired=["2025-06-01T00:00:00+00:00"],
            last_decision={"desired": 4, "current": 5, "reasons": ["hold 5: cooldown"]},
            loop={"margin": 0.8, "member": "reactive", "aim": 0.9, "at": T0.isoformat()},
        ),
        "ocr": PoolState(),
        "gen": PoolState(
            loop={
                "margin": 0.7,
                "member": "static",
                "aim": 1.0,
                "at": T0.isoformat(),
                "held_level": 41.5,
            }
        ),
    }


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state" / "state.json")


def test_round_trip(store: StateStore) -> None:
    pools = sample_pools()
    store.save(pools)
    loaded = store.load()
    assert loaded == pools
    faces = loaded["faces"].memory
    assert faces.last_action_at is not None and faces.last_action_at.utcoffset() == timedelta(0)


def test_each_time_is_written_in_its_own_offset_whatever_was_written_before(
    store: StateStore,
) -> None:
    """The same instant in UTC and in another zone: each pool's file line keeps its own
    text (UTC times' texts are kept between saves, by instant, which must not mix them)."""
    from zoneinfo import ZoneInfo

    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))
    pools = {
        "utc": PoolState(memory=Memory(recommendations=((T0, 3),))),
        "berlin": PoolState(memory=Memory(recommendations=((berlin, 3),), last_action_at=berlin)),
    }
    for _ in range(2):
        store.save(pools)
        saved = json.loads(store.path.read_text())["pools"]
        assert saved["utc"]["recommendations"] == [[T0.isoformat(), 3]]
        assert saved["berlin"]["recommendations"] == [["2025-06-02T14:00:00+02:00", 3]]
        assert saved["berlin"]["last_action_at"] == "2025-06-02T14:00:00+02:00"
    assert store.load() == pools


def test_the_file_has_a_line_per_pool_to_read_and_grep(store: StateStore) -> None:
    store.save(sample_pools())
    lines = store.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 + len(sample_pools())  # the head, a line per pool, the close
    assert [line.split(":")[0] for line in lines[1:-1]] == ['"faces"', '"gen"', '"ocr"']
    assert json.loads(lines[2].rstrip(",").partition(": ")[2])["loop"]["member"] == "static"


def test_first_start_has_no_state(store: StateStore) -> None:
    assert store.load() == {}


def test_save_replaces_atomically_and_leaves_no_temp_files(store: StateStore) -> None:
    store.save(sample_pools())
    store.save({"ocr": PoolState()})
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["state.json"]
    assert set(store.load()) == {"ocr"}
    assert json.loads(store.path.read_text())["version"] == STATE_VERSION


def test_failed_save_keeps_the_old_file_whole(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(sample_pools())
    before = store.path.read_bytes()

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        store.save({"other": PoolState()})
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["state.json"]


def _truncated(store: StateStore) -> str:
    store.save(sample_pools())
    text = store.path.read_text()
    return text[: len(text) // 2]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param("{not json", "unreadable", id="not-json"),
        pytest.param("", "unreadable", id="empty-file"),
        pytest.param(None, "unreadable", id="truncated"),
        pytest.param('{"version": 99, "pools": {}}', "unknown state version 99", id="version"),
        pytest.param('{"pools": {}}', "unknown state version None", id="no-version"),
        pytest.param("[1, 2]", "unreadable", id="not-an-object"),
        pytest.param('{"version": 1}', "unreadable", id="no-pools"),
        pytest.param('{"version": 1, "pools": []}', "unreadable", id="pools-not-a-map"),
        pytest.param(
            '{"version": 1, "pools": {"a": {"recommendations": [["yesterday", 3]]}}}',
            "unreadable",
            id="bad-timestamp",
        ),
        pytest.param(
            '{"version": 1, "pools": {"a": {"last_action_at": 5}}}',
            "unreadable",
            id="wrong-type",
        ),
        pytest.param(
            '{"version": 1, "saved_ns": 1e999, "pools": {}}', "unreadable", id="infinite-number"
        ),
        pytest.param("[" * 100_000 + "]" * 100_000, "unreadable", id="nested-too-deep"),
    ],
)
def test_broken_file_is_set_aside(
    store: StateStore, caplog: pytest.LogCaptureFixture, content: str | None, says: str
) -> None:
    text = _truncated(store) if content is None else content
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(text)
    with caplog.at_level(logging.ERROR, logger="autoscaler.state"):
        assert store.load() == {}
    aside = store.path.with_name("state.json.corrupt")
    assert aside.read_text() == text  # kept for a person to look at
    assert not store.path.exists()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert says in errors[0].getMessage()
    assert "state.json.corrupt" in errors[0].getMessage()
    # The daemon goes on: the next save writes a good file that loads again.
    store.save(sample_pools())
    assert store.load() == sample_pools()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("last_known_desired", "3", "last_known_desired: node count '3' is not"),
        ("failing", [], "failing: 'list' object has no attribute 'items'"),
        ("recommendations", [["2025-06-02T12:00:00", 3]], "recommendations: time '2025-06-02T"),
    ],
)
def test_a_hand_edited_field_is_named_with_its_pool_and_line(
    store: StateStore, field: str, value: object, says: str
) -> None:
    """A field of the wrong type in one pool's line sets the file aside (as any that does
    not read); the alert said only what Python said ("'list' object has no attribute
    'items'"), not which pool, line or field, in a file of a line per pool."""
    store.save(sample_pools())
    lines = store.path.read_text().splitlines()
    number = next(n for n, line in enumerate(lines, 1) if line.startswith('"gen": '))
    pool = json.loads(lines[number - 1].removeprefix('"gen": ').rstrip(","))
    pool[field] = value
    lines[number - 1] = f'"gen": {json.dumps(pool)},'
    store.path.write_text("\n".join(lines) + "\n")
    assert store.load() == {}
    assert store.problem is not None
    assert f"(pool 'gen' (line {number}): {says}" in store.problem


def test_second_corruption_replaces_the_older_corrupt_copy(store: StateStore) -> None:
    store.path.parent.mkdir(parents=True)
    for text in ("{first", "{second"):
        store.path.write_text(text)
        assert store.load() == {}
    assert store.path.with_name("state.json.corrupt").read_text() == "{second"


def test_a_corrupt_file_that_cannot_be_set_aside_is_not_said_to_be(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A state folder where the rename fails (read-only, or the name taken by a folder):
    the error stops the start ('cannot start: ...' with why the file was to be set aside
    and why it could not be); no line claims the file was set aside."""
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    (store.path.parent / "state.json.corrupt" / "x").mkdir(parents=True)
    with caplog.at_level(logging.INFO), pytest.raises(OSError) as raised:
        store.load()
    assert "is unreadable (Expecting property name" in str(raised.value)
    assert "cannot be set aside as state.json.corrupt" in str(raised.value)
    assert "set aside" not in caplog.text and store.problem is None
    assert store.path.read_text() == "{not json"


def test_a_save_interrupted_by_a_kill_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    StateStore(path).save({"ocr": PoolState()})
    leftover = tmp_path / ".state.json.k3j2h1.tmp"  # what kill -9 mid-save leaves
    leftover.write_text('{"version": 1, "po')
    week = StateStore(path).weeks / ".ocr.npz.x8f1a2.tmp"  # the same, of a loop's week
    week.parent.mkdir()
    week.write_bytes(b"PK\x03")
    assert "ocr" in StateStore(path).load(set_aside_corrupt=False)
    assert leftover.exists() and week.exists()  # read-only callers touch nothing
    assert "ocr" in StateStore(path).load()
    assert not leftover.exists() and not week.exists()


def test_a_leftover_of_an_interrupted_save_that_cannot_be_removed_does_not_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk remounted read-only mid-save (ext4's errors=remount-ro) keeps the save's
    temporary file, which its own clean-up cannot remove either. The next start raised on
    removing it ("cannot start: Read-only file system", exit 2, which systemd does not
    restart), though the state file is whole and the daemon runs on a read-only state
    folder otherwise. It is now left there, said, and the state read. (Root, running the
    tests, writes a read-only folder anyway: the removal fails as the kernel would fail it.)"""
    path = tmp_path / "state.json"
    StateStore(path).save({"ocr": PoolState(last_known_desired=3)})
    leftover = tmp_path / ".state.json.k3j2h1.tmp"
    leftover.write_text('{"version": 1, "po')
    unlink = Path.unlink

    def read_only(self: Path, missing_ok: bool = False) -> None:
        if self.parent == tmp_path:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    with caplog.at_level(logging.WARNING, logger="autoscaler.state"):
        loaded = StateStore(path).load()
    assert loaded["ocr"].last_known_desired == 3 and leftover.exists()
    assert f"cannot remove {leftover} (Read-only file system)" in caplog.text


def test_an_unreadable_loop_calibration_is_dropped_not_fatal(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand-edited calibration loses only itself: the pool calibrates afresh."""
    store.save(sample_pools())
    raw = json.loads(store.path.read_text())
    raw["pools"]["faces"]["loop"] = {"margin": "wide", "member": "reactive", "aim": 1, "at": "x"}
    store.path.write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING):
        loaded = store.load()
    assert loaded["faces"].loop is None and loaded["faces"].memory == sample_pools()["faces"].memory
    assert "loop calibration" in caplog.text


def test_a_pools_own_save_is_laid_over_the_whole_file_until_the_next_whole_save(
    store: StateStore,
) -> None:
    """Just before a pool's fleet is written only that pool is saved (a journal line);
    a restart before the end-of-tick save finds it, the last line of a pool winning, and
    that save empties the journal."""
    pools = sample_pools()
    store.save(pools)
    whole = store.path.read_text()
    acted = PoolState(memory=Memory(last_action_at=T0), last_known_desired=None)
    store.save_pool("ocr", PoolState(last_known_desired=3))
    store.save_pool("ocr", acted)
    store.save_pool("new pool", acted)
    assert store.path.read_text() == whole  # the whole file is not written again
    assert len(store.journal.read_text().splitlines()) == 3
    loaded = store.load()
    assert loaded["ocr"] == acted and loaded["new pool"] == acted
    assert loaded["faces"] == pools["faces"]
    store.save(loaded)
    assert store.journal.read_text() == ""
    assert store.load() == loaded


def test_a_journal_line_older_than_the_whole_file_or_cut_short_is_not_used(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Lines left by a whole save cut short before it emptied the journal are older than
    the whole file; a line cut short by a kill mid-write does not read. Neither is used:
    that pool keeps what the whole file (or an earlier line) has."""
    pools = sample_pools()
    store.save_pool("faces", PoolState())
    stale = store.journal.read_text()
    store.save(pools)
    store.journal.write_text(stale)  # as if the save had not emptied it
    store.save_pool("ocr", PoolState(last_known_desired=7))
    with store.journal.open("a") as journal:
        journal.write('{"version": 1, "saved_ns": 99999999999999999999, "name": "gen", "po')
    with caplog.at_level(logging.WARNING):
        loaded = store.load()
    assert loaded["faces"] == pools["faces"] and loaded["gen"] == pools["gen"]
    assert loaded["ocr"].last_known_desired == 7
    assert "line 3 is unreadable" in caplog.text


def test_a_pools_save_after_a_journal_line_cut_short_is_a_line_of_its_own(
    store: StateStore,
) -> None:
    """A journal whose last line was cut short (a kill or a full disk mid-write) had the
    next pool's save appended to it: the two read as one unreadable line, and a restart
    lost the save made just before that pool's fleet write (its cooldown, and the count
    it could not yet know). The save now starts on a line of its own."""
    pools = sample_pools()
    store.save(pools)
    with store.journal.open("a") as journal:
        journal.write('{"version": 1, "saved_ns": 99999999999999999999, "name": "gen", "po')
    acted = PoolState(memory=Memory(last_action_at=T0), last_known_desired=None)
    store.save_pool("ocr", acted)
    loaded = store.load()
    assert loaded["ocr"] == acted and loaded["gen"] == pools["gen"]


def test_a_journal_line_of_numbers_out_of_range_is_ignored_not_fatal(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """`1e999` reads as infinity, which `int` refuses with OverflowError (not ValueError):
    that line is skipped as any unreadable one, and so is a calibration too big for a
    float, which drops only itself."""
    pools = sample_pools()
    store.save(pools)
    raw = json.loads(store.path.read_text())
    raw["pools"]["gen"]["loop"]["margin"] = 10**400
    store.path.write_text(json.dumps(raw))
    store.journal.write_text(
        '{"version": 1, "saved_ns": 1e999, "name": "ocr", "pool": {}}\n' + "[" * 100_000 + "\n"
    )
    with caplog.at_level(logging.WARNING):
        loaded = store.load()
    assert loaded["ocr"] == pools["ocr"] and loaded["gen"].loop is None
    assert "line 1 is unreadable" in caplog.text and "line 2 is unreadable" in caplog.text
    assert "loop calibration" in caplog.text


def test_a_dry_runs_store_saves_no_pool(tmp_path: Path) -> None:
    store = ReadOnlyStateStore(tmp_path / "state.json")
    store.save_pool("ocr", PoolState())
    assert list(tmp_path.iterdir()) == []


def test_a_week_too_old_to_be_taken_up_is_removed_at_start(tmp_path: Path) -> None:
    """A week file untouched for longer than any restart could take it up (a pool removed
    from the config) goes at the next start; a recent one stays, and a read-only caller
    removes nothing."""
    import time as clock

    from autoscaler.kept_ticks_file import WEEK_KEPT_FOR
    from autoscaler.loop_replay import LoopSettings

    assert LoopSettings.window < WEEK_KEPT_FOR  # what a restart may take up is never removed
    store = StateStore(tmp_path / "state.json")
    store.weeks.mkdir()
    old, recent = store.week_path("gone"), store.week_path("gen")
    for week in (old, recent):
        week.write_bytes(b"PK")
    stale = clock.time() - WEEK_KEPT_FOR.total_seconds() - 60
    os.utime(old, (stale, stale))
    store.load(set_aside_corrupt=False)
    assert old.exists()
    store.load()
    assert not old.exists() and recent.exists()


def test_a_loop_calibration_reads_back_with_its_floor(tmp_path: Path) -> None:
    """Under `margin: widen` the floor is saved with the margin; the state file gives it
    back (it was dropped as the file was read, so a restart never named it)."""
    loop = {"margin": 0.9, "member": "forecast", "aim": 1.6, "at": "2026-12-04T10:00:00+00:00"}
    store = StateStore(tmp_path / "state.json")
    store.save({"gen": PoolState(loop={**loop, "floor": 0.88})})
    assert store.load()["gen"].loop == {**loop, "floor": 0.88}


def test_a_fifo_in_place_of_the_state_file_or_its_journal_holds_nothing(tmp_path: Path) -> None:
    """A FIFO where the state file or its journal should be (a mistaken `mkfifo`, a
    log shipper's pipe): read_text waited for a writer for ever, so the daemon never
    started, and appending a pool's save waited for a reader, holding its write. Now the
    state is set aside as unreadable, the journal ignored, and a save refused at once."""
    path = tmp_path / "state.json"
    store = StateStore(path)
    os.mkfifo(path)
    os.mkfifo(store.journal)
    assert store.load() == {}
    assert store.problem is not None and "not a regular file" in store.problem
    with pytest.raises(OSError, match="not a regular file"):
        store.save_pool("ocr", PoolState())


def test_a_fifo_in_place_of_a_loops_week_is_ignored_not_waited_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon reads each loop-calibrated pool's week as it starts: a FIFO at
    `loop-ticks/<pool>.npz` was opened and waited on for a writer that never came, so the
    daemon never started (systemd killed it at its start timeout, and again after each
    restart). It is now refused at once, as any week that does not read: said, and the
    pool's week starts over."""
    store = StateStore(tmp_path / "state.json")
    week = store.week_path("gen")
    week.parent.mkdir()
    os.mkfifo(week)
    found: list[object] = []
    reader = threading.Thread(target=lambda: found.append(store.load_week("gen", UTC)))
    with caplog.at_level(logging.WARNING, logger="autoscaler.state"):
        reader.start()
        reader.join(timeout=60)
        waited = reader.is_alive()
        if waited:  # still waiting for a writer: one that comes and goes lets it end
            os.close(os.open(week, os.O_WRONLY | os.O_NONBLOCK))
            reader.join()
    assert not waited and found == [None]
    assert (
        "not a regular file (a FIFO)" in caplog.text
        and "starts its loop's week over" in caplog.text
    )


def test_a_journal_that_is_not_utf8_is_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save({"ocr": PoolState(last_known_desired=3)})
    store.journal.write_bytes(b"\xff\xfe not json\n")
    assert store.load()["ocr"].last_known_desired == 3


def test_the_last_digests_day_survives_a_restart_and_a_broken_record_reads_as_none(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The daily digest's record (autoscaler/daemon_digest.py): a file of its own beside
    the state file; one that does not read (a FIFO, a hand edit) is said and read as no
    record, never fatal; a dry run's store writes none."""
    assert store.load_digest_day() is None  # a first start
    store.save_digest_day(date(2026, 11, 27))
    assert StateStore(store.path).load_digest_day() == date(2026, 11, 27)
    store.digest_record.write_text('{"version": 1, "sent": "27.11.2026"}')
    assert store.load_digest_day() is None
    store.digest_record.unlink()
    os.mkfifo(store.digest_record)
    assert store.load_digest_day() is None
    assert "not a regular file" in caplog.text and "digest.json is unreadable" in caplog.text
    dry = ReadOnlyStateStore(store.path.with_name("dry") / "state.json")
    dry.save_digest_day(date(2026, 11, 27))
    assert not dry.path.parent.exists()
