"""`autoscaler backtest` end to end on a short cut of the bundled NASA trace."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from autoscaler.cli.backtest import backtest_command
from tests.support import full_disk_under
from tests.traces import NASA


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("backtest")(backtest_command)

    @app.command()
    def other() -> None:  # a second command keeps typer's subcommand layout
        """Unused."""

    return app


CONFIG = """\
interval: 1m
state_dir: state
metrics:
  kind: replay
  trace: {trace}
pools:
  - name: ocr
    backend: {{kind: simulated}}
    demand: {{query: up}}
    capacity: {{per_node_rps: 0.04}}
    max_nodes: 500
"""
"""A pool of the daemon's config whose metrics are the cut trace replayed."""


def _cut(tmp_path: Path, minutes: int) -> Path:
    with gzip.open(NASA, "rt") as trace:
        lines = trace.read().splitlines()[: minutes + 1]
    path = tmp_path / "nasa_cut.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_backtest_writes_json_decisions_and_plot(tmp_path: Path) -> None:
    trace = _cut(tmp_path, 8 * 60)
    decisions = tmp_path / "out" / "decisions.csv"
    plot = tmp_path / "backtest.png"
    result = CliRunner().invoke(
        _app(),
        [
            "backtest",
            "--trace",
            str(trace),
            "--per-node-rps",
            "0.04",
            "--warmup",
            "6h",
            "--json",
            "--decisions-out",
            str(decisions),
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    names = [p["name"] for p in document["policies"]]
    assert names == ["policy", "oracle", "static", "hpa", "linear-20m", "seasonal-naive"]
    oracle = document["policies"][1]
    assert oracle["ratio_to_oracle"] == 1.0 and oracle["late_share"] == 0.0
    for policy in document["policies"]:
        assert {"node_hours", "late_share", "late_minutes", "scale_actions"} <= policy.keys()
    (day,) = document["policy_by_day"]  # 2 scored hours: one (short) day
    assert day["start"] == document["scored_from"] and day["minutes"] == 2 * 60
    late_share = document["policies"][0]["late_share"]
    assert day["late_requests"] == pytest.approx(late_share * day["requests"])
    rows = list(csv.reader(decisions.open()))
    assert rows[0] == ["timestamp", "desired", "ready", "pending"]
    assert len(rows) - 1 == 8 * 60 - (6 * 60 - 60)  # every tick from an hour before scoring
    assert all(int(r[1]) == int(r[2]) + int(r[3]) for r in rows[1:])
    assert decisions.stat().st_mode & 0o777 == 0o644  # a report to share, no secret in it
    assert plot.stat().st_size > 10_000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backtest_table_names_the_best_baseline(tmp_path: Path) -> None:
    trace = _cut(tmp_path, 5 * 60)
    arguments = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "3h"]
    result = CliRunner().invoke(_app(), arguments)
    assert result.exit_code == 0, result.output
    assert "oracle" in result.stdout and "seasonal-naive" in result.stdout
    assert "best baseline" in result.stdout
    one_job = CliRunner().invoke(_app(), [*arguments, "--jobs", "1"])
    assert one_job.exit_code == 0, one_job.output
    assert _table(one_job.stdout) == _table(result.stdout)  # the same report on one process
    none = CliRunner().invoke(
        _app(), ["backtest", "--trace", str(trace), "--per-node-rps", "1", "--jobs", "0"]
    )
    assert none.exit_code == 2 and "--jobs: jobs must be at least 1" in none.output


def test_a_longer_burn_in_runs_the_policy_from_earlier_and_says_so(tmp_path: Path) -> None:
    """`--burn-in 5h` with a 6-hour warmup: a tick a minute from 5 hours before scoring,
    the report's start there, the JSON's settings and the table's title saying so (its
    figures are not what a new pool gets); a burn-in that is no duration is refused."""
    trace = _cut(tmp_path, 8 * 60)
    decisions = tmp_path / "decisions.csv"
    common = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "6h"]
    result = CliRunner().invoke(
        _app(), [*common, "--burn-in", "5h", "--json", "--decisions-out", str(decisions)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["settings"]["burn_in_s"] == 5 * 3600
    assert document["start"] == "1995-07-01T05:00:00+00:00"
    assert len(list(csv.reader(decisions.open()))) - 1 == 8 * 60 - 60
    table = CliRunner().invoke(_app(), [*common, "--burn-in", "5h", "--no-tune"])
    assert table.exit_code == 0, table.output
    title = " ".join(table.stdout.split())
    assert "policies ran 5h00m before scoring (--burn-in: a settled loop" in title
    default = CliRunner().invoke(_app(), [*common, "--no-tune"])
    assert "--burn-in" not in default.stdout
    for wrong_value, why in (("soon", "expected a duration"), ("90s", "whole minutes")):
        wrong = CliRunner().invoke(_app(), [*common, "--burn-in", wrong_value])
        assert wrong.exit_code == 2 and why in wrong.output, wrong.output
    wrong = CliRunner().invoke(_app(), [*common, "--burn-in", "soon"])
    assert "--burn-in" in wrong.output


def _table(output: str) -> list[str]:
    """The report's lines without the run's duration."""
    return [line.split("; ran in")[0] for line in output.splitlines()]


def test_backtest_refuses_both_or_neither_capacity(tmp_path: Path) -> None:
    trace = _cut(tmp_path, 60)
    neither = CliRunner().invoke(_app(), ["backtest", "--trace", str(trace)])
    assert neither.exit_code == 2
    too_long = CliRunner().invoke(
        _app(), ["backtest", "--trace", str(trace), "--per-node-rps", "1", "--warmup", "7d"]
    )
    assert too_long.exit_code == 2
    assert "nothing to score" in too_long.output


def test_a_trace_that_is_a_folder_or_not_its_compression_is_refused(tmp_path: Path) -> None:
    """Exit 2 and the path, never a traceback."""
    folder = tmp_path / "trace.csv"
    folder.mkdir()
    packed = tmp_path / "plain.csv.gz"
    packed.write_bytes(_cut(tmp_path, 60).read_bytes())  # named .gz, not compressed
    cut = tmp_path / "cut.csv.gz"  # a download cut short: it was typer's "Aborted.", exit 1
    cut.write_bytes(NASA.read_bytes()[:20_000])
    for path in (folder, cut, packed):
        result = CliRunner(env={"COLUMNS": "300"}).invoke(
            _app(), ["backtest", "--trace", str(path), "--per-node-rps", "1", "--warmup", "1h"]
        )
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert path.name in result.output
    assert "Not a gzipped file" in result.output


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("--decisions-out", "a-folder"),
        ("--decisions-out", "a-file/decisions.csv"),
        ("--plot", "a-folder"),
        ("--plot", "a-file/backtest.png"),
        ("--plot", "backtest.txt"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, option: str, name: str
) -> None:
    """Found after the run, it was a traceback (IsADirectoryError, FileExistsError,
    matplotlib's ValueError for a format it has no writer for) and the report lost."""
    trace = _cut(tmp_path, 8 * 60)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    run = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "6h"]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), [*run, option, str(tmp_path / name)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{option}: {tmp_path / name}" in result.output
    assert "policy" not in result.output  # refused before the run, not after it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder", "nasa_cut.csv"]


def test_a_plot_on_a_full_disk_leaves_the_last_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """savefig straight to --plot left last run's picture cut short where the disk filled;
    the plot is now written whole or not at all, as the decisions CSV beside it is."""
    trace = _cut(tmp_path, 8 * 60)
    folder = tmp_path / "out"
    folder.mkdir()
    plot = folder / "backtest.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\nlast run's")
    full_disk_under(monkeypatch, folder)
    run = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "6h"]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), [*run, "--plot", str(plot)])
    assert result.exit_code == 2, result.output
    assert f"cannot write {plot}: No space left on device" in " ".join(result.output.split())
    assert plot.read_bytes() == b"\x89PNG\r\n\x1a\nlast run's"
    assert [p.name for p in folder.iterdir()] == [plot.name]  # no temporary file left


def test_a_plot_named_without_a_suffix_is_a_png_as_matplotlib_names_it(tmp_path: Path) -> None:
    """The files written are said by the names they were written under (the plot's with
    .png): a backtest wrote them without a word, `--plot plot` leaving plot.png."""
    trace = _cut(tmp_path, 8 * 60)
    run = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "6h"]
    outputs = ["--plot", str(tmp_path / "plot"), "--decisions-out", str(tmp_path / "d.csv")]
    result = CliRunner().invoke(_app(), [*run, "--no-tune", *outputs])
    assert result.exit_code == 0, result.output
    written = tmp_path / "plot.png"
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written.stat().st_mode & 0o777 == 0o644
    lines = result.output.splitlines()
    assert f"plot: {written}" in lines and f"decisions: {tmp_path / 'd.csv'}" in lines


def test_under_json_the_files_written_are_said_on_stderr_and_stdout_is_the_json(
    tmp_path: Path,
) -> None:
    trace = _cut(tmp_path, 8 * 60)
    run = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "6h"]
    plot = tmp_path / "plot.png"
    result = CliRunner().invoke(_app(), [*run, "--no-tune", "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policies"][0]["name"] == "policy"
    assert f"plot: {plot}" in result.stderr.splitlines()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--predictor-targets", "0.01,5"], "--predictor-targets: predictor target 5: params."),
        (["--predictor-targets", "0.01,abc"], "--predictor-targets: expected shares"),
        (["--service-target", "0"], "--service-target: params.service_target: Input should be"),
        (["--service-target", "2"], "--service-target: service target is a share"),
        (["--predictor", "arima"], "--predictor: kind: unknown predictor 'arima'; known: linear"),
        (["--margin", "wide"], "--margin: margin: Input should be 'band', 'loop' or 'widen'"),
        (["--policy", "cheap"], "--policy: policy: Input should be 'forecast', 'auto'"),
        (["--scale-up-max-percent", "inf"], "--scale-up-max-percent: scale-up max percent must"),
        (["--scale-up-max-percent", "nan"], "--scale-up-max-percent: scale-up max percent must"),
        (["--scale-up-max-step", "0"], "--scale-up-max-step: scale-up max step must be at least"),
        (["--jobs", "0"], "--jobs: jobs must be at least 1"),
        (["--tick", "90s"], "--tick: tick must be whole minutes, not 90s"),
        (["--boot-delay", "30s"], "--boot-delay: boot delay must be whole minutes, not 30s"),
        (["--burn-in", "90s"], "--burn-in: burn in must be whole minutes"),
        (["--boot-delay", "2d"], "--boot-delay: boot delay and a tick look 2,881 minutes ahead"),
    ],
)
def test_a_predictor_option_it_cannot_run_is_one_line_before_the_run(
    tmp_path: Path, options: list[str], said: str
) -> None:
    """They were pydantic's report ('1 validation error for PredictorConfig', a URL), the
    predictor's own only after the trace was read, and a second predictor target's only
    after the first target's whole run; and each named the setting in words, not the
    option to change ('tick must be whole minutes, not 0:01:30')."""
    trace = _cut(tmp_path, 8 * 60)
    run = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "6h"]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), [*run, *options])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"invalid option: {said}" in result.output
    assert "pydantic" not in result.output


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_per_node_rate_that_is_no_positive_number_names_the_option(
    tmp_path: Path, value: str
) -> None:
    """nan and inf passed the option's check (nan <= 0 is false) and were refused as
    'per-node capacity must be a positive number of req/s', naming no option; with
    --config too, where the rate replaces the pool's."""
    trace = _cut(tmp_path, 8 * 60)
    config = tmp_path / "autoscaler.yaml"
    config.write_text(CONFIG.format(trace=trace))
    for source in (["--trace", str(trace)], ["--config", str(config), "--pool", "ocr"]):
        run = ["backtest", *source, "--per-node-rps", value, "--warmup", "6h"]
        result = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), run)
        assert result.exit_code == 2, result.output
        assert f"--per-node-rps must be a positive number of req/s, not {float(value)}" in (
            result.output
        )


def test_with_config_an_option_the_replay_cannot_use_is_named(tmp_path: Path) -> None:
    """--service-target 2 with --config was 'cannot backtest pool ocr: service target is a
    share ...', naming neither the option nor a field of the pool's file."""
    trace = _cut(tmp_path, 8 * 60)
    config = tmp_path / "autoscaler.yaml"
    config.write_text(CONFIG.format(trace=trace))
    run = ["backtest", "--config", str(config), "--pool", "ocr", "--warmup", "6h"]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), [*run, "--service-target", "2"])
    assert result.exit_code == 2, result.output
    assert "invalid option: --service-target: service target is a share" in result.output


@pytest.mark.parametrize("option", ["--warmup", "--boot-delay", "--tick"])
def test_a_duration_option_is_named_and_a_bare_number_is_seconds(
    tmp_path: Path, option: str
) -> None:
    """README: durations on the command line are as in the config, a bare number seconds.
    --warmup, --boot-delay and --tick refused '600' as no duration, and a wrong one was
    'expected a duration ..., got '5x'' naming no option (with --config too)."""
    trace = _cut(tmp_path, 8 * 60)
    run = ["backtest", "--trace", str(trace), "--per-node-rps", "0.04", "--warmup", "6h"]
    wrong = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), [*run, option, "5x"])
    assert wrong.exit_code == 2, wrong.output
    assert f"invalid option: {option}: expected a duration" in wrong.output
    bare = {"--warmup": "21600", "--boot-delay": "300", "--tick": "120"}[option]
    result = CliRunner().invoke(_app(), [*run, option, bare, "--no-tune", "--json"])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["settings"]
    key = {"--warmup": "warmup_s", "--boot-delay": "boot_delay_s", "--tick": "tick_s"}[option]
    assert settings[key] == float(bare)
    if option == "--warmup":  # the pool's run reads it too, before its config
        config = tmp_path / "autoscaler.yaml"
        config.write_text("interval: 1m\n")
        pooled = CliRunner(env={"COLUMNS": "300"}).invoke(
            _app(), ["backtest", "--config", str(config), "--pool", "p", "--warmup", "5x"]
        )
        assert pooled.exit_code == 2, pooled.output
        assert "invalid option: --warmup: expected a duration" in pooled.output


def test_a_trace_shorter_than_the_warmup_names_the_option_and_its_span(
    tmp_path: Path,
) -> None:
    """A new user's first export is often a few days, under the default 7-day warmup: it
    was 'warmup 7 days, 0:00:00 leaves nothing to score in a trace of 600 minutes', naming
    no option to change."""
    trace = _cut(tmp_path, 10 * 60)
    result = CliRunner(env={"COLUMNS": "300"}).invoke(
        _app(), ["backtest", "--trace", str(trace), "--per-node-rps", "1"]
    )
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "--warmup 7d0h00m (history before scoring starts; 7d unless given)" in said
    assert "a trace of 10h00m (600 minutes): give a --warmup shorter than the trace" in said


def test_a_profile_is_read_as_a_pools_capacity_profile_is(tmp_path: Path) -> None:
    """`--profile` read gpu-bench's whole model, so a hand-written profile that `run` takes
    as a pool's capacity.profile (per_node_rps alone) was refused for twelve missing
    fields; one rule now, and its errors name the profile's line and field."""
    trace = _cut(tmp_path, 8 * 60)
    profile = tmp_path / "profile.yaml"
    profile.write_text("# measured by hand\nper_node_rps: 0.04\n")
    run = ["backtest", "--trace", str(trace), "--profile", str(profile), "--warmup", "6h"]
    result = CliRunner().invoke(_app(), [*run, "--no-tune", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["per_node_rps"] == 0.04
    profile.write_text("# measured by hand\nper_node_rps: -0.04\n")
    refused = CliRunner(env={"COLUMNS": "300"}).invoke(_app(), run)
    assert refused.exit_code == 2, refused.output
    said = " ".join(refused.output.split())
    assert f"cannot read profile: {profile}:2: per_node_rps: expected a positive number" in said
