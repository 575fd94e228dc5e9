"""Class 4 (issue 17): validation that accepted nonsense. `autoscaler validate` (the
unit's ExecStartPre) must refuse what `run` would refuse or misread, naming file, line
and field; each case below was accepted before, and then read as "0 nodes needed", a
busy loop, a time 9 seconds after midnight or a daemon that crash-loops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.config.loader import load_config
from autoscaler.config.problems import ConfigError
from autoscaler.daemon import Daemon
from tests.autoscaler.test_daemon import write_config
from tests.support import RecordingNotifier

Edit = Callable[[dict[str, Any]], None]


def pool(config: dict[str, Any]) -> dict[str, Any]:
    return config["pools"][0]


def predictor(kind: str, **params: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        pool(config)["predictor"] = {"kind": kind, "params": params}

    return edit


def schedule(**times: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        window = {"name": "office", "days": "mon-fri", "start": "09:00", "end": "18:00"}
        pool(config)["schedules"] = [{**window, **times, "min_nodes": 2}]

    return edit


def masked(start: str, end: str) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        pool(config)["demand"]["exclude"] = [{"name": "outage", "start": start, "end": end}]

    return edit


# case -> (edit of a good config, field named, words in the message)
NONSENSE: dict[str, tuple[Edit, str, str]] = {
    "infinite per-node capacity": (
        lambda c: pool(c)["capacity"].update(per_node_rps=float("inf")),
        "pools[0].capacity.per_node_rps",
        "finite",
    ),
    "NaN per-node capacity": (
        lambda c: pool(c)["capacity"].update(per_node_rps=float("nan")),
        "pools[0].capacity.per_node_rps",
        "finite",
    ),
    "infinite simulation speed": (
        lambda c: c.update(
            simulation={
                "start": "1995-07-05T16:00:00Z",
                "end": "1995-07-06T16:00:00Z",
                "speed": float("inf"),
            }
        ),
        "simulation.speed",
        "finite",
    ),
    "schedule start as an integer": (schedule(start=9), "pools[0].schedules[0].start", "HH:MM"),
    "schedule end as an integer": (schedule(end=1800), "pools[0].schedules[0].end", "HH:MM"),
    "zero step": (lambda c: pool(c)["demand"].update(step="0s"), "pools[0].demand.step", "0"),
    "zero interval": (lambda c: c.update(interval=0), "interval", "more than 0"),
    "zero window": (lambda c: pool(c)["demand"].update(window="0m"), "pools[0].demand.window", "0"),
    "zero horizon and boot time": (
        lambda c: pool(c).update(horizon="0s", boot_time="0s"),
        "pools[0].horizon",
        "more than 0",
    ),
    "zero backend timeout": (
        lambda c: pool(c)["backend"].update(kind="nomad_job", job="j", group="g", timeout="0s"),
        "pools[0].backend.timeout",
        "more than 0",
    ),
    "step longer than the window": (
        lambda c: pool(c)["demand"].update(step="2h", window="1h"),
        "pools[0].demand.step",
        "window",
    ),
    "port above 65535": (
        lambda c: c.update(telemetry={"listen": "127.0.0.1:70000"}),
        "telemetry.listen",
        "65535",
    ),
    "port 0": (lambda c: c.update(telemetry={"listen": "127.0.0.1:0"}), "telemetry.listen", "port"),
    "unknown predictor kind": (predictor("prophet"), "pools[0].predictor.kind", "seasonal"),
    "unknown predictor parameter": (
        predictor("seasonal", seasonality=3),
        "pools[0].predictor.params.seasonality",
        "seasonality",
    ),
    "predictor parameter of the wrong type": (
        predictor("seasonal", daily_harmonics="many"),
        "pools[0].predictor.params.daily_harmonics",
        "daily_harmonics",
    ),
    "predictor share out of range": (
        predictor("seasonal", service_target=2),
        "pools[0].predictor.params.service_target",
        "service_target",
    ),
    "seasonal refit phase of a whole period": (
        predictor("seasonal", refit_phase=1.0),
        "pools[0].predictor.params.refit_phase",
        "refit_phase",
    ),
    "linear quantile of 1": (
        predictor("linear", quantile=1.0),
        "pools[0].predictor.params.quantile",
        "quantile",
    ),
    "predictor duration of zero": (
        predictor("linear", window="0s"),
        "pools[0].predictor.params.window",
        "window",
    ),
    "a millisecond step over a week": (
        lambda c: pool(c)["demand"].update(step="1ms", window="7d"),
        "pools[0].demand",
        "longer step",
    ),
    # Accepted, then every tick of the pool failed ("strftime not yet supported on
    # Timestamps outside the range"): the fleet held with no decision for good.
    "masked span from year 1": (
        masked("0001-01-01T00:00:00+14:00", "2026-11-02T14:00:00Z"),
        "pools[0].demand.exclude[0].start",
        "between the years",
    ),
    "masked span to year 9999": (
        masked("2026-11-02T10:00:00Z", "9999-12-31T23:59:59-12:00"),
        "pools[0].demand.exclude[0].end",
        "between the years",
    ),
}


def nonsense_config(tmp_path: Path, case: str) -> Path:
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    NONSENSE[case][0](config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("case", sorted(NONSENSE))
def test_validate_refuses_nonsense_naming_the_field(tmp_path: Path, case: str) -> None:
    path = nonsense_config(tmp_path, case)
    _, field, words = NONSENSE[case]
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:" in result.output and field in result.output and words in result.output
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = [p for p in caught.value.problems if p.field == field]
    assert problem.line is not None


@pytest.mark.parametrize("case", ["unknown predictor kind", "unknown predictor parameter"])
def test_what_run_refuses_validate_refused_first(tmp_path: Path, case: str) -> None:
    """The unit runs validate as ExecStartPre: a config that passes it must start."""
    path = nonsense_config(tmp_path, case)
    with pytest.raises(ConfigError):
        Daemon(path, notifier=RecordingNotifier())


def test_every_shipped_predictor_setting_still_loads(tmp_path: Path) -> None:
    """Guard: durations as text, time zones and shares in range are still accepted."""
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    pool(config)["predictor"] = {
        "kind": "seasonal",
        "params": {"timezone": "Europe/Paris", "refit_every": "30m", "service_target": 0.02},
    }
    schedule(start="08:30", end="19:00")(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    loaded = load_config(path)
    assert loaded.pools[0].predictor.params["timezone"] == "Europe/Paris"
    assert str(loaded.pools[0].schedules[0].start) == "08:30:00"


def test_a_simulation_outside_its_trace_is_refused_by_validate_and_run(tmp_path: Path) -> None:
    """Before, it passed validate, and every tick of the run held for want of a sample
    (a wrong year, or another file's trace)."""
    years_later = {"start": "2001-07-05T16:00:00Z", "end": "2001-07-06T16:00:00Z"}
    path = write_config(tmp_path, simulation=years_later)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"{path}:" in said and "metrics.trace" in said and "none of it" in said
    with pytest.raises(ConfigError):
        Daemon(path, notifier=RecordingNotifier())

    overlapping = {"start": "1995-07-12T00:00:00Z", "end": "2001-07-06T16:00:00Z"}
    assert (
        CliRunner()
        .invoke(app, ["validate", str(write_config(tmp_path, simulation=overlapping))])
        .exit_code
        == 0
    )
