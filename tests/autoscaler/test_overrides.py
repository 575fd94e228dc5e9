"""Overrides: the model's rules, which ones are in force, and safe edits of the file."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from autoscaler.config.loader import load_overrides
from autoscaler.config.overrides_file import clear_override, dump_overrides, set_override
from autoscaler.config.problems import ConfigError
from autoscaler.overrides import Override, OverridesFile, active_override, expired_overrides

IST = timezone(timedelta(hours=5, minutes=30))
EXPIRES = datetime(2026, 11, 27, 18, 0, tzinfo=IST)


def fixed(nodes: int = 12, expires: datetime = EXPIRES, reason: str = "Black Friday") -> Override:
    return Override(nodes=nodes, expires=expires, reason=reason, set_by="alice")


# ---- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": 3, "min_nodes": 1}, "cannot be combined"),
        ({"nodes": 3, "max_nodes": 5}, "cannot be combined"),
        ({}, "is required"),
        ({"min_nodes": 6, "max_nodes": 5}, "must not exceed"),
        ({"nodes": -1}, "greater than or equal to 0"),
        ({"min_nodes": -1}, "greater than or equal to 0"),
        ({"nodes": 3, "expires": datetime(2026, 11, 27, 18)}, "UTC offset"),
        ({"nodes": 3, "reason": " \t "}, "reason must say why"),
        ({"nodes": 3, "colour": "red"}, "Extra inputs"),
        ({"nodes": True}, "nodes: expected a number, got the boolean true"),  # YAML's `yes`
        ({"max_nodes": False}, "max_nodes: expected a number, got the boolean false"),
        # printed to terminals by `override list` and `status`: ESC [2J clears the screen
        ({"nodes": 3, "reason": "fine\x1b[2J"}, r"control character \(U\+001B\)"),
        ({"nodes": 3, "reason": "a\x00b"}, r"control character \(U\+0000\)"),
        ({"nodes": 3, "set_by": "bob\x9b31m"}, r"control character \(U\+009B\)"),
    ],
)
def test_override_rules(fields: dict[str, object], message: str) -> None:
    data = {"expires": EXPIRES, "reason": "why", **fields}
    with pytest.raises(ValidationError, match=message):
        Override.model_validate(data)


def test_override_kinds_and_text() -> None:
    assert fixed().describe() == "12 nodes"
    assert fixed().kind == "nodes"
    bounds = Override(min_nodes=3, max_nodes=10, expires=EXPIRES, reason="x")
    assert (bounds.kind, bounds.describe()) == ("bounds", "min 3, max 10")
    assert Override(max_nodes=4, expires=EXPIRES, reason="x").describe() == "max 4"
    assert Override(min_nodes=0, expires=EXPIRES, reason="x").describe() == "min 0"
    assert fixed(reason="  two\n lines  ").reason == "two lines"


def test_active_and_expired() -> None:
    overrides = OverridesFile(
        overrides={
            "ocr": fixed(expires=EXPIRES),
            "face": fixed(expires=EXPIRES - timedelta(days=1)),
        }
    )
    before = EXPIRES - timedelta(seconds=1)
    assert active_override(overrides, "ocr", before) == overrides.overrides["ocr"]
    assert active_override(overrides, "ocr", EXPIRES) is None  # expiry is exclusive
    assert active_override(overrides, "ocr", EXPIRES.astimezone(UTC) - timedelta(seconds=1))
    assert active_override(overrides, "face", before) is None
    assert active_override(overrides, "llm", before) is None
    assert active_override(overrides.overrides, "ocr", before) is not None  # a plain mapping
    assert expired_overrides(overrides, before) == {"face": overrides.overrides["face"]}
    assert set(expired_overrides(overrides, EXPIRES)) == {"ocr", "face"}
    assert expired_overrides(OverridesFile(), before) == {}
    with pytest.raises(ValueError, match="aware"):
        active_override(overrides, "ocr", datetime(2026, 1, 1))


# ---- the file ----------------------------------------------------------------------------


def test_set_creates_a_readable_file_for_people(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "overrides.yaml"
    set_override(path, "gpu-ocr", fixed())
    text = path.read_text()
    assert text.startswith("# Manual overrides")
    assert "overrides:\n  gpu-ocr:\n    nodes: 12\n" in text
    assert "    expires: 2026-11-27T18:00:00+05:30\n" in text  # ISO, offset kept, unquoted
    assert "    reason: Black Friday\n    set_by: alice\n" in text
    assert "min_nodes:" not in text  # unset keys are left out
    assert load_overrides(path).overrides == {"gpu-ocr": fixed()}


def test_a_new_file_is_readable_by_the_daemons_user(tmp_path: Path) -> None:
    """`sudo autoscaler override set` (the config is root's and the autoscaler group's)
    once made the file root's with mode 0600: the daemon, another user, could not read
    it, and the override never applied. A new file is 0644; an existing one keeps its."""
    path = tmp_path / "overrides.yaml"
    set_override(path, "gpu-ocr", fixed())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)
    set_override(path, "face", fixed())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="only root rewrites another user's file")
def test_an_existing_file_keeps_its_owner_when_root_rewrites_it(tmp_path: Path) -> None:
    """A file the daemon's user owns with mode 0600 (as `override set` made them before,
    run as that user) became root's when `sudo autoscaler override set` replaced it: the
    daemon could no longer read it and the override never applied. It keeps its owner."""
    path = tmp_path / "overrides.yaml"
    set_override(path, "gpu-ocr", fixed())
    os.chown(path, 4321, 4322)
    path.chmod(0o600)
    set_override(path, "face", fixed())
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4322, 0o600)
    assert set(load_overrides(path).overrides) == {"gpu-ocr", "face"}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can edit as two users")
def test_the_daemons_user_edits_after_root_did() -> None:
    """`sudo autoscaler override set` (root) made the editors' lock file root's, 0640
    under root's umask; every later `override set` or `clear` run as the daemon's user,
    as README's "When it pages you" says, then failed: "cannot write .overrides.yaml.lock:
    Permission denied". Whoever may replace the file in its folder may edit it."""
    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's tmp_path is root's alone
    try:
        folder.chmod(0o755)
        os.chown(folder, 4321, 4322)  # the state folder, the daemon's user's
        path = folder / "overrides.yaml"
        umask = os.umask(0o027)
        try:
            set_override(path, "gpu-ocr", fixed())
        finally:
            os.umask(umask)
        child = os.fork()
        if child == 0:  # the daemon's user, as `sudo -u autoscaler autoscaler override set`
            code = 1
            try:
                os.setgid(4322)
                os.setuid(4321)
                set_override(path, "face", fixed())
                code = 0 if clear_override(path, "gpu-ocr") else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert set(load_overrides(path).overrides) == {"face"}
    finally:
        shutil.rmtree(folder)


def test_an_overrides_file_behind_a_symlink_is_edited_where_it_lies(tmp_path: Path) -> None:
    """A link to the real file (a config's name for a file kept elsewhere) was replaced by
    a file of the command's own: what the real file's readers see never got the override,
    and an editor using the real name took another lock. Both names edit one file now."""
    real = tmp_path / "state" / "overrides.yaml"
    real.parent.mkdir()
    set_override(real, "gpu-ocr", fixed())
    link = tmp_path / "etc" / "overrides.yaml"
    link.parent.mkdir()
    link.symlink_to(real)
    set_override(link, "face", fixed(nodes=3))
    assert link.is_symlink()
    assert load_overrides(real).overrides == {"gpu-ocr": fixed(), "face": fixed(nodes=3)}
    assert clear_override(link, "gpu-ocr") is True
    assert link.is_symlink() and list(load_overrides(real).overrides) == ["face"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["overrides.yaml"]  # no lock here


def test_set_keeps_other_pools_and_replaces_its_own(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    bounds = Override(min_nodes=2, max_nodes=9, expires=EXPIRES, reason="batch: month end")
    set_override(path, "gpu-ocr", fixed())
    set_override(path, "on", bounds)  # a name YAML would read as a boolean
    set_override(path, "123", fixed(nodes=1))  # and one it would read as a number
    set_override(path, "gpu-ocr", fixed(nodes=20))
    loaded = load_overrides(path).overrides
    assert list(loaded) == ["gpu-ocr", "on", "123"]
    assert loaded == {"gpu-ocr": fixed(nodes=20), "on": bounds, "123": fixed(nodes=1)}
    assert "\n\n  'on':\n" in path.read_text()  # a blank line between pools


def test_clear(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    assert clear_override(path, "gpu-ocr") is False
    assert not path.exists()
    set_override(path, "gpu-ocr", fixed())
    set_override(path, "face", fixed())
    before = path.read_text()
    assert clear_override(path, "llm") is False
    assert path.read_text() == before
    assert clear_override(path, "gpu-ocr") is True
    assert list(load_overrides(path).overrides) == ["face"]
    assert clear_override(path, "face") is True
    assert load_overrides(path).overrides == {}
    assert "overrides: {}" in path.read_text()


def test_a_broken_file_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    broken = "overrides:\n  gpu-ocr:\n    nodes: [12\n"
    path.write_text(broken)
    with pytest.raises(ConfigError) as caught:
        set_override(path, "face", fixed())
    assert f"{path}:" in str(caught.value)
    with pytest.raises(ConfigError):
        clear_override(path, "gpu-ocr")
    assert path.read_text() == broken


def test_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "overrides.yaml"
    set_override(path, "gpu-ocr", fixed())
    before = path.read_text()

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        set_override(path, "face", fixed())
    assert path.read_text() == before
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["overrides.yaml"]  # no temp left


def test_a_file_larger_than_the_daemon_reads_is_not_written(tmp_path: Path) -> None:
    """Long reasons (a log pasted into --reason) made a file over the 256 KiB the daemon
    reads: `override set` said it was set, yet the daemon refused the file (at its next
    start no override applied) and every later set or clear called it broken."""
    path = tmp_path / "overrides.yaml"
    pasted = "stack trace line; " * 5_000  # 90,000 characters
    set_override(path, "gpu-ocr", fixed(reason=pasted))
    set_override(path, "face", fixed(reason=pasted))
    before = path.read_text()
    with pytest.raises(ValueError, match="more than the 262,144 the daemon reads"):
        set_override(path, "asr", fixed(reason=pasted))
    assert path.read_text() == before
    assert set(load_overrides(path).overrides) == {"gpu-ocr", "face"}


def test_dump_round_trips_odd_text(tmp_path: Path) -> None:
    odd = OverridesFile(
        overrides={
            "a": fixed(reason="quote \" and ' and: colon # hash"),
            "b": fixed(reason="ünïcödé ✓", expires=datetime(2030, 1, 1, tzinfo=UTC)),
            "c": Override(max_nodes=0, expires=EXPIRES, reason="- looks like a list", set_by="yes"),
        }
    )
    path = tmp_path / "overrides.yaml"
    path.write_text(dump_overrides(odd), encoding="utf-8")
    assert load_overrides(path) == odd


def test_concurrent_editors_do_not_lose_each_others_changes(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "overrides.yaml"

    def edit(prefix: str) -> None:
        for i in range(15):
            set_override(path, f"{prefix}{i}", fixed())

    threads = [threading.Thread(target=edit, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    from autoscaler.config.loader import load_overrides

    assert len(load_overrides(path).overrides) == 45


# ---- dated override windows -------------------------------------------------------------


def test_an_override_with_starts_waits_for_its_window_and_is_not_expired_before() -> None:
    opens = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    pin = Override(
        min_nodes=30, starts=opens, expires=opens + timedelta(hours=14), reason="campaign"
    )
    entries = {"ocr": pin}
    before, during, after = opens - timedelta(minutes=1), opens, opens + timedelta(hours=14)
    assert active_override(entries, "ocr", before) is None
    assert expired_overrides(entries, before) == {}
    assert active_override(entries, "ocr", during) == pin
    assert active_override(entries, "ocr", after) is None
    assert expired_overrides(entries, after) == {"ocr": pin}


def test_an_override_must_start_before_it_expires() -> None:
    moment = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="starts must be before expires"):
        Override(nodes=3, starts=moment, expires=moment, reason="x")
    with pytest.raises(ValidationError, match="starts needs a UTC offset"):
        Override(nodes=3, starts=moment.replace(tzinfo=None), expires=moment, reason="x")


@pytest.mark.parametrize("written", ["20261127", "'20261127'", '"20261127.5"'])
def test_a_number_for_a_time_is_refused_at_its_line_not_read_as_1970(
    tmp_path: Path, written: str
) -> None:
    """`expires: 20261127` (a date typed without dashes) was read as seconds since 1970:
    an override expired at once, ignored and reported as expired, the pin never held.
    Quoted, it was text, let through, and pydantic read that as seconds since 1970 too."""
    path = tmp_path / "overrides.yaml"
    path.write_text(
        f"overrides:\n  gpu-ocr:\n    nodes: 12\n    expires: {written}\n    reason: launch\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_overrides(path)
    text = str(caught.value)
    assert f"{path}:4" in text and "expires" in text
    assert "expected a date and time with a UTC offset" in text and "20261127" in text
