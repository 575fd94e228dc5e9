"""Loading config, overrides and profiles: every mistake names file, line and field."""

from __future__ import annotations

import textwrap
from datetime import UTC, time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.config.capacity import per_node_rps_of, read_per_node_rps
from autoscaler.config.loader import load_config, load_overrides, read_overrides_document
from autoscaler.config.problems import ConfigError, Problem
from autoscaler.config.schema import Capacity, Config
from autoscaler.config.validate import validate_files
from autoscaler.overrides import OverridesFile

BASE = """\
interval: 1m
state_dir: state
overrides_file: overrides.yaml
metrics:
  kind: replay
  trace: trace.csv
pools:
  - name: gpu-ocr
    backend:
      kind: simulated
      initial_nodes: 2
    demand:
      query: sum(rate(requests_total[1m]))
      window: 2h
    capacity:
      per_node_rps: 40
    max_nodes: 60
    boot_time: 10m
    horizon: 15m
    schedules:
      - name: business
        days: mon-sat
        start: "09:00"
        end: "18:00"
        timezone: Asia/Kolkata
        min_nodes: 50
        lead_time: 10m
  - name: face-match
    backend: {kind: simulated}
    demand: {query: up}
    capacity: {per_node_rps: 12.5}
    max_nodes: 8
"""

OVERRIDES = """\
overrides:
  gpu-ocr:
    nodes: 12
    expires: 2026-11-27T18:00:00+05:30
    reason: "Black Friday campaign"
    set_by: alice
"""


@pytest.fixture(autouse=True)
def _replay_trace(tmp_path: Path) -> None:
    """BASE replays trace.csv; `validate` reads it as `run` does, so it must exist."""
    (tmp_path / "trace.csv").write_text("timestamp,requests\n2026-01-05T00:00:00Z,60\n")


def write(tmp_path: Path, text: str, name: str = "autoscaler.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


def assert_reported(error: ConfigError, path: Path, line: int | None, field: str, *words: str):
    """The problem names the file, the line and the field, in the message people read."""
    text = str(error)
    matching = [p for p in error.problems if p.field == field and p.line == line]
    assert matching, f"no problem at line {line} for {field!r} in:\n{text}"
    rendered = str(matching[0])
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert rendered.startswith(prefix), rendered
    assert path.name in text
    if field:
        assert f": {field}: " in rendered
    for word in words:
        assert word in rendered, rendered
    return matching[0]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing `needle` (keeps tests honest about lines)."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


# ---- good files -------------------------------------------------------------------------


def test_valid_config_loads_with_paths_resolved_against_its_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert isinstance(config, Config)
    assert [p.name for p in config.pools] == ["gpu-ocr", "face-match"]
    assert config.overrides_file == tmp_path / "overrides.yaml"
    assert config.state_dir == tmp_path / "state"
    assert config.pools[0].schedules[0].days == ["mon", "tue", "wed", "thu", "fri", "sat"]


def test_unquoted_clock_time_is_a_time_not_a_base_60_number(tmp_path: Path) -> None:
    # YAML 1.1 reads 10:30 as 630; the loader keeps what a person meant.
    text = BASE.replace('start: "09:00"', "start: 10:30").replace('end: "18:00"', "end: 18:45")
    config = load_config(write(tmp_path, text))
    schedule = config.pools[0].schedules[0]
    assert (schedule.start, schedule.end) == (time(10, 30), time(18, 45))


def test_a_number_with_a_leading_zero_is_read_in_decimal_not_octal(tmp_path: Path) -> None:
    # YAML 1.1 reads 010 as octal 8 (and 08 as text): bounds silently lower than written.
    text = BASE.replace("max_nodes: 60", "max_nodes: 060").replace(
        "min_nodes: 50", "min_nodes: 012"
    )
    pool = load_config(write(tmp_path, text)).pools[0]
    assert (pool.max_nodes, pool.schedules[0].min_nodes) == (60, 12)
    overrides = write(tmp_path, OVERRIDES.replace("nodes: 12", "nodes: 010"), "overrides.yaml")
    assert load_overrides(overrides).overrides["gpu-ocr"].nodes == 10


def test_a_simulations_ends_share_one_utc_however_they_are_written(tmp_path: Path) -> None:
    """YAML's own timestamp and a quoted one parse to different UTC objects, and pandas
    refuses a range between them: the demo's summary failed at its end."""
    ends = "simulation:\n  start: 2026-11-23 09:00:00+01:00\n  end: '2026-11-23T10:00:00Z'\n"
    simulation = load_config(write(tmp_path, ends + BASE)).simulation
    assert simulation is not None
    assert simulation.start.tzinfo is UTC and simulation.end.tzinfo is UTC
    assert simulation.start.hour == 8
    assert len(pd.date_range(simulation.start, simulation.end, freq="1min")) == 121


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"),  # a traceback from validate and run
        ("9999-12-31T00:00:00Z", "9999-12-31T23:00:00Z"),  # passed; every tick overflowed
        ("0001-01-01T00:30:00+05:00", "2026-01-01T00:00:00Z"),  # before UTC was year 0
    ],
)
def test_a_simulation_out_of_the_years_a_clock_holds_is_a_located_error(
    tmp_path: Path, start: str, end: str
) -> None:
    path = write(tmp_path, f"simulation:\n  start: {start}\n  end: {end}\n" + BASE)
    _, problems = validate_files(path)
    (problem, *_) = [p for p in problems if p.field.startswith("simulation")]
    assert problem.file == path and problem.line == 2 and problem.field == "simulation.start"
    assert "between the years 1900 and 2200" in problem.message


def test_problem_text_and_error_listing() -> None:
    first = Problem(Path("a.yaml"), 3, "pools[0].max_nodes", "bad")
    second = Problem(Path("a.yaml"), None, "", "cannot read file")
    assert str(first) == "a.yaml:3: pools[0].max_nodes: bad"
    assert str(ConfigError([first, second])).splitlines() == [
        str(first),
        "a.yaml: cannot read file",
    ]


# ---- the file itself --------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert_reported(config_error(path), path, None, "", "not found")


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.yaml"
    path.mkdir()  # reading a folder fails for root too, unlike chmod 000
    assert_reported(config_error(path), path, None, "", "cannot read")


def test_not_utf8_names_the_line_and_column_of_the_first_bad_byte(tmp_path: Path) -> None:
    """A file saved as Latin-1 said only "position 22": the line is what a person needs."""
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"interval: 1m\nname: caf\xe9\n")
    assert_reported(config_error(path), path, 2, "", "0xe9 at column 10 is not UTF-8")
    overrides = tmp_path / "overrides.yaml"
    overrides.write_bytes(b"overrides:\n  a:\n    reason: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_overrides(overrides)
    assert str(caught.value.problems[0]).startswith(f"{overrides}:3: byte 0xff at column 13")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("interval: 1m\npools: [\n  {name: a\n", 4, ["malformed YAML"]),
        ("interval: 1m\nmetrics:\n  kind: replay\n trace: x\n", 4, ["malformed YAML"]),
        ('interval: 1m\nstate_dir: "unclosed\n', 3, ["malformed YAML"]),
        ("interval: 1m\n\tpools: []\n", 2, ["malformed YAML", "column"]),
        ("---\na: 1\n---\nb: 2\n", 3, ["malformed YAML", "single document"]),
        ("interval: 1m\npools:\n  - name: a\x07\n", 3, ["'\\x07' is not allowed"]),
    ],
)
def test_malformed_yaml_names_the_line(
    tmp_path: Path, text: str, line: int, words: list[str]
) -> None:
    path = write(tmp_path, text)
    assert_reported(config_error(path), path, line, "", *words)


@pytest.mark.parametrize(("text", "got"), [("", "an empty file"), ("- a\n- b\n", "list")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    assert_reported(config_error(path), path, 1, "", "expected a mapping", got)


# ---- values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "anchor", "field", "words"),
    [
        # wrong types
        (
            "max_nodes: 60",
            "max_nodes: many",
            "max_nodes: many",
            "pools[0].max_nodes",
            ["valid integer", "'many'"],
        ),
        (
            "initial_nodes: 2",
            "initial_nodes: [2]",
            "initial_nodes",
            "pools[0].backend.initial_nodes",
            ["valid integer"],
        ),
        (
            "per_node_rps: 40",
            "per_node_rps: fast",
            "per_node_rps: fast",
            "pools[0].capacity.per_node_rps",
            ["valid number"],
        ),
        # out of range
        (
            "per_node_rps: 40",
            "per_node_rps: -3",
            "per_node_rps: -3",
            "pools[0].capacity.per_node_rps",
            ["greater than 0", "-3"],
        ),
        (
            "min_nodes: 50",
            "min_nodes: -1",
            "min_nodes: -1",
            "pools[0].schedules[0].min_nodes",
            ["greater than or equal to 0"],
        ),
        # unknown keys, top level and nested in a pool
        (
            "interval: 1m",
            "interval: 1m\nintervall: 2m",
            "intervall",
            "intervall",
            ["unknown key 'intervall'", "expected one of:", "interval", "pools"],
        ),
        (
            "    max_nodes: 60",
            "    max_nodes: 60\n    max_node: 3",
            "max_node: 3",
            "pools[0].max_node",
            ["unknown key 'max_node'", "max_nodes", "schedules"],
        ),
        (
            "per_node_rps: 40",
            "per_node_rpm: 40",
            "per_node_rpm",
            "pools[0].capacity.per_node_rpm",
            ["unknown key", "per_node_rps, profile"],
        ),
        (
            "initial_nodes: 2",
            "initial_nodes: 2\n      colour: red",
            "colour",
            "pools[0].backend.colour",
            ["unknown key 'colour'", "kind, initial_nodes, boot_delay"],
        ),
        (
            "lead_time: 10m",
            "lead_time: 10m\n        floor: 3",
            "floor: 3",
            "pools[0].schedules[0].floor",
            ["unknown key 'floor'", "lead_time"],
        ),
        # bad duration, time zone, day, backend kind
        (
            "horizon: 15m",
            "horizon: soon",
            "horizon: soon",
            "pools[0].horizon",
            ["expected a duration", "'soon'"],
        ),
        (
            "window: 2h",
            "window: 2 hours",
            "window: 2 hours",
            "pools[0].demand.window",
            ["expected a duration"],
        ),
        (
            "timezone: Asia/Kolkata",
            "timezone: Asia/Bombay_",
            "timezone",
            "pools[0].schedules[0].timezone",
            ["unknown IANA time zone", "Asia/Bombay_"],
        ),
        (  # UTC-05:00 all year: New York's 09:00 opened at 10:00 local all summer
            "timezone: Asia/Kolkata",
            "timezone: EST",
            "timezone",
            "pools[0].schedules[0].timezone",
            ["'EST' is a fixed offset with no summer time", "America/New_York"],
        ),
        (  # a folder of the zone database: ZoneInfo raises IsADirectoryError (fuzz-found)
            "timezone: Asia/Kolkata",
            "timezone: Asia",
            "timezone",
            "pools[0].schedules[0].timezone",
            ["unknown IANA time zone", "'Asia'"],
        ),
        (
            "days: mon-sat",
            "days: [mon, funday]",
            "days",
            "pools[0].schedules[0].days",
            ["unknown day 'funday'", "mon, tue"],
        ),
        (  # once read as Monday alone, by its first three letters
            "days: mon-sat",
            "days: mon..fri",
            "days",
            "pools[0].schedules[0].days",
            ["unknown day 'mon..fri'", "a range: mon-fri"],
        ),
        ('start: "09:00"', 'start: "25:00"', "start:", "pools[0].schedules[0].start", ["time"]),
        (
            "kind: simulated",
            "kind: openstack",
            "kind: openstack",
            "pools[0].backend.kind",
            ["unknown kind 'openstack'", "'nomad_job', 'nomad_cluster', 'kubernetes'"],
        ),
        # 800 workers of ~165 MB each, a typo for 8, started once there were 32 pools
        (
            "interval: 1m",
            "interval: 1m\nfit_workers: 800",
            "fit_workers:",
            "fit_workers",
            ["less than or equal to 64 (got 800)"],
        ),
        # checks across keys point at the key they name
        (
            "horizon: 15m",
            "horizon: 5m",
            "horizon: 5m",
            "pools[0].horizon",
            ["horizon must be at least boot_time"],
        ),
        (
            "    max_nodes: 60",
            "    max_nodes: 60\n    min_nodes: 70",
            "    max_nodes: 60",
            "pools[0].max_nodes",
            ["max_nodes must be at least min_nodes"],
        ),
    ],
)
def test_bad_value_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, anchor: str, field: str, words: list[str]
) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    path = write(tmp_path, text)
    error = config_error(path)
    assert_reported(error, path, line_of(text, anchor), field, *words)


@pytest.mark.parametrize(
    ("step", "horizon", "loads"),
    [("1m", "24h", True), ("1m", "1441m", False), ("5m", "5d", True), ("10s", "4h1m", False)],
)
def test_a_horizon_is_at_most_a_day_of_minutes_in_steps(
    tmp_path: Path, step: str, horizon: str, loads: bool
) -> None:
    """The forecast's cost is in its steps (demand.step): 36500d was a MemoryError a tick."""
    text = BASE.replace("      window: 2h", f"      window: 14d\n      step: {step}", 1)
    text = text.replace("horizon: 15m", f"horizon: {horizon}", 1)
    path = write(tmp_path, text)
    if loads:
        assert load_config(path).pools[0].horizon > load_config(path).pools[0].boot_time
        return
    error = config_error(path)
    assert_reported(
        error, path, line_of(text, "horizon:"), "pools[0].horizon", "more than the 1,440"
    )


def test_missing_required_field_points_at_the_parent_mapping(tmp_path: Path) -> None:
    text = BASE.replace("    max_nodes: 60\n", "", 1)
    path = write(tmp_path, text)
    assert_reported(
        config_error(path),
        path,
        line_of(text, "- name: gpu-ocr"),
        "pools[0].max_nodes",
        "missing required key 'max_nodes'",
    )
    text = BASE.replace("      query: sum(rate(requests_total[1m]))\n", "", 1)
    path = write(tmp_path, text)
    assert_reported(
        config_error(path),
        path,
        line_of(text, "    demand:"),
        "pools[0].demand.query",
        "missing required key 'query'",
    )


def test_missing_field_of_a_backend_kind(tmp_path: Path) -> None:
    text = BASE.replace("backend: {kind: simulated}", "backend: {kind: nomad_job, group: g}")
    path = write(tmp_path, text)
    assert_reported(
        config_error(path),
        path,
        line_of(text, "nomad_job"),
        "pools[1].backend.job",
        "missing required key 'job'",
    )


@pytest.mark.parametrize(
    ("old", "new", "field", "kinds"),
    [
        ("kind: replay", "url: http://127.0.0.1:9090", "metrics.kind", "'prometheus', 'replay'"),
        ("backend: {kind: simulated}", "backend: {}", "pools[1].backend.kind", "'simulated'"),
        ("max_nodes: 8", "max_nodes: 8\n    signals: [{name: s, query: q}]",
         "pools[1].signals[0].kind", "'queue_depth', 'gpu_utilization'"),
    ],
)  # fmt: skip
def test_a_missing_kind_names_the_kinds_there_are(
    tmp_path: Path, old: str, new: str, field: str, kinds: str
) -> None:
    """It said "kind is required; expected one of: " and stopped there."""
    text = BASE.replace(old, new)
    path = write(tmp_path, text)
    (problem,) = [p for p in config_error(path).problems if p.field == field]
    assert problem.line is not None
    assert problem.message.startswith("kind is required; expected one of: '")
    assert kinds in problem.message


def test_duplicate_pool_names_point_at_the_second(tmp_path: Path) -> None:
    text = BASE.replace("- name: face-match", "- name: gpu-ocr")
    path = write(tmp_path, text)
    error = config_error(path)
    problem = assert_reported(
        error, path, line_of(text, "- name: gpu-ocr", 2), "pools[1].name", "'gpu-ocr'", "unique"
    )
    assert f"line {line_of(text, '- name: gpu-ocr')}" in problem.message
    assert len(error.problems) == 1  # not also pydantic's whole-file complaint


def test_duplicate_keys_are_errors_not_last_one_wins(tmp_path: Path) -> None:
    text = BASE.replace("    horizon: 15m\n", "    horizon: 15m\n    horizon: 1h\n", 1)
    path = write(tmp_path, text)
    problem = assert_reported(
        config_error(path),
        path,
        line_of(text, "horizon: 1h"),
        "pools[0].horizon",
        "duplicate key 'horizon'",
    )
    assert f"line {line_of(text, 'horizon: 15m')}" in problem.message


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = (
        BASE.replace("interval: 1m", "interval: often")
        .replace("max_nodes: 8", "max_nodes: 8\n    max_nodes: 9")
        .replace("per_node_rps: 40", "per_node_rps: 0")
    )
    error = config_error(write(tmp_path, text))
    fields = [p.field for p in error.problems]
    assert fields == ["interval", "pools[0].capacity.per_node_rps", "pools[1].max_nodes"]
    lines = [p.line for p in error.problems]
    assert lines == sorted(lines)


@settings(
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cut=st.integers(0, len(BASE) - 1), length=st.integers(1, 12), junk=st.text(max_size=3))
def test_any_damage_gives_a_config_error_never_a_traceback(
    tmp_path: Path, cut: int, length: int, junk: str
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(BASE[:cut] + junk + BASE[cut + length :], encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems
        assert all(p.file == path for p in exc.problems)


# ---- overrides file ---------------------------------------------------------------------


def test_overrides_missing_file_means_none(tmp_path: Path) -> None:
    assert load_overrides(tmp_path / "overrides.yaml").overrides == {}
    assert load_overrides(write(tmp_path, "", "empty.yaml")).overrides == {}
    assert load_overrides(write(tmp_path, "overrides:\n", "null.yaml")).overrides == {}


def test_overrides_load(tmp_path: Path) -> None:
    overrides = load_overrides(write(tmp_path, OVERRIDES, "overrides.yaml"))
    assert overrides.overrides["gpu-ocr"].nodes == 12
    assert overrides.overrides["gpu-ocr"].expires.utcoffset().total_seconds() == 5.5 * 3600


def test_unreadable_overrides_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.mkdir()
    with pytest.raises(ConfigError) as caught:
        load_overrides(path)
    assert_reported(caught.value, path, None, "", "cannot read")


def test_malformed_overrides_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "overrides:\n  gpu-ocr: [nodes: 3\n", "overrides.yaml")
    with pytest.raises(ConfigError) as caught:
        load_overrides(path)
    assert_reported(caught.value, path, 3, "", "malformed YAML")


@pytest.mark.parametrize(
    ("old", "new", "anchor", "field", "words"),
    [
        (
            "expires: 2026-11-27T18:00:00+05:30",
            "expires: 2026-11-27T18:00:00",
            "expires",
            "overrides.gpu-ocr.expires",
            ["UTC offset"],
        ),
        (
            "expires: 2026-11-27T18:00:00+05:30",
            "expires: next friday",
            "expires",
            "overrides.gpu-ocr.expires",
            ["datetime"],
        ),
        (
            'reason: "Black Friday campaign"',
            'reason: "  "',
            "reason",
            "overrides.gpu-ocr.reason",
            ["reason must say why"],
        ),
        (
            "nodes: 12",
            "nodes: 12\n    min_nodes: 3",
            "nodes: 12",
            "overrides.gpu-ocr.nodes",
            ["cannot be combined"],
        ),
        (
            "nodes: 12",
            "min_nodes: 5\n    max_nodes: 2",
            "min_nodes",
            "overrides.gpu-ocr.min_nodes",
            ["must not exceed"],
        ),
        ("nodes: 12", "nodes: -2", "nodes", "overrides.gpu-ocr.nodes", ["greater than or equal"]),
        (
            "set_by: alice",
            "set_by: alice\n    until: tomorrow",
            "until",
            "overrides.gpu-ocr.until",
            ["unknown key 'until'", "nodes, min_nodes, max_nodes, starts, expires, reason, set_by"],
        ),
        (
            "nodes: 12",
            "nodes: 12\n    nodes: 13",
            "nodes: 13",
            "overrides.gpu-ocr.nodes",
            ["duplicate key"],
        ),
    ],
)
def test_bad_override_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, anchor: str, field: str, words: list[str]
) -> None:
    text = OVERRIDES.replace(old, new)
    path = write(tmp_path, text, "overrides.yaml")
    with pytest.raises(ConfigError) as caught:
        load_overrides(path)
    assert_reported(caught.value, path, line_of(text, anchor), field, *words)


def test_missing_expiry_points_at_the_pool_entry(tmp_path: Path) -> None:
    text = OVERRIDES.replace("    expires: 2026-11-27T18:00:00+05:30\n", "")
    path = write(tmp_path, text, "overrides.yaml")
    with pytest.raises(ConfigError) as caught:
        load_overrides(path)
    assert_reported(caught.value, path, 2, "overrides.gpu-ocr.expires", "missing required key")


def load_checked(config_path: Path) -> tuple[Config, OverridesFile]:
    """Config and overrides, or one ConfigError listing every problem (as `run` needs them)."""
    config, problems = validate_files(config_path)
    if problems or config is None:
        raise ConfigError(problems)
    if config.overrides_file is None:
        return config, OverridesFile()
    overrides, _ = read_overrides_document(config.overrides_file)
    return config, overrides


# ---- validate: across files ---------------------------------------------------------------


def test_validate_clean(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    write(tmp_path, OVERRIDES, "overrides.yaml")
    config, problems = validate_files(path)
    assert problems == []
    assert config is not None
    config, overrides = load_checked(path)
    assert list(overrides.overrides) == ["gpu-ocr"]


def test_validate_missing_or_empty_overrides_file_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    assert validate_files(path)[1] == []
    write(tmp_path, "# nothing yet\n", "overrides.yaml")
    assert validate_files(path)[1] == []
    assert load_checked(path)[1].overrides == {}


def test_validate_override_for_unknown_pool(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    text = (
        OVERRIDES + "  gpu-ocrr:\n    nodes: 1\n    expires: 2030-01-01T00:00:00Z\n    reason: x\n"
    )
    overrides_path = write(tmp_path, text, "overrides.yaml")
    config, problems = validate_files(path)
    assert config is not None
    error = ConfigError(problems)
    assert_reported(
        error,
        overrides_path,
        line_of(text, "gpu-ocrr:"),
        "overrides.gpu-ocrr",
        "unknown pool 'gpu-ocrr'",
        "gpu-ocr, face-match",
    )
    with pytest.raises(ConfigError):
        load_checked(path)


def test_validate_passes_an_expired_override_for_a_pool_since_removed(tmp_path: Path) -> None:
    """An override left in the file after it expired does nothing, whatever pool it names.
    Refused once its pool left the config, it failed `validate`, and with it every
    `systemctl reload` (ExecReload validates first): raising max_nodes at 3 a.m., as
    AutoscalerPoolAtMaxNodes asks, did not apply. An active one for no pool is refused."""
    path = write(tmp_path, BASE)
    gone = "  retired:\n    nodes: 1\n    expires: 2020-01-01T00:00:00Z\n    reason: x\n"
    write(tmp_path, OVERRIDES + gone, "overrides.yaml")
    assert validate_files(path)[1] == []
    write(tmp_path, OVERRIDES + gone.replace("2020", "2099"), "overrides.yaml")
    (problem,) = validate_files(path)[1]
    assert "unknown pool 'retired'" in str(problem)


def test_validate_unreadable_and_naive_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    (tmp_path / "overrides.yaml").mkdir()
    _, problems = validate_files(path)
    assert_reported(ConfigError(problems), tmp_path / "overrides.yaml", None, "", "cannot read")
    (tmp_path / "overrides.yaml").rmdir()
    text = OVERRIDES.replace("+05:30", "")
    overrides_path = write(tmp_path, text, "overrides.yaml")
    _, problems = validate_files(path)
    assert_reported(
        ConfigError(problems),
        overrides_path,
        line_of(text, "expires"),
        "overrides.gpu-ocr.expires",
        "UTC offset",
    )


def test_validate_bad_config_returns_no_config(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("max_nodes: 8", "max_nodes: eight"))
    config, problems = validate_files(path)
    assert config is None
    assert [p.field for p in problems] == ["pools[1].max_nodes"]


def test_validate_capacity_profiles(tmp_path: Path) -> None:
    text = BASE.replace("per_node_rps: 40", "profile: profiles/ocr.yaml")
    path = write(tmp_path, text)
    _, problems = validate_files(path)
    assert_reported(
        ConfigError(problems),
        path,
        line_of(text, "profile:"),
        "pools[0].capacity.profile",
        "not found",
    )
    (tmp_path / "profiles").mkdir()
    profile = write(tmp_path, "device: cpu\nper_node_rps: 0\n", "profiles/ocr.yaml")
    _, problems = validate_files(path)
    assert_reported(ConfigError(problems), profile, 2, "per_node_rps", "positive number")
    write(tmp_path, "device: cpu\nper_node_rps: 31.5\n", "profiles/ocr.yaml")
    config, problems = validate_files(path)
    assert problems == []
    assert config is not None
    assert per_node_rps_of(config.pools[0].capacity) == 31.5


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("device: cpu\n", 1, "per_node_rps", ["missing"]),
        ("per_node_rps: fast\n", 1, "per_node_rps", ["positive number", "'fast'"]),
        ("per_node_rps: .nan\n", 1, "per_node_rps", ["positive number"]),
        ("per_node_rps: true\n", 1, "per_node_rps", ["positive number"]),
        ("- 1\n", 1, "", ["expected a mapping"]),
        ("per_node_rps: 3\nper_node_rps: 4\n", 2, "per_node_rps", ["duplicate key"]),
        ("per_node_rps: [3\n", 2, "", ["malformed YAML"]),
    ],
)
def test_read_per_node_rps_errors(
    tmp_path: Path, text: str, line: int, field: str, words: list[str]
) -> None:
    path = write(tmp_path, text, "profile.yaml")
    with pytest.raises(ConfigError) as caught:
        read_per_node_rps(path)
    assert_reported(caught.value, path, line, field, *words)


def test_per_node_rps_of_a_number() -> None:
    assert per_node_rps_of(Capacity(per_node_rps=7.0)) == 7.0


ALIAS_BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
    for prev, name in zip("abcdef", "bcdefg", strict=True)
)


@pytest.mark.parametrize("text", ["a: &x [*x]\n", ALIAS_BOMB])
def test_self_repeating_aliases_are_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    error = config_error(path)
    assert len(error.problems) == 1
    assert error.problems[0].line is not None
    assert "too many values" in str(error)


def test_scale_up_limits_load_and_a_zero_step_is_an_error(tmp_path: Path) -> None:
    text = BASE.replace(
        "    max_nodes: 8\n", "    max_nodes: 8\n    scale_up: {max_step: 4, max_percent: 25}\n"
    )
    config = load_config(write(tmp_path, text))
    assert (
        config.pool("face-match").scale_up.max_step,
        config.pool("face-match").scale_up.max_percent,
    ) == (4, 25.0)
    assert config.pool("gpu-ocr").scale_up.max_step is None
    bad = BASE.replace("    max_nodes: 8\n", "    max_nodes: 8\n    scale_up:\n      max_step: 0\n")
    path = write(tmp_path, bad)
    assert_reported(
        config_error(path), path, line_of(bad, "max_step: 0"), "pools[1].scale_up.max_step"
    )


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("prometheus.internal:9090", ["must start with https://"]),
        ("htps://prometheus.internal", ["must start with https://"]),
        ("https://", ["has no host"]),
        ("http://127.0.0.1:99999", ["not a URL", "Port out of range"]),
    ],
)
def test_an_api_address_that_is_not_an_http_url_is_a_located_error(
    tmp_path: Path, url: str, words: list[str]
) -> None:
    """`requests` refuses it at every query and fleet read, never at the start: every tick
    failed while `validate` said ok."""
    metrics = f"metrics:\n  kind: prometheus\n  url: {url}\n"
    text = BASE.replace("metrics:\n  kind: replay\n  trace: trace.csv\n", metrics)
    text = text.replace(
        "backend: {kind: simulated}",
        f"backend: {{kind: nomad_job, job: fm, group: gpu, address: '{url}'}}",
    )
    path = write(tmp_path, text)
    error = config_error(path)
    assert_reported(error, path, line_of(text, "url:"), "metrics.url", *words)
    assert_reported(error, path, line_of(text, "address:"), "pools[1].backend.address", *words)


@pytest.mark.parametrize(
    ("queries", "blank"),
    [
        ("served_query: s, nodes_query: n, utilization_query: ''", "utilization_query"),
        ("served_query: ' ', nodes_query: n", "served_query"),
        ("per_node_query: ''", "per_node_query"),
    ],
)
def test_a_blank_capacity_check_query_is_a_located_error(
    tmp_path: Path, queries: str, blank: str
) -> None:
    """`utilization_query: ${UTIL_QUERY}` with UTIL_QUERY set empty was taken for no query
    (served rates then only a floor: a slower node never drifts), and a blank served or
    per-node query was sent to Prometheus at every check, as a blank demand query is not."""
    text = BASE.replace("metrics:\n  kind: replay\n  trace: trace.csv\n", "")
    text = text.replace("max_nodes: 8", f"max_nodes: 8\n    capacity_check: {{{queries}}}")
    path = write(tmp_path, text)
    field = f"pools[1].capacity_check.{blank}"
    assert_reported(config_error(path), path, line_of(text, "capacity_check:"), field, "is empty")


@pytest.mark.parametrize(
    ("backend", "field"),
    [
        ("{kind: nomad_job, job: '', group: gpu}", "backend.job"),
        ("{kind: nomad_job, job: fm, group: ' '}", "backend.group"),
        ("{kind: nomad_cluster, asg: ''}", "backend.asg"),
        ("{kind: kubernetes, name: ''}", "backend.name"),
        ("{kind: aws_asg, group: ''}", "backend.group"),
    ],
)
def test_a_blank_fleet_name_is_a_located_error(tmp_path: Path, backend: str, field: str) -> None:
    """`job: ${JOB}` with JOB set empty was accepted: every tick asked for job '' and was
    answered "not found", while `validate` said ok."""
    text = BASE.replace("backend: {kind: simulated}", f"backend: {backend}")
    text += 'slack: {channel: ""}\n'
    path = write(tmp_path, text)
    error = config_error(path)
    assert_reported(error, path, line_of(text, "backend: {kind: "), f"pools[1].{field}", "is empty")
    assert_reported(error, path, line_of(text, "slack:"), "slack.channel", "is empty")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("max_nodes: 60", "max_nodes: 99999999999999999999999", "pools[0].max_nodes"),
        ("min_nodes: 50", "min_nodes: 10000001", "pools[0].schedules[0].min_nodes"),
        ("initial_nodes: 2", "initial_nodes: 1000000000", "pools[0].backend.initial_nodes"),
    ],
)
def test_a_node_count_past_any_fleet_is_a_located_error(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    """A count with digits too many was accepted: the tick asked the fleet for 10^23 nodes
    (a simulated one never finished the tick; a real API refuses the number each tick)."""
    text = BASE.replace(old, new, 1)
    path = write(tmp_path, text)
    error = config_error(path)
    assert_reported(error, path, line_of(text, new), field, "less than or equal to 1000000")


def test_an_override_past_any_fleet_is_a_located_error(tmp_path: Path) -> None:
    text = OVERRIDES.replace("nodes: 12", "nodes: 99999999999999999999999")
    path = write(tmp_path, text, "overrides.yaml")
    with pytest.raises(ConfigError) as caught:
        load_overrides(path)
    line = line_of(text, "nodes:")
    assert_reported(caught.value, path, line, "overrides.gpu-ocr.nodes", "1000000")


@pytest.mark.parametrize(
    ("before", "after", "field"),
    [
        ("overrides_file: overrides.yaml", 'overrides_file: "over\\0rides.yaml"', "overrides_file"),
        ("state_dir: state", 'state_dir: "st\\0ate"', "state_dir"),
        ("query: up", 'query: "u\\0p"', "pools[1].demand.query"),
    ],
)
def test_a_nul_character_in_a_value_is_a_located_error_not_a_traceback(
    tmp_path: Path, before: str, after: str, field: str
) -> None:
    """`"\\0"` in double quotes is a NUL character, which no path, name or query holds: a
    path with one was a ValueError traceback ('embedded null byte') from validate and run
    (the overrides file) or from status (the state folder), naming no file or line."""
    text = BASE.replace(before, after)
    path = write(tmp_path, text)
    _, problems = validate_files(path)
    assert_reported(ConfigError(problems), path, line_of(text, after), field, "NUL character")


def test_a_pool_name_too_long_for_its_state_files_is_a_located_error(tmp_path: Path) -> None:
    """A pool's name names its files in state_dir (`<pool>.backend.json`, written through
    `.<file>.<random>.tmp`): at 229 characters the system refused the name (255 bytes a
    file name), so a Nomad cluster pool could write no scale-in record and never scaled
    in, while `validate` said ok. 200 still loads."""
    longest = "ocr-" + "x" * 196
    assert load_config(write(tmp_path, BASE.replace("gpu-ocr", longest))).pools[0].name == longest
    text = BASE.replace("name: gpu-ocr", "name: ocr-" + "x" * 225)
    path = write(tmp_path, text)
    error = config_error(path)
    assert_reported(error, path, line_of(text, "name: ocr-"), "pools[0].name", "229 characters")


@pytest.mark.parametrize(
    ("election", "words"),
    [
        ("{kind: nomad, name: gpu.autoscaler-leader}", "no Nomad variable path"),
        ("{kind: nomad, name: nomad/gpu-leader}", "reserved by Nomad"),
        ("{kind: kubernetes, name: GPU_Autoscaler}", "no Kubernetes object name"),
        ("{kind: kubernetes, name: gpu/leader}", "no Kubernetes object name"),
    ],
)
def test_a_leader_lock_name_its_store_refuses_is_a_located_error(
    tmp_path: Path, election: str, words: str
) -> None:
    """The lock's name was read by one pattern for both stores: a '.' Nomad refuses in a
    variable path (its validatePath: 'invalid path', HTTP 500 at each acquire), a path
    under its reserved nomad/, an uppercase or '_' Lease name the API server refuses
    (422): each passed validate and run, the lock failed at every tick and no daemon
    ever led, so no fleet was scaled. Names each store takes still load."""
    text = BASE + f"leader_election: {election}\n"
    path = write(tmp_path, text)
    assert_reported(
        config_error(path), path, line_of(text, "leader_election:"), "leader_election.name", words
    )
    for good in (
        "{kind: nomad, name: gpu-autoscaler/leader, ttl: 2m}",
        "{kind: kubernetes, name: a.b-c, ttl: 2m}",
    ):
        load_config(write(tmp_path, BASE + f"leader_election: {good}\n"))


KUBERNETES_GOOD = "{kind: kubernetes, name: ocr.v2-gpu, namespace: ml-gpu}"
NOMAD_GOOD = "{kind: nomad_job, job: batch/dispatch-1, group: gpu, namespace: ml-gpu}"


@pytest.mark.parametrize(
    ("backend", "field", "words", "good"),
    [
        (
            "{kind: kubernetes, name: Web_Workers}",
            "backend.name",
            "no Kubernetes object name",
            KUBERNETES_GOOD,
        ),
        (
            "{kind: kubernetes, name: ocr/gpu}",
            "backend.name",
            "no Kubernetes object name",
            KUBERNETES_GOOD,
        ),
        (
            "{kind: kubernetes, name: ocr, namespace: GPU}",
            "backend.namespace",
            "namespace",
            KUBERNETES_GOOD,
        ),
        (
            "{kind: kubernetes, name: ocr, namespace: ml.gpu}",
            "backend.namespace",
            "namespace",
            KUBERNETES_GOOD,
        ),
        (
            "{kind: nomad_job, job: web workers, group: gpu}",
            "backend.job",
            "contains a space",
            NOMAD_GOOD,
        ),
        (
            "{kind: nomad_job, job: fm, group: gpu, namespace: ml_gpu}",
            "backend.namespace",
            "'_'",
            NOMAD_GOOD,
        ),
        (
            "{kind: nomad_cluster, asg: fm, namespace: ml gpu}",
            "backend.namespace",
            "namespace",
            NOMAD_GOOD,
        ),
    ],
)
def test_a_fleet_name_its_server_cannot_hold_is_a_located_error(
    tmp_path: Path, backend: str, field: str, words: str, good: str
) -> None:
    """A Kubernetes workload or namespace the API server can never hold (uppercase, '_',
    '/'; a '.' in a namespace), a Nomad job ID with a space (Nomad's Job.Validate refuses
    one) or a namespace outside Nomad's validNamespaceName ([a-zA-Z0-9-]) passed validate
    and run: every tick asked for it and was answered 'not found', and the fleet was never
    scaled. Names the server can hold still load (a Nomad job ID with a '/': a dispatched
    job's)."""
    text = BASE.replace("backend: {kind: simulated}", f"backend: {backend}")
    path = write(tmp_path, text)
    line = line_of(text, "backend: {kind: ")
    assert_reported(config_error(path), path, line, f"pools[1].{field}", words)
    load_config(write(tmp_path, BASE.replace("backend: {kind: simulated}", f"backend: {good}")))


@pytest.mark.parametrize(
    ("store", "namespace"), [("kubernetes", "Ops_Team"), ("nomad", "ops_team")]
)
def test_a_leader_lock_namespace_its_store_cannot_hold_is_a_located_error(
    tmp_path: Path, store: str, namespace: str
) -> None:
    """A lock in a namespace its store can never hold: the lock could never be taken."""
    text = BASE + f"leader_election: {{kind: {store}, namespace: {namespace}, ttl: 2m}}\n"
    path = write(tmp_path, text)
    line = line_of(text, "leader_election:")
    assert_reported(config_error(path), path, line, "leader_election.namespace", repr(namespace))
