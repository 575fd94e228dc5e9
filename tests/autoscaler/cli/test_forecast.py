"""A pool with little history says so, in `forecast` and in every decision's reasons,
until the seasonal model has its week (the demo's replay, started a few hours into its
trace, so the daemon has seen only those hours)."""

from __future__ import annotations

import json
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from typer.testing import CliRunner

from autoscaler.state import PoolState
from tests.autoscaler.cli.test_main import demo_copy

if TYPE_CHECKING:
    from autoscaler.cli.forecast import PoolForecast
    from autoscaler.metrics import MetricsSource
    from autoscaler.overrides import OverridesFile
    from autoscaler.tick import PoolTicker
    from autoscaler.tick_result import TickResult

runner = CliRunner()


def test_little_history_is_said_in_forecast_and_in_the_decision(tmp_path: Path) -> None:
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path, start="1995-07-04T06:00:00Z", end="1995-07-04T07:00:00Z")
    shown = runner.invoke(app, ["forecast", "--config", str(path)], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert "image-gen: little history: 6.0h of data, the daily shape needs 24.0h" in flat
    assert flat.count("little history") == 2  # under the table, and in the reasons now

    ran = runner.invoke(app, ["run", "--config", str(path), "--once"])
    assert ran.exit_code == 0, ran.output
    (record,) = [json.loads(line) for line in (tmp_path / "decisions.jsonl").open()]
    assert any(reason.startswith("little history: 6.0h") for reason in record["reasons"])


def test_a_week_of_history_says_nothing_of_the_kind(tmp_path: Path) -> None:
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path)  # starts after a week of the trace
    ran = runner.invoke(app, ["run", "--config", str(path), "--once"])
    assert ran.exit_code == 0, ran.output
    (record,) = [json.loads(line) for line in (tmp_path / "decisions.jsonl").open()]
    assert not any("little history" in reason for reason in record["reasons"])


def test_the_table_sizes_with_the_pools_spare_nodes_as_the_daemon_does() -> None:
    """`forecast`'s nodes and desired columns once left spare_nodes out, showing fewer nodes
    than the daemon asks for; now both carry them, and desired is still capped at max."""
    from datetime import timedelta

    import numpy as np
    import pandas as pd

    from autoscaler.cli.forecast import forecast_rows
    from autoscaler.overrides import OverridesFile
    from autoscaler.sizing import Sizing
    from predictors.base import Forecast
    from tests.autoscaler.cli.test_plots import NOW, _pool

    times = pd.date_range(NOW, periods=30, freq="1min")
    upper = np.where(np.arange(30) < 15, 24.0, 48.0)  # 5 nodes, then 10, at 5 req/s a node
    sizing = Sizing(demand_now=20.0, forecast=Forecast(times, upper, upper, "test"))
    pool = _pool().model_copy(update={"spare_nodes": 3, "max_nodes": 12})
    rows = forecast_rows(pool, sizing, 10.0, OverridesFile(), timedelta(minutes=15))
    assert [(row.nodes, row.desired) for row in rows] == [(8, 8), (13, 12)]


def test_the_forecast_now_is_sized_with_the_daemons_loop_margin_and_week(tmp_path: Path) -> None:
    """Under a calibrated margin (`widen`, the default) the daemon sizes with its loop's
    margin and the member it follows: `forecast` takes up the same saved calibration and
    week (reading, writing nothing), so its decision now is the daemon's, not the one
    the forecaster's band as made would give."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import yaml

    from autoscaler.cli.forecast import forecast_pool
    from autoscaler.config.loader import load_config
    from autoscaler.overrides import OverridesFile
    from autoscaler.runtime import build_runtime
    from autoscaler.state import PoolState
    from common.clock import SimulatedClock

    config = yaml.safe_load(demo_copy(tmp_path).read_text())
    del config["simulation"]  # the real daemon's, its clock set where the trace is
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    now = datetime(1995, 7, 11, 16, 0, tzinfo=UTC)
    runtime = build_runtime(load_config(path), source=path, dry_run=True, clock=SimulatedClock(now))
    (ticker,) = runtime.tickers
    saved = {
        "margin": 1.5,
        "member": "forecast",
        "aim": 1.0,
        "at": (now - timedelta(minutes=1)).isoformat(),
    }

    def seen(state: PoolState) -> np.ndarray:
        shown = forecast_pool(
            ticker,
            runtime.metrics,
            timedelta(minutes=5),
            now,
            state,
            OverridesFile(),
            timedelta(hours=1),
            timedelta(minutes=15),
        )
        assert shown.now is not None and shown.now.forecast is not None
        return np.asarray(shown.now.forecast.upper)

    as_made = seen(PoolState())
    np.testing.assert_allclose(seen(PoolState(loop=saved)), 1.5 * as_made)
    assert not (tmp_path / "state").exists()


def test_no_demand_now_reads_as_zero_not_as_missing(tmp_path: Path) -> None:
    """A pool with no requests this minute (a trace of zeros) was said to have demand
    "nan req/s" (`0.0 or nan`), the words for no reading at all; it is 0.00 req/s."""
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path)
    config = yaml.safe_load(path.read_text())
    source = Path(config["metrics"]["trace"]).read_text().splitlines()
    zeros = tmp_path / "zeros.csv"
    zeros.write_text("\n".join([source[0], *(f"{r.split(',')[0]},0" for r in source[1:])]) + "\n")
    config["metrics"]["trace"] = str(zeros)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    shown = runner.invoke(app, ["forecast", "--config", str(path)], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "demand 0.00 req/s" in shown.output
    assert "nan" not in shown.output


def test_a_forecast_too_far_or_too_fine_is_refused_at_once(tmp_path: Path) -> None:
    """--hours 876000 (100 years, the most a duration held) forecast 52 million minutes:
    8 GB and minutes without a word; --every 1m over 2000 h drew a table of 120,000 rows
    for a minute; --every 1000d gave one row labelled 1000 days ahead. Each is now a
    one-line error naming the option (exit 2)."""
    from autoscaler.cli.main import app

    path = str(demo_copy(tmp_path))
    for options, said in (
        (["--hours", "2000", "--every", "1d"], "--hours: at most 744 (a month ahead), got 2000"),
        (["--hours", "876000"], "--hours: at most 744"),
        (["--hours", "1e300"], "--hours: at most 744"),
        (["--hours", "744", "--every", "1m"], "44,640 rows, more than 10,080"),
        (["--hours", "2", "--every", "1000d"], "--every 1000d is longer than the forecast"),
    ):
        shown = runner.invoke(app, ["forecast", "--config", path, *options])
        assert shown.exit_code == 2, (options, shown.output)
        assert said in " ".join(shown.output.split()), shown.output
        assert "Traceback" not in shown.output
    week = runner.invoke(app, ["forecast", "--config", path, "--hours", "168", "--every", "1h"])
    assert week.exit_code == 0, week.output


def test_a_narrow_terminal_shows_each_row_as_lines_with_its_values_whole(
    tmp_path: Path,
) -> None:
    """At 20 columns the seven-column table cut every cell to nothing (a boxed grid of
    empty cells); where the table does not fit, each row is a block, a field a line."""
    from autoscaler.cli.main import app

    path = str(demo_copy(tmp_path))
    options = ["forecast", "--config", path, "--hours", "1", "--every", "15m"]
    wide = runner.invoke(app, options, env={"COLUMNS": "300"})
    narrow = runner.invoke(app, options, env={"COLUMNS": "20"})
    assert wide.exit_code == narrow.exit_code == 0, narrow.output
    table_rows = [line for line in wide.output.splitlines() if line.startswith("│")]
    assert len(table_rows) == 4
    for row in table_rows:  # every value of the table, whole, on a line of its own
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        at = cells[0]
        assert at in narrow.output.splitlines(), narrow.output
        names = ("demand/s", "upper/s", "nodes", "floor", "override", "desired")
        for name, value in zip(names, cells[1:], strict=True):
            assert any(line.split() == [name, value] for line in narrow.output.splitlines())


def test_no_row_is_labelled_past_the_forecast(tmp_path: Path) -> None:
    """Rows are labelled at the end of their block; a last, shorter block (25-minute rows
    over an hour) was labelled 75 minutes ahead, past the hour forecast."""
    from autoscaler.cli.main import app

    path = str(demo_copy(tmp_path))
    shown = runner.invoke(
        app,
        ["forecast", "--config", path, "--hours", "1", "--every", "25m"],
        env={"COLUMNS": "300"},
    )
    assert shown.exit_code == 0, shown.output
    times = [
        line.split("│")[1].split()[-1] for line in shown.output.splitlines() if line.startswith("│")
    ]
    now = shown.output.split("now (")[1].split(" UTC")[0].split()[-1]
    ahead = [int(t[:2]) * 60 + int(t[3:]) - (int(now[:2]) * 60 + int(now[3:])) for t in times]
    assert len(ahead) == 3 and ahead[:2] == [25, 50] and 50 < ahead[2] <= 60, times


def test_a_plot_that_cannot_be_written_is_said_not_a_traceback(tmp_path: Path) -> None:
    """`forecast --plot` at a folder, or a format matplotlib has no writer for, ended in a
    traceback after the forecast (IsADirectoryError, matplotlib's ValueError); now refused
    before the work, naming the option, as `backtest --plot` is."""
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path)
    (tmp_path / "a-folder.png").mkdir()
    for name, said in (
        ("a-folder.png", "it is a folder, not a file"),
        ("forecast.txt", "matplotlib writes no 'txt' picture"),
    ):
        plot = tmp_path / name
        shown = runner.invoke(
            app, ["forecast", "-c", str(path), "--plot", str(plot)], env={"COLUMNS": "300"}
        )
        assert shown.exit_code == 2, shown.output
        assert isinstance(shown.exception, SystemExit)
        assert f"--plot: {plot}" in shown.output and said in shown.output
        assert "image-gen" not in shown.output  # before the forecast, not after it


def forecast_and_tick(
    tmp_path: Path, now: datetime, state: PoolState, overrides: OverridesFile | None = None
) -> tuple[PoolForecast, TickResult]:
    """`forecast`'s view of the demo pool (no simulation: the real daemon's, its clock set
    where the trace is) and the daemon's tick, each from its own runtime, on the same
    config, saved state and clock (the forecaster fully fitted, as after its first refit)."""
    from autoscaler.cli.forecast import forecast_pool
    from autoscaler.config.loader import load_config
    from autoscaler.overrides import OverridesFile
    from autoscaler.runtime import build_runtime
    from common.clock import SimulatedClock

    config = yaml.safe_load(demo_copy(tmp_path).read_text())
    del config["simulation"]
    config["pools"][0]["predictor"]["params"]["quick_first_fit"] = False
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    overrides = overrides or OverridesFile()

    def ticker_of() -> tuple[PoolTicker, MetricsSource]:
        runtime = build_runtime(
            load_config(path), source=path, dry_run=True, clock=SimulatedClock(now)
        )
        (ticker,) = runtime.tickers
        return ticker, runtime.metrics

    ticker, metrics = ticker_of()
    span, row = timedelta(hours=2), timedelta(minutes=15)  # forecast's defaults
    shown = forecast_pool(
        ticker, metrics, timedelta(minutes=5), now, deepcopy(state), overrides, span, row
    )
    daemon, _ = ticker_of()
    return shown, daemon.tick(now, deepcopy(state), overrides)


def test_the_decision_now_is_the_ticks_whatever_hours_the_table_shows(tmp_path: Path) -> None:
    """The forecaster learns its band over the leads of the first horizon it is asked:
    `forecast` asked the table's (2 h) before the pool's own (15 min), so its decision
    now was sized on another band than the daemon's tick (16:10 UTC on the demo's trace:
    13 nodes where the tick asks 14). The sizing now is the tick's, band and decision."""
    import numpy as np

    now = datetime(1995, 7, 11, 16, 10, tzinfo=UTC)
    shown, ticked = forecast_and_tick(tmp_path, now, PoolState())
    assert shown.now is not None and shown.now.forecast is not None
    assert ticked.decision is not None and ticked.sizing.forecast is not None
    np.testing.assert_array_equal(shown.now.forecast.upper, ticked.sizing.forecast.upper)
    assert shown.decision == ticked.decision


def test_a_count_changed_by_hand_is_held_now_as_the_daemon_holds_it(tmp_path: Path) -> None:
    """The last tick left 10 nodes and someone scaled to 4 by hand since: the daemon holds
    4 for the cooldown, not fighting it, but `forecast` said 'would scale 4 → 9', since
    only the tick noticed the change. Both notice it now (plan.noticing_change_by_hand)."""
    from autoscaler.policy import Memory

    now = datetime(1995, 7, 11, 2, 10, tzinfo=UTC)  # 22:10 in New York: no schedule floor
    state = PoolState(memory=Memory(last_action_at=now - timedelta(hours=1)))
    state.last_known_desired = 10  # the demo's simulated fleet starts at 4
    shown, ticked = forecast_and_tick(tmp_path, now, state)
    assert ticked.decision is not None and ticked.decision.desired == 4
    assert shown.decision == ticked.decision
    assert "changed outside the autoscaler" in " ".join(shown.decision.reasons)


def test_a_minute_without_metrics_still_says_what_the_daemon_does_now(tmp_path: Path) -> None:
    """With the demand gone stale inside the business-hours window the daemon holds on
    the missing data but raises the fleet to the schedule's floor, 4 → 12; `forecast`
    said only 'no forecast: stale ...' and nothing of that scale-up. It now says the
    missing forecast (exit 1) and the decision now, the tick's."""
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path, start="1995-07-11T12:55:00Z", end="1995-07-11T13:00:00Z")
    config = yaml.safe_load(path.read_text())
    rows = Path(config["metrics"]["trace"]).read_text().splitlines()
    gap = tmp_path / "gap.csv"  # no sample from 12:00 UTC on the 11th on
    gap.write_text("\n".join(r for r in rows if not r.startswith("1995-07-11T12:")) + "\n")
    config["metrics"]["trace"] = str(gap)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    shown = runner.invoke(app, ["forecast", "--config", str(path)], env={"COLUMNS": "300"})
    assert shown.exit_code == 1, shown.output
    flat = " ".join(shown.output.split())
    assert "image-gen: no forecast: stale" in flat
    assert "image-gen would scale 4 → 12; demand unknown" in flat
    assert "raised to schedule floor 12 ('business-hours')" in flat

    ticked = runner.invoke(app, ["run", "--config", str(path), "--once"])
    (record,) = [json.loads(line) for line in (tmp_path / "decisions.jsonl").open()]
    assert (record["current"], record["desired"]) == (4, 12), ticked.output


def test_a_plot_named_without_a_suffix_is_said_by_the_name_it_was_written_under(
    tmp_path: Path,
) -> None:
    """`forecast --plot today` wrote today.png (matplotlib's PNG, named as savefig names
    it) but said `plot: today`, a file that is not there for whoever opens or attaches it;
    and where today.png was a folder, it ended in 'cannot write' after the forecast."""
    from autoscaler.cli.main import app

    path = demo_copy(tmp_path)
    plot = tmp_path / "today"
    shown = runner.invoke(app, ["forecast", "-c", str(path), "--plot", str(plot)])
    assert shown.exit_code == 0, shown.output
    assert f"plot: {plot}.png" in shown.output.splitlines()
    assert not plot.exists() and (tmp_path / "today.png").read_bytes()[:4] == b"\x89PNG"

    (tmp_path / "busy.png").mkdir()
    busy = tmp_path / "busy"
    refused = runner.invoke(
        app, ["forecast", "-c", str(path), "--plot", str(busy)], env={"COLUMNS": "300"}
    )
    assert refused.exit_code == 2, refused.output
    assert f"--plot: {busy}.png cannot be written: it is a folder" in refused.output
    assert "image-gen" not in refused.output  # before the forecast, not after it
