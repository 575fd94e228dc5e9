"""`autoscaler status` asks each pool's fleet for its count now (the Nomad API double,
tests/doubles/nomad_api.py), says when it cannot, fits the terminal it is given, and
exits 1 while a pool has errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.cli.status import override_text, pool_statuses, stale_tick
from autoscaler.config.loader import load_config
from autoscaler.overrides import Override, OverridesFile
from autoscaler.state import PoolState
from backends.base import FleetState
from backends.leases import LeaderElection
from tests.autoscaler.cli.test_prometheus import write_config
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble

pytestmark = pytest.mark.integration
runner = CliRunner()
ENV = {"NOMAD_TOKEN": DOUBLE_ACL_TOKEN, "COLUMNS": "400"}


def _status(path: Path, env: dict[str, str] = ENV) -> tuple[int, str]:
    result = runner.invoke(app, ["status", "--config", str(path)], env=env)
    return result.exit_code, result.output


def test_the_count_comes_from_the_fleet_now(nomad_api: NomadApiDouble, tmp_path: Path) -> None:
    job = nomad_api.add_job("web-workers", {"gpu": 3})
    path = write_config(tmp_path, "http://127.0.0.1:9", nomad_api.url)
    code, output = _status(path)
    assert code == 0, output
    flat = " ".join(output.split())
    assert "never ticked" in flat and "3 (" in flat
    job.groups["gpu"] = 7  # someone scaled it: status shows it, not what was saved
    code, output = _status(path)
    assert "7 (" in " ".join(output.split())
    code, narrow = _status(path, {**ENV, "COLUMNS": "100"})
    assert code == 0 and max(len(line) for line in narrow.splitlines()) <= 100


def test_an_unreadable_state_file_fails_status(nomad_api: NomadApiDouble, tmp_path: Path) -> None:
    """A state file that does not read left every pool "never ticked" and status "ok"
    (exit 0), a warning on stderr aside: now it says the file is unreadable and fails,
    and leaves the file where it is (status writes nothing)."""
    nomad_api.add_job("web-workers", {"gpu": 3})
    path = write_config(tmp_path, "http://127.0.0.1:9", nomad_api.url)
    state = tmp_path / "state" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"version": 1, "pools": {"nasa": ')  # a write cut short
    code, output = _status(path)
    assert code == 1, output
    assert "is unreadable" in " ".join(output.split())
    assert state.read_text() == '{"version": 1, "pools": {"nasa": '


def test_a_broken_overrides_file_is_said_and_the_fleet_still_shown(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """A broken overrides file stopped `status` with "invalid config", no fleet shown,
    while the daemon ran on its last good overrides. The pools show, their override
    "unknown", the file's problem is said, and status fails (exit 1)."""
    nomad_api.add_job("web-workers", {"gpu": 3})
    path = write_config(tmp_path, "http://127.0.0.1:9", nomad_api.url)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("overrides:\n  nasa: {nodes: many}\n")
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "overrides_file": str(overrides)}))
    code, output = _status(path)
    assert code == 1, output
    flat = " ".join(output.split())
    assert "3 (" in flat and "unknown: the overrides file does not read" in flat
    assert "overrides file broken" in flat and "overrides.yaml:2" in flat


def test_a_narrow_terminal_shows_each_pool_as_a_block_of_whole_words(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """At 80 columns the nine-column table folded every cell into a few letters a line
    ("curren / t"); each field now has a line of its own, its words whole."""
    nomad_api.add_job("web-workers", {"gpu": 3})
    path = write_config(tmp_path, "http://127.0.0.1:9", nomad_api.url)
    code, output = _status(path, {**ENV, "COLUMNS": "80"})
    assert code == 0, output
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.split()[:5] == ["current", "(fleet", "now)", "3", "(0"] for line in lines)
    assert any(line.split() == ["last", "decision", "never", "ticked"] for line in lines), output
    _, wide = _status(path)
    assert "┃ pool" in wide and "current (fleet now)" in wide  # wide enough: the table


def test_an_unreachable_fleet_is_said_and_fails(nomad_api: NomadApiDouble, tmp_path: Path) -> None:
    nomad_api.add_job("web-workers", {"gpu": 3})
    path = write_config(tmp_path, "http://127.0.0.1:9", nomad_api.url)
    nomad_api.stop()
    code, output = _status(path)
    assert code == 1
    assert "fleet unreachable" in " ".join(output.split())
    assert DOUBLE_ACL_TOKEN not in output


def test_a_pool_whose_last_tick_failed_fails_status(
    nomad_api: NomadApiDouble, stopped_prometheus_url: str, tmp_path: Path
) -> None:
    nomad_api.add_job("web-workers", {"gpu": 3})
    path = write_config(tmp_path, stopped_prometheus_url, nomad_api.url)
    ran = runner.invoke(app, ["run", "--config", str(path), "--once"], env=ENV)
    assert ran.exit_code == 1  # the metrics are down
    code, output = _status(path)
    assert code == 1, output
    assert "metrics" in " ".join(output.split())


NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def test_a_stopped_daemon_fails_status_by_its_stale_last_tick(tmp_path: Path) -> None:
    """A daemon that stopped or hangs leaves a state that looks healthy: status read "ok"
    (exit 0) while nothing had scaled for hours."""
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9"))
    for age, stale in ((timedelta(minutes=2), False), (timedelta(hours=2, minutes=5), True)):
        last = {"time": (NOW - age).isoformat(), "action": "hold", "reasons": ["steady"]}
        states = {"nasa": PoolState(last_decision=last)}
        (row,) = pool_statuses(config, states, OverridesFile(), NOW, {})
        assert row.failing == stale
        said = "no tick for 2h05m (interval 1m): is the daemon running?"
        assert (row.last_error == said) if stale else row.last_error == "-"
    # Under leader election a standby's state stops as a dead daemon's does: said, not failed.
    elected = config.model_copy(update={"leader_election": LeaderElection(kind="nomad")})
    (row,) = pool_statuses(elected, states, OverridesFile(), NOW, {})
    assert not row.failing and "or another replica leads" in row.last_error


def test_a_hand_edited_last_decision_without_reasons_is_shown(tmp_path: Path) -> None:
    """A state file whose last decision says `"reasons": null` (a hand edit) read as
    None, and `status` stopped on it with a TypeError traceback; the decision shows with
    no reasons now, the rest of the row as it was."""
    from autoscaler.state import StateStore

    config = load_config(write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9"))
    state = tmp_path / "state.json"
    last = {"time": NOW.isoformat(), "action": "hold", "reasons": None, "desired": 4}
    state.write_text(json.dumps({"version": 1, "pools": {"nasa": {"last_decision": last}}}))
    states = StateStore(state).load(set_aside_corrupt=False)
    (row,) = pool_statuses(config, states, OverridesFile(), NOW, {})
    assert row.last_decision == f"{NOW.isoformat()} hold: " and row.desired == "4"


def test_a_stale_tick_is_said_only_past_three_intervals() -> None:
    minute = timedelta(minutes=1)
    assert stale_tick((NOW - 3 * minute).isoformat(), NOW, minute) is None
    assert stale_tick((NOW - 4 * minute).isoformat(), NOW, minute) == (
        "no tick for 4m (interval 1m): is the daemon running?"
    )
    assert stale_tick((NOW - timedelta(days=1, hours=2)).isoformat(), NOW, minute).startswith(
        "no tick for 1d2h00m"
    )
    for odd in (None, 7, "yesterday", "2026-12-06T01:00:00"):  # hand-edited or naive: no claim
        assert stale_tick(odd, NOW, minute) is None


@pytest.mark.parametrize("width", [20, 30, 80])
def test_every_value_shows_on_a_very_narrow_terminal(width: int) -> None:
    """At 20 columns the field names ("current (fleet now)", 21 wide with their indent)
    could not wrap and took the whole width: every value was cut to nothing, a block of
    names without a count. The names fold there now; each value keeps its words."""
    from rich.console import Console

    from autoscaler.cli.status import PoolStatus, status_view

    row = PoolStatus(
        pool="image-gen",
        current="4 (4 ready, 0 pending)",
        desired="8",
        last_decision="never ticked",
        schedule="-",
        override="-",
        next_change="-",
        last_error="fleet down",
        failing=True,
    )
    console = Console(width=width, record=True, color_system=None)
    console.print(status_view([row], console.width))
    shown = " ".join(console.export_text().split())
    for word in ("4", "ready,", "pending)", "8", "never", "ticked", "down"):
        assert f" {word} " in f" {shown} ", (word, console.export_text())


def test_a_failure_says_since_when_in_utc() -> None:
    """The time a failure began was printed without its zone, beside times said in UTC."""
    config = load_config(Path(__file__).resolve().parents[3] / "config" / "demo.yaml")
    began = datetime(2026, 12, 6, 4, 30, tzinfo=timezone(timedelta(hours=2)))
    last = {"time": NOW.isoformat(), "action": "hold", "reasons": ["no data"]}
    states = {config.pools[0].name: PoolState(last_decision=last, failing={"metrics": began})}
    row = pool_statuses(config, states, OverridesFile(), NOW, {})[0]
    assert row.last_error == "metrics since 12-06 02:30 UTC"


def test_an_override_planned_ahead_is_shown_before_it_begins() -> None:
    """`override set --from tomorrow` showed as no override until it began: the pin for a
    campaign looked forgotten to whoever checked the evening before."""
    starts = NOW + timedelta(hours=5)
    planned = Override(
        min_nodes=20, starts=starts, expires=starts + timedelta(hours=14), reason="campaign"
    )
    overrides = OverridesFile(overrides={"nasa": planned})
    assert override_text(overrides, "nasa", NOW) == (
        "planned: min 20 from 12-06 08:00 +0000 until 12-06 22:00 +0000: campaign"
    )
    assert override_text(overrides, "nasa", starts).startswith("min 20 until 12-06 22:00")
    assert override_text(overrides, "other", NOW) == "-"
    assert override_text(None, "nasa", NOW).startswith("unknown")


def test_nodes_that_do_not_come_up_are_shown_with_why_and_fail_the_status() -> None:
    """A fleet whose pending nodes will not come (pods no GPU node takes) read as any
    pending count, and nothing in `status` said it would stay so."""
    config = load_config(Path(__file__).resolve().parents[3] / "config" / "demo.yaml")
    name = config.pools[0].name
    stuck = "4 pods Unschedulable for 25m: 0/4 nodes are available"
    last = {"time": NOW.isoformat(), "action": "none", "reasons": ["hold 8, not 13"]}
    states = {name: PoolState(last_decision=last, failing={"rollout": NOW})}
    fleets = {name: FleetState(desired=8, ready=4, pending=4, stuck=stuck)}
    row = pool_statuses(config, states, OverridesFile(), NOW, fleets)[0]
    assert row.current == f"8 (4 ready, 4 pending; not coming up: {stuck})"
    assert row.failing and row.last_error.startswith("rollout since")


def test_fleets_are_asked_at_once_not_one_after_another(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """Pools were asked one after another, each read retried for most of a minute where
    the fleet API did not answer: with Nomad down, `status` of 20 pools took a quarter of
    an hour. Here the double answers pool a's reads only once pool b's fleet has been
    asked: asked in turn, a's every attempt times out before b is asked."""
    nomad_api.add_job("job-a", {"gpu": 3})
    nomad_api.add_job("job-b", {"gpu": 5})
    nomad_api.await_next(8, path="/v1/job/job-a", awaited="/v1/job/job-b", seconds=15)
    path = write_config(tmp_path, "http://127.0.0.1:9", nomad_api.url)
    config = yaml.safe_load(path.read_text())
    pool = config["pools"][0]
    config["pools"] = [
        {**pool, "name": name, "backend": {**pool["backend"], "job": job, "timeout": "1s"}}
        for name, job in (("a", "job-a"), ("b", "job-b"))
    ]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code, output = _status(path, {**ENV, "COLUMNS": "100"})  # a block of lines a pool
    flat = " ".join(output.split())
    assert "fleet unreachable" not in flat, flat
    assert "a ok current (fleet now) 3 (" in flat and "b ok current (fleet now) 5 (" in flat
    assert code == 0, output
