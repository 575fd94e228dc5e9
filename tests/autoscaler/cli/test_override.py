"""`autoscaler override set|list|clear` on a temporary config and overrides file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.cli import override as cli_override
from autoscaler.cli.override import override_app
from autoscaler.config.loader import load_overrides
from autoscaler.config.overrides_file import set_override
from autoscaler.overrides import Override

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)

CONFIG = """\
overrides_file: overrides.yaml
state_dir: state
metrics:
  kind: replay
  trace: trace.csv
pools:
  - name: gpu-ocr
    backend: {kind: simulated}
    demand: {query: up}
    capacity: {per_node_rps: 40}
    max_nodes: 30
  - name: face-match
    backend: {kind: simulated}
    demand: {query: up}
    capacity: {per_node_rps: 10}
    max_nodes: 8
"""


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_override, "_now", lambda: NOW)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "autoscaler.yaml"
    path.write_text(CONFIG)
    return path


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(override_app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_set_fixed_count_for_a_duration(config: Path) -> None:
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "12", "--for", "2h", "--reason", "Black Friday",
        "--by", "alice", "--config", config,
    )  # fmt: skip
    assert code == 0, out
    assert "gpu-ocr → 12 nodes until 2026-11-27T08:00:00+00:00" in out
    saved = load_overrides(config.parent / "overrides.yaml").overrides["gpu-ocr"]
    assert saved == Override(
        nodes=12, expires=NOW + timedelta(hours=2), reason="Black Friday", set_by="alice"
    )


def test_set_for_a_bare_number_of_seconds(config: Path) -> None:
    """README: a duration on any command line may be a bare number of seconds; `--for 7200`
    was refused as 'expected a duration such as 90s, ...', though backtest takes one."""
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "4", "--for", "7200", "--reason", "drill", "-c", config
    )  # fmt: skip
    assert code == 0, out
    saved = load_overrides(config.parent / "overrides.yaml").overrides["gpu-ocr"]
    assert saved.expires == NOW + timedelta(hours=2)


def test_set_over_an_override_says_the_one_it_replaces(config: Path) -> None:
    """A pool has one override: a second `set` replaced the first (a campaign's floor,
    set by a colleague) without a word."""
    code, out = invoke(
        "set", "gpu-ocr", "--min", "8", "--for", "6h", "--reason", "campaign", "-c", config
    )
    assert code == 0 and "replaces" not in out, out
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "2", "--for", "1h", "--reason", "maintenance", "-c", config
    )
    assert code == 0, out
    assert "it replaces: min 8 until 2026-11-27T12:00:00+00:00, reason: campaign" in " ".join(
        out.split()
    )
    assert load_overrides(config.parent / "overrides.yaml").overrides["gpu-ocr"].nodes == 2


def test_set_bounds_until_a_time(config: Path) -> None:
    code, out = invoke(
        "set", "face-match", "--min", "3", "--max", "6", "--until", "2026-11-27T18:00+05:30",
        "--reason", "campaign", "-c", config,
    )  # fmt: skip
    assert code == 0, out
    saved = load_overrides(config.parent / "overrides.yaml").overrides["face-match"]
    assert (saved.min_nodes, saved.max_nodes, saved.nodes) == (3, 6, None)
    assert saved.expires == datetime.fromisoformat("2026-11-27T18:00+05:30")
    assert saved.set_by  # defaults to the user running the command


def test_set_above_the_pool_max_warns(config: Path) -> None:
    code, out = invoke(
        "set", "face-match", "--nodes", "20", "--for", "1h", "--reason", "x", "-c", config
    )
    assert code == 0
    assert "max_nodes is 8" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gpu-ocrr", "--nodes", "3", "--for", "1h"], "unknown pool 'gpu-ocrr'"),
        (["gpu-ocr", "--nodes", "3", "--min", "1", "--for", "1h"], "not both"),
        (["gpu-ocr", "--for", "1h"], "give --nodes N, or --min N"),
        (["gpu-ocr", "--nodes", "3"], "exactly one of --for"),
        (["gpu-ocr", "--nodes", "3", "--for", "1h", "--until", "2030-01-01T00:00Z"],
         "exactly one of --for"),
        (["gpu-ocr", "--nodes", "3", "--for", "soon"], "--for: expected a duration"),
        (["gpu-ocr", "--nodes", "3", "--for", "0s"], "longer than zero"),
        (["gpu-ocr", "--nodes", "3", "--for", "0"], "longer than zero"),
        (["gpu-ocr", "--nodes", "3", "--for", "-60"], "--for: a duration cannot be negative"),
        (["gpu-ocr", "--nodes", "3", "--until", "2026-11-28T10:00"], "no UTC offset"),
        (["gpu-ocr", "--nodes", "3", "--until", "tomorrow"], "expected an ISO time"),
        (["gpu-ocr", "--nodes", "3", "--until", "2026-11-27T05:00Z"], "already past"),
        (["gpu-ocr", "--nodes", "3", "--from", "2026-11-20T05:00Z", "--for", "1h"],
         "already past"),
        (["gpu-ocr", "--nodes", "3", "--from", "9999-12-31T23:00Z", "--for", "2h"],
         "outside the years 1970 to 2199"),
        (["gpu-ocr", "--nodes", "3", "--from", "2026-11-28T10:00Z", "--until",
          "2026-11-28T08:00Z"], "--until 2026-11-28T08:00Z is not after --from"),
        (["gpu-ocr", "--min", "5", "--max", "2", "--for", "1h"], "--min 5 is above --max 2"),
        (["gpu-ocr", "--nodes", "-1", "--for", "1h"], "--nodes: Input should be greater"),
        (["gpu-ocr", "--nodes", "3", "--until", "2026-11-27T18:00+05:30:15"],
         "--until: '2026-11-27T18:00+05:30:15' has a UTC offset with seconds"),
        (["gpu-ocr", "--nodes", "3", "--from", "2026-11-27T18:00+05:30:15", "--for", "1h"],
         "--from: '2026-11-27T18:00+05:30:15' has a UTC offset with seconds"),
    ],
)  # fmt: skip
def test_set_refuses_bad_input_and_writes_nothing(
    config: Path, args: list[str], message: str
) -> None:
    code, out = invoke("set", *args, "--reason", "why", "--config", config)
    assert code == 2, out
    assert message in out
    assert not (config.parent / "overrides.yaml").exists()


def test_set_refuses_a_blank_reason(config: Path) -> None:
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "3", "--for", "1h", "--reason", " ", "-c", config
    )
    assert code == 2
    assert "--reason: reason must say why" in out


def test_a_reason_with_a_control_character_is_refused_in_the_option_and_the_file(
    config: Path,
) -> None:
    """The reason is printed to the next operator's terminal (`override list`, `status`):
    an escape sequence in it would act there, so neither the CLI nor the file takes one."""
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "3", "--for", "1h", "--reason", "x\x1b[2J", "-c", config
    )  # fmt: skip
    assert code == 2
    assert "--reason: holds a control character (U+001B)" in out
    overrides = config.parent / "overrides.yaml"
    assert not overrides.exists()
    overrides.write_text(
        "overrides:\n  gpu-ocr:\n    nodes: 3\n    expires: 2030-01-01T00:00:00Z\n"
        '    reason: "x\\e]0;pwned\\a"\n'
    )
    code, out = invoke("list", "-c", config)
    assert code == 2
    assert "overrides.yaml:5: overrides.gpu-ocr.reason: holds a control" in out.replace("\n", "")
    assert "\x1b" not in out


def test_a_name_with_a_control_character_is_refused_naming_by(config: Path) -> None:
    """`--by` with a tab (pasted from a table) was refused as 'set_by: holds a control
    character', a file field the person never typed, not the option to fix."""
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "3", "--for", "1h", "--reason", "drill",
        "--by", "al\tice", "-c", config,
    )  # fmt: skip
    assert code == 2
    assert "--by: holds a control character (U+0009)" in out
    assert "set_by" not in out
    assert not (config.parent / "overrides.yaml").exists()


def test_a_file_over_what_the_daemon_reads_is_refused_not_written(config: Path) -> None:
    """Two overrides with a log pasted into --reason: the second made a file the daemon
    refuses (over 256 KiB), though `override set` said it was set."""
    pasted = "stack trace line; " * 8_000  # 144,000 characters
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "3", "--for", "1h", "--reason", pasted, "-c", config
    )  # fmt: skip
    assert code == 0
    path = config.parent / "overrides.yaml"
    before = path.read_text()
    code, out = invoke(
        "set", "face-match", "--nodes", "3", "--for", "1h", "--reason", pasted, "-c", config
    )  # fmt: skip
    assert code == 2
    assert "more than the 262,144 the daemon reads; shorten the reasons" in out
    assert path.read_text() == before


def test_invalid_config_is_reported_with_file_and_line(config: Path) -> None:
    config.write_text(CONFIG.replace("max_nodes: 8", "max_nodes: eight"))
    code, out = invoke("list", "--config", config)
    assert code == 2
    assert f"{config.name}:16: pools[1].max_nodes" in out.replace("\n", "")


def test_config_without_overrides_file(config: Path) -> None:
    config.write_text(CONFIG.replace("overrides_file: overrides.yaml\n", ""))
    setting = ["set", "gpu-ocr", "--nodes", "1", "--for", "1h", "--reason", "x"]
    for args in (["list"], ["clear", "gpu-ocr"], setting):
        code, out = invoke(*args, "-c", config)
        assert code == 2
        assert "sets no overrides_file" in out


def test_broken_overrides_file_is_left_alone(config: Path) -> None:
    broken = "overrides:\n  gpu-ocr: {nodes: 3, expires: 2030-01-01T00:00:00Z\n"
    overrides = config.parent / "overrides.yaml"
    overrides.write_text(broken)
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "1", "--for", "1h", "--reason", "x", "-c", config
    )
    assert code == 2
    assert "overrides.yaml:" in out
    assert "malformed YAML" in out
    assert invoke("list", "-c", config)[0] == 2
    assert invoke("clear", "gpu-ocr", "-c", config)[0] == 2
    assert overrides.read_text() == broken


def test_list(config: Path) -> None:
    overrides = config.parent / "overrides.yaml"
    code, out = invoke("list", "-c", config)
    assert (code, "no overrides in") == (0, out[: len("no overrides in")])
    soon, past = NOW + timedelta(hours=2), NOW - timedelta(minutes=1)
    set_override(
        overrides,
        "gpu-ocr",
        Override(nodes=12, expires=soon, reason="Black Friday", set_by="alice"),
    )
    set_override(
        overrides, "face-match", Override(min_nodes=2, max_nodes=5, expires=past, reason="old")
    )
    set_override(
        overrides, "retired", Override(nodes=1, expires=NOW + timedelta(days=1), reason="x")
    )
    code, out = invoke("list", "-c", config)
    assert code == 0, out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert set(rows) == {"gpu-ocr", "face-match", "retired"}
    assert "pool" in out and "status" in out
    for word in ("fixed", "12 nodes", "2026-11-27 08:00 +0000", "Black Friday", "alice",
                 "active (2h00m left)"):  # fmt: skip
        assert word in rows["gpu-ocr"], rows["gpu-ocr"]
    for word in ("bounds", "min 2, max 5", "old", "expired"):
        assert word in rows["face-match"]
    assert "active (1d0h00m left), unknown pool" in rows["retired"]


def test_list_on_a_narrow_terminal_shows_each_field_whole(config: Path) -> None:
    """At 80 columns the table cut the reason and the state short ("reas…", "acti…"):
    each override is a block there, a field a line."""
    reason = "launch day: marketing campaign at 09:00, keep capacity warm"
    expires = NOW + timedelta(hours=2)
    set_override(
        config.parent / "overrides.yaml",
        "gpu-ocr",
        Override(nodes=12, expires=expires, reason=reason, set_by="alice"),
    )
    result = CliRunner().invoke(override_app, ["list", "-c", str(config)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert ["reason", *reason.split()] in lines, result.output
    assert ["status", "active", "(2h00m", "left)"] in lines, result.output
    assert "…" not in result.output


def test_clear(config: Path) -> None:
    overrides = config.parent / "overrides.yaml"
    expires = NOW + timedelta(hours=1)
    set_override(overrides, "gpu-ocr", Override(nodes=3, expires=expires, reason="x"))
    set_override(overrides, "retired", Override(nodes=3, expires=expires, reason="x"))
    code, out = invoke("clear", "gpu-ocr", "-c", config)
    assert (code, out.strip()) == (0, "override cleared: gpu-ocr")
    code, out = invoke("clear", "gpu-ocr", "-c", config)
    assert code == 0
    assert "nothing to clear" in out
    # An override for a pool that left the config can still be cleared.
    assert invoke("clear", "retired", "-c", config)[0] == 0
    assert load_overrides(overrides).overrides == {}
    code, out = invoke("clear", "nope", "-c", config)
    assert code == 2
    assert "unknown pool 'nope'" in out


def test_clear_where_the_overrides_folder_is_not_there_makes_none(config: Path) -> None:
    """`override clear` before any override was set, its overrides_file in a folder not
    made yet, said 'nothing to clear' (or, for an unknown pool, failed) but made the
    folder, as owner and mode the command's user (root, under sudo) left it."""
    config.write_text(CONFIG.replace("overrides.yaml", "overrides.d/overrides.yaml", 1))
    code, out = invoke("clear", "gpu-ocr", "-c", config)
    assert code == 0 and "nothing to clear" in out
    code, out = invoke("clear", "nope", "-c", config)
    assert code == 2 and "unknown pool 'nope'" in out
    assert sorted(p.name for p in config.parent.iterdir()) == ["autoscaler.yaml"]


def test_registered_on_the_main_cli(config: Path) -> None:
    from autoscaler.cli.main import app

    result = CliRunner().invoke(app, ["override", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "no overrides" in result.output


def test_written_file_is_what_the_loader_reads(config: Path) -> None:
    invoke("set", "gpu-ocr", "--nodes", "4", "--for", "30m", "--reason", "a: b # c", "-c", config)
    text = (config.parent / "overrides.yaml").read_text()
    assert "nodes: 4" in text
    assert (
        load_overrides(config.parent / "overrides.yaml").overrides["gpu-ocr"].reason == "a: b # c"
    )


def test_set_a_dated_window_from_a_time_for_a_duration(config: Path) -> None:
    """A campaign planned ahead: min 20 from 08:00 to 22:00 IST; listed as 'starts ...'."""
    code, out = invoke(
        "set", "gpu-ocr", "--min", "20", "--from", "2026-11-28T08:00+05:30", "--for", "14h",
        "--reason", "campaign", "-c", config,
    )  # fmt: skip
    assert code == 0, out
    assert "from 2026-11-28T08:00:00+05:30 until 2026-11-28T22:00:00+05:30" in out
    saved = load_overrides(config.parent / "overrides.yaml").overrides["gpu-ocr"]
    assert saved.starts == datetime.fromisoformat("2026-11-28T08:00+05:30")
    assert saved.expires == datetime.fromisoformat("2026-11-28T22:00+05:30")
    assert not saved.is_active(NOW) and not saved.is_expired(NOW)
    code, out = invoke("list", "-c", config)
    assert code == 0 and "starts 2026-11-28 08:00 +0530" in out
    code, out = invoke(
        "set", "gpu-ocr", "--nodes", "2", "--from", "2026-11-28T08:00", "--for", "1h",
        "--reason", "x", "-c", config,
    )  # fmt: skip
    assert code != 0 and "--from" in out and "no UTC offset" in out


def test_a_file_that_cannot_be_written_is_an_error_not_a_traceback(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk or a folder the operator may not write in: said in one line, exit 2,
    the old file as it was."""
    invoke("set", "gpu-ocr", "--nodes", "3", "--for", "1h", "--reason", "x", "-c", config)
    overrides = config.parent / "overrides.yaml"
    before = overrides.read_text()

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("common.atomic.os.replace", full)
    for args in (
        ["set", "face-match", "--nodes", "2", "--for", "1h", "--reason", "x"],
        ["clear", "gpu-ocr"],
    ):
        code, out = invoke(*args, "-c", config)
        assert code == 2, out
        assert f"cannot write {overrides}: No space left on device" in out.replace("\n", "")
    assert overrides.read_text() == before


@pytest.mark.parametrize("key", ["gpu-ocr[/]", "[bold]gpu-ocr"])
def test_clear_says_an_entry_with_brackets_as_written(config: Path, key: str) -> None:
    """An entry typed into the file by hand under a name with brackets was cleared, and
    then the confirmation was read as rich markup: '[/]' a MarkupError traceback (exit 1,
    though the file was written), '[bold]' printed as 'gpu-ocr', a name not cleared."""
    overrides = config.parent / "overrides.yaml"
    expires = NOW + timedelta(hours=1)
    set_override(overrides, key, Override(nodes=3, expires=expires, reason="x"))
    code, out = invoke("clear", key, "-c", config)
    assert (code, out.strip()) == (0, f"override cleared: {key}")
    assert load_overrides(overrides).overrides == {}
