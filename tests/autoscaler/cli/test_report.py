"""`autoscaler report`: the hand-computed day (tests/autoscaler/test_digest.py) read back
from a decision log and a replayed trace, printed, and posted to Slack with a PNG in the
thread. Slack is the local double of its Web API (tests/doubles/slack_api.py), reached
through slack-sdk's real chat_postMessage and files_upload_v2."""

from __future__ import annotations

import json
import os
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from typer.testing import CliRunner

from autoscaler.cli.main import app
from tests.autoscaler.test_daily_report import logrotate
from tests.autoscaler.test_digest import day_demand, day_records
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble, make_slack_api_fixture
from tests.support import full_disk_under

slack_api = make_slack_api_fixture()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def setup_day(tmp_path: Path, slack_url: str) -> Path:
    demand = day_demand()
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "timestamp,requests\n"
        + "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},{v * 60:g}\n" for t, v in demand.items())
    )
    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in day_records()) + '{"torn line\n')
    config = tmp_path / "autoscaler.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        state_dir: state
        decision_log: decisions.jsonl
        metrics: {{kind: replay, trace: trace.csv}}
        slack: {{channel: "#gpu-autoscaler", base_url: "{slack_url}"}}
        digest: {{currency: EUR}}
        pools:
          - name: ocr
            backend: {{kind: simulated}}
            demand: {{query: up}}
            capacity: {{per_node_rps: 5}}
            target_utilization: 0.8
            min_nodes: 1
            max_nodes: 10
            boot_time: 10m
            horizon: 15m
            price_per_node_hour: 2.5
        """)
    )
    return config


def test_report_prints_and_posts_the_hand_computed_day_with_its_png(
    tmp_path: Path, slack_api: SlackApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
    config = setup_day(tmp_path, slack_api.base_url)
    result = CliRunner().invoke(
        app,
        ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "24h",
         "--slack", "--plot-dir", str(tmp_path / "png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ocr: 74.0 node-hours, EUR 185.00" in out
    assert "1,530 of 864,600 requests late, 2 minutes with late requests" in out
    assert "1440/1440 minutes with demand data" in out
    assert "forecast error: 20.4 % of the peak demand (bias +18.8 %, 1426 forecasts)" in out
    assert "scale actions: 1 up, 1 down" in out
    assert "overrides: 'evening batch' (120 ticks)" in out
    assert "static fleet at the day's peak (5 nodes): 120.0 node-hours, EUR 300.00 (+62 %" in out
    assert (
        "reactive fleet (HPA rule): 72.2 node-hours, EUR 180.42 (-2 % vs ours), 0.18 % late" in out
    )
    assert "1 unreadable decision-log lines skipped" in out
    assert "no decision-log record" not in out  # its first tick, 2 s after the day began
    assert "no decision logged" not in out  # a tick every minute all day
    [message] = slack_api.messages
    assert "EUR 185.00" in (message.text or "")
    assert message.blocks is not None and len(message.blocks) == 3  # heading, ocr, notes
    assert "1 unreadable decision-log lines skipped" in message.blocks[2]["text"]["text"]
    [png] = slack_api.files
    assert png.filename == "ocr-20261126-0000.png"
    assert png.content.startswith(PNG_MAGIC) and len(png.content) > 10_000
    assert (png.channel, png.thread_ts) == (message.channel, message.ts)
    assert (tmp_path / "png" / "ocr-20261126-0000.png").read_bytes() == png.content
    assert f"plot: {tmp_path / 'png' / 'ocr-20261126-0000.png'}" in out.splitlines()  # said


def rotate_the_day(log: Path) -> None:
    """logrotate at 06:25 on the 26th and the 27th (`compress`, `delaycompress`): the day
    is in decisions.jsonl.2.gz until 06:25 and in decisions.jsonl.1 after."""
    records = day_records()
    for part in (
        [r for r in records if r["time"] < "2026-11-26T06:25"],
        [r for r in records if r["time"] >= "2026-11-26T06:25"],
    ):
        log.write_text("".join(json.dumps(r) + "\n" for r in part))
        last = datetime.fromisoformat(max(r["time"] for r in part)).timestamp()
        os.utime(log, (last, last))  # as the daemon's last line left it
        logrotate(log, dateext=False)
    log.write_text('{"torn line\n')


def test_report_of_a_day_logrotate_moved_away_has_the_whole_day(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """The report of the 26th read the log alone and found nothing of the day; it has the
    hand-computed day, from the two rotated files."""
    config = setup_day(tmp_path, slack_api.base_url)
    rotate_the_day(tmp_path / "decisions.jsonl")
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "24h"]
    )
    assert result.exit_code == 0, result.output
    assert "ocr: 74.0 node-hours, EUR 185.00" in result.output
    assert "(bias +18.8 %, 1426 forecasts)" in result.output
    assert "scale actions: 1 up, 1 down" in result.output
    assert "overrides: 'evening batch' (120 ticks)" in result.output
    assert "no decision-log" not in result.output


def test_report_says_the_hours_whose_rotated_file_is_gone(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """`rotate 1`: the file with the day until 06:25 is deleted at the next rotation. The
    report filled those hours from the first tick after, unsaid; now it says so."""
    config = setup_day(tmp_path, slack_api.base_url)
    rotate_the_day(tmp_path / "decisions.jsonl")
    (tmp_path / "decisions.jsonl.2.gz").unlink()
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "24h"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "no decision-log record from 2026-11-26 00:00 to 2026-11-26 06:25 UTC, in the log or "
        "its rotated files: each pool's fleet in those hours is the count its first tick "
        "after found" in result.output
    )
    assert "scale actions: 1 up, 1 down" in result.output  # the rest of the day is there


def test_report_says_the_hours_the_daemon_made_no_decision(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """The daemon stopped from 10:00 to 12:00: the report reckoned those hours with the
    counts the fleet kept, as it should, but did not say that nobody decided them."""
    config = setup_day(tmp_path, slack_api.base_url)
    kept = [r for r in day_records() if not "2026-11-26T10:00" <= r["time"] < "2026-11-26T12:00"]
    (tmp_path / "decisions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "24h"]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "no decision logged from 11-26 09:59 to 11-26 12:00 UTC" in out, out


def test_a_report_of_another_span_than_a_day_is_titled_with_its_span(
    tmp_path: Path, slack_api: SlackApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--since 6h` printed and posted "Daily digest ...": six hours read as a day's
    figures by whoever saw the heading alone (a Slack notification shows no more)."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
    config = setup_day(tmp_path, slack_api.base_url)
    result = CliRunner().invoke(
        app,
        ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "6h", "--slack"],
    )
    assert result.exit_code == 0, result.output
    head = "6h report 2026-11-26 18:00 to 2026-11-27 00:00 UTC"
    assert result.output.startswith(head + "\n") and "Daily digest" not in result.output
    [message] = slack_api.messages
    assert (message.text or "").startswith(head)
    assert message.blocks is not None and message.blocks[0]["text"]["text"] == f"*{head}*"


def test_since_reads_a_bare_number_as_seconds_and_refuses_an_empty_span(
    tmp_path: Path,
) -> None:
    """README: a bare number on the command line is seconds. `--since 21600` was refused
    ('expected a duration such as 90s ...'), and `--since 0s` printed an empty report and
    exited 0, a span of nothing read as a quiet day."""
    config = setup_day(tmp_path, "http://127.0.0.1:9")
    command = ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since"]
    result = CliRunner().invoke(app, [*command, "21600"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("6h report 2026-11-26 18:00 to 2026-11-27 00:00 UTC\n")
    for empty in ("0s", "0", "-1h"):
        refused = CliRunner().invoke(app, [*command, empty])
        assert refused.exit_code == 2, (empty, refused.output)
        assert "--since:" in refused.output and "report" not in refused.output


def test_report_without_slack_reachable_fails_and_says_so(
    tmp_path: Path, slack_api: SlackApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", DEFAULT_TOKEN)
    config = setup_day(tmp_path, slack_api.base_url)
    slack_api.go_down()
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--slack"]
    )
    assert result.exit_code == 1
    assert "ocr: 74.0 node-hours" in result.output  # the terminal still has it
    assert DEFAULT_TOKEN not in result.output


def test_the_double_takes_files_the_documented_way_only(slack_api: SlackApiDouble) -> None:
    client = WebClient(token=DEFAULT_TOKEN, base_url=slack_api.base_url)
    with pytest.raises(SlackApiError, match="channel_not_found"):  # a name is not an ID
        client.files_upload_v2(content=b"abc", filename="a.txt", channel="#gpu-autoscaler")
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        client.files_getUploadURLExternal(filename="a.txt", length=0)
    ticket = client.files_getUploadURLExternal(filename="a.txt", length=3)
    with pytest.raises(SlackApiError, match="file_not_found"):  # never uploaded
        client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}])
    bad = WebClient(token="xoxb-wrong", base_url=slack_api.base_url)
    with pytest.raises(SlackApiError, match="invalid_auth"):
        bad.files_getUploadURLExternal(filename="a.txt", length=3)
    done = client.files_upload_v2(content=b"abc", filename="a.txt", channel="C0AUTOSCALE")
    assert done["file"]["size"] == 3
    assert [f.content for f in slack_api.files] == [b"abc"]


def test_the_daemon_sends_the_daily_digest_at_its_time(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """The daemon's job: the day just ended, posted with its PNG; the trigger fires at
    `digest.at` in the digest's zone (09:00 Asia/Kolkata is 03:30 UTC)."""
    from datetime import UTC, datetime

    from autoscaler.config.loader import load_config
    from autoscaler.daemon import Daemon
    from autoscaler.digest_trigger import digest_trigger
    from common.clock import SimulatedClock

    config = setup_day(tmp_path, slack_api.base_url)
    text = config.read_text().replace(
        "digest: {currency: EUR}", "digest: {currency: EUR, at: '09:00', timezone: Asia/Kolkata}"
    )
    config.write_text(text)
    end = datetime(2026, 11, 27, tzinfo=UTC)
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(end))
    assert daemon.send_digest()
    [message] = slack_api.messages
    assert "ocr: 74.0 node-hours, EUR 185.00" in (message.text or "")
    assert [f.filename for f in slack_api.files] == ["ocr-20261126-0000.png"]
    trigger = digest_trigger(load_config(config), dry_run=False)
    assert trigger is not None
    fires = trigger.get_next_fire_time(None, end)
    assert fires is not None and fires.astimezone(UTC) == datetime(2026, 11, 27, 3, 30, tzinfo=UTC)
    assert digest_trigger(load_config(config), dry_run=True) is None


def test_a_digest_without_slack_is_a_config_error(tmp_path: Path) -> None:
    from autoscaler.config.loader import load_config
    from autoscaler.config.problems import ConfigError

    config = setup_day(tmp_path, "http://127.0.0.1:9/api/")
    config.write_text(
        "\n".join(line for line in config.read_text().splitlines() if "slack:" not in line)
    )
    with pytest.raises(ConfigError, match="digest is posted on Slack"):
        load_config(config)


def test_a_changed_digest_time_waits_for_a_restart(tmp_path: Path) -> None:
    """The daily job is scheduled at start: a reload that moves it says so (start-only)."""
    from autoscaler.config.loader import load_config
    from autoscaler.daemon_reload import start_only_changes

    config = setup_day(tmp_path, "http://127.0.0.1:9/api/")
    running = load_config(config)
    config.write_text(config.read_text().replace("{currency: EUR}", "{currency: EUR, at: '07:30'}"))
    assert start_only_changes(running, load_config(config)) == ["digest"]


@pytest.mark.parametrize(
    "line",
    [
        '{"time": "2026-11-26T10:00:30", "pool": "ocr", "current": 3}',
        '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": [3]}',
        '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": "many"}',
        '{"time": "2026-11-26T10:00:30Z", "pool": "ocr", "current": 3, "reasons": 5}',
    ],
)
def test_a_hand_edited_line_is_skipped_naming_file_and_line_not_a_traceback(
    tmp_path: Path, slack_api: SlackApiDouble, line: str
) -> None:
    config = setup_day(tmp_path, slack_api.base_url)
    log = tmp_path / "decisions.jsonl"
    log.write_text(line + "\n" + log.read_text())
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "24h"]
    )
    assert result.exit_code == 0, result.output
    assert "ocr: 74.0 node-hours, EUR 185.00" in result.output  # the good lines still count
    assert f"2 unreadable decision-log lines skipped (first: {log}:1: " in result.output


def test_a_pool_the_log_says_nothing_of_is_said_not_shown_as_a_fleet_of_zero(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """An empty log (or one of another pool, or a missing one): the digest counts no node
    paid and every request late, which reads as a fact unless the report says why."""
    config = setup_day(tmp_path, slack_api.base_url)
    log = tmp_path / "decisions.jsonl"
    log.write_text("")
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "24h"]
    )
    assert result.exit_code == 0, result.output
    assert "ocr: 0.0 node-hours" in result.output
    assert f"no decision-log lines in this span for ocr (in {log})" in result.output
    log.unlink()
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--since", "24h"]
    )
    assert f"no decision-log lines in this span for ocr (in {log})" in result.output


def test_a_pools_capacity_profile_gone_bad_after_start_costs_no_digest(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """The digest read each pool's profile again: one rewritten badly (or removed) since
    the daemon started stopped the whole digest, every pool's, with only a log line, and
    `autoscaler report` with a traceback. The daemon's digest now judges the day with the
    rate its ticks sized with; `report` names the file and exits 2."""
    from datetime import UTC, datetime

    from autoscaler.daemon import Daemon
    from common.clock import SimulatedClock

    config = setup_day(tmp_path, slack_api.base_url)
    profile = tmp_path / "ocr-profile.yaml"
    profile.write_text("per_node_rps: 5\n")
    config.write_text(config.read_text().replace("per_node_rps: 5}", f"profile: {profile.name}}}"))
    end = datetime(2026, 11, 27, tzinfo=UTC)
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(end))
    profile.write_text("per_node_rps: 5.\n  gpus")  # cut short by a failed copy
    assert daemon.send_digest()
    [message] = slack_api.messages
    assert "ocr: 74.0 node-hours, EUR 185.00" in (message.text or "")
    result = CliRunner().invoke(
        app, ["report", "-c", str(config), "--until", "2026-11-27T00:00Z"],
        env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{profile}:1: per_node_rps" in " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("end", "hours"),
    [
        ("2026-10-26T00:00+01:00", 25),  # Berlin's clocks went back at 03:00 on the 25th
        ("2026-03-30T00:00+02:00", 23),  # and forward at 02:00 on the 29th
        ("2026-06-15T00:00+02:00", 24),
    ],
)
def test_the_daily_digest_covers_the_local_day_of_23_or_25_hours(
    tmp_path: Path, slack_api: SlackApiDouble, end: str, hours: int
) -> None:
    """The daemon's digest at 00:00 Berlin time, 3 nodes all along: the day just ended is
    the local day, so the autumn night's extra hour is in one digest (24 hours before left
    it out of every digest) and the spring night's missing one in none twice."""
    from datetime import UTC, timedelta

    from autoscaler.daemon import Daemon
    from common.clock import SimulatedClock
    from tests.autoscaler.test_daily_report import write_log

    config = setup_day(tmp_path, slack_api.base_url)
    config.write_text(
        "interval: 10m\n"  # as the log below ticks
        + config.read_text().replace(
            "digest: {currency: EUR}",
            "digest: {currency: EUR, at: '00:00', timezone: Europe/Berlin, plot: false}",
        )
    )
    ends = datetime.fromisoformat(end).astimezone(UTC)
    first = ends - timedelta(days=3)
    minutes = [first + timedelta(minutes=k) for k in range(4 * 1440)]
    (tmp_path / "trace.csv").write_text(
        "timestamp,requests\n" + "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},600\n" for t in minutes)
    )
    (tmp_path / "decisions.jsonl").unlink()
    write_log(tmp_path / "decisions.jsonl", first, ends + timedelta(hours=2))
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(ends))
    assert daemon.send_digest()
    [message] = slack_api.messages
    node_hours = 3 * hours
    assert f"ocr: {node_hours:.1f} node-hours, EUR {2.5 * node_hours:.2f}" in (message.text or "")
    assert f"{hours * 60}/{hours * 60} minutes with demand data" in (message.text or "")
    assert "no decision logged" not in (message.text or "")


@pytest.mark.parametrize("fault", ["full disk", "a file in its place"])
def test_a_plot_dir_that_cannot_take_the_pngs_is_said_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """It was a traceback (OSError: No space left on device, naming no file; FileExistsError),
    and on a full disk a PNG cut short was left where the old one was."""
    config = setup_day(tmp_path, "http://127.0.0.1:9")
    folder = tmp_path / "png"
    png = folder / "ocr-20261126-0000.png"
    if fault == "full disk":
        folder.mkdir()
        png.write_bytes(PNG_MAGIC + b"yesterday's")
        full_disk_under(monkeypatch, folder)
    else:
        folder.write_text("not a folder")
    command = ["report", "-c", str(config), "--until", "2026-11-27T00:00Z", "--plot-dir"]
    result = CliRunner().invoke(app, [*command, str(folder)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    if fault == "full disk":
        assert f"cannot write {png}: No space left on device" in result.output
        assert png.read_bytes() == PNG_MAGIC + b"yesterday's"  # whole, as it was
        assert sorted(p.name for p in folder.iterdir()) == [png.name]  # no temporary file
    else:
        assert f"--plot-dir: {folder} is not a folder" in result.output


@pytest.mark.parametrize("source", ["metrics", "decision log"])
def test_an_until_with_seconds_reads_the_demand_of_whole_minutes(
    tmp_path: Path, source: str
) -> None:
    """`--until 2026-11-27T00:00:30Z` put the span's minutes at :30, between the whole
    minutes the trace and the decision log's demand_rps are read on: every minute read as
    no data ('0/1440 minutes with demand data') and nothing was late. The edges are now
    whole minutes, for either source of demand."""
    config = setup_day(tmp_path, "http://127.0.0.1:9")
    if source == "decision log":  # a trace without the day: the replay source answers empty
        (tmp_path / "trace.csv").write_text("timestamp,requests\n2026-11-01T00:00:00Z,600\n")
    command = ["report", "-c", str(config), "--since", "24h", "--until"]
    result = CliRunner().invoke(app, [*command, "2026-11-27T00:00:30Z"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("24h report 2026-11-26 00:00 to 2026-11-27 00:00 UTC\n")
    assert "1440/1440 minutes with demand data" in result.output
    late = "1,530 of 864,600" if source == "metrics" else "0 of 864,000"  # the log says 10
    assert f"{late} requests late" in result.output
    assert ("demand from the decision log" in result.output) == (source == "decision log")


@pytest.mark.parametrize("source", ["metrics", "decision log"])
def test_a_report_opened_during_a_backlog_counts_the_requests_it_makes_late(
    tmp_path: Path, source: str
) -> None:
    """The hand-computed day's backlog (tests/autoscaler/test_digest.py): 12:00 at 20 req/s
    on 15 req/s of ready nodes leaves 300 requests waiting; at 12:01 (10 req/s) they drain
    at 5 req/s and its requests are late until the queue is under 3 s × 15 = 45, after
    (300 - 45) / 5 = 51 s: 510 late. A report from 12:01 started its queue empty and
    counted none of them; it now runs the queue from the hour before its span."""
    config = setup_day(tmp_path, "http://127.0.0.1:9")
    if source == "decision log":  # the log's demand: the trace's, and 20 req/s at 12:00
        (tmp_path / "trace.csv").write_text("timestamp,requests\n2026-11-01T00:00:00Z,600\n")
        log = tmp_path / "decisions.jsonl"
        lines = log.read_text().replace(
            '"2026-11-26T12:00:02Z", "pool": "ocr", "demand_rps": 10.0',
            '"2026-11-26T12:00:02Z", "pool": "ocr", "demand_rps": 20.0',
        )
        assert lines != log.read_text()
        log.write_text(lines)
    command = ["report", "-c", str(config), "--until", "2026-11-26T13:01Z", "--since", "1h"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "510 of 36,000 requests late, 1 minutes with late requests" in result.output
    assert "60/60 minutes with demand data" in result.output
    assert ", 1.42 % late" in result.output  # the reactive fleet's 5 nodes not yet up


BERLIN_DAYS = [  # the local day before the digest at 00:00 Berlin, in UTC, and its hours
    pytest.param("2026-10-24T22:00Z", "2026-10-25T23:00Z", 25, id="autumn"),  # 03:00 -> 02:00
    pytest.param("2026-03-28T23:00Z", "2026-03-29T22:00Z", 23, id="spring"),  # 02:00 -> 03:00
]


def two_pools_in_berlin(tmp_path: Path, slack_url: str, start: datetime) -> Path:
    """Two pools logged every 10 minutes for three days: ocr at 3 nodes of 5 req/s (15
    req/s), asr at 4 (20 req/s). Demand 10 req/s, but 20 for a minute at 01:30 UTC on the
    day of the change (in the hour the clocks repeat, or the first after the jump) and
    30 minutes before the local day begins. The digest goes at 00:00 Europe/Berlin."""
    from datetime import timedelta

    first, ends = start - timedelta(days=2), start + timedelta(days=1, hours=2)
    bursts = {start - timedelta(minutes=30), start.replace(hour=1, minute=30) + timedelta(days=1)}
    count = int((ends - first) / timedelta(minutes=1))
    minutes = [first + timedelta(minutes=k) for k in range(count)]
    (tmp_path / "trace.csv").write_text(
        "timestamp,requests\n"
        + "".join(f"{t:%Y-%m-%dT%H:%M:%SZ},{1200 if t in bursts else 600}\n" for t in minutes)
    )
    lines = []
    for at in minutes[::10]:
        for pool, nodes in (("ocr", 3), ("asr", 4)):
            line = {"time": f"{at:%Y-%m-%dT%H:%M}:02Z", "pool": pool, "current": nodes}
            lines.append(json.dumps({**line, "ready": nodes, "desired": nodes, "action": "none"}))
    (tmp_path / "decisions.jsonl").write_text("\n".join(lines) + "\n")
    pool = "backend: {kind: simulated}, demand: {query: up}, capacity: {per_node_rps: 5}"
    config = tmp_path / "autoscaler.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        interval: 10m
        state_dir: state
        decision_log: decisions.jsonl
        metrics: {{kind: replay, trace: trace.csv}}
        slack: {{channel: "#gpu-autoscaler", base_url: "{slack_url}"}}
        digest: {{currency: EUR, at: "00:00", timezone: Europe/Berlin, plot: false}}
        pools:
          - {{name: ocr, {pool}, max_nodes: 10, price_per_node_hour: 2.5}}
          - {{name: asr, {pool}, max_nodes: 10, price_per_node_hour: 2.5}}
        """)
    )
    return config


@pytest.mark.parametrize(("start", "end", "hours"), BERLIN_DAYS)
def test_a_two_pool_day_with_a_clock_change_adds_up_from_first_principles(
    tmp_path: Path, slack_api: SlackApiDouble, start: str, end: str, hours: int
) -> None:
    """The daily digest of Berlin's 25- or 23-hour day, and `report` over it, over two
    days and for one pool: node-hours are nodes x hours; requests 600 a minute, 1,200 in
    a burst minute; ocr's 15 req/s meet a burst with 1,020 late and leave 300 waiting,
    which make 510 of the next minute's late (test_digest.py's day): 1,530 a burst.
    asr's 20 req/s serve a burst on time. The heading names the day's span in UTC."""
    from datetime import timedelta

    from autoscaler.daemon import Daemon
    from common.clock import SimulatedClock

    begins, ends = datetime.fromisoformat(start), datetime.fromisoformat(end)
    assert ends - begins == timedelta(hours=hours)
    config = two_pools_in_berlin(tmp_path, slack_api.base_url, begins)
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(ends))
    assert daemon.send_digest()
    [message] = slack_api.messages
    digest = message.text or ""
    assert digest.startswith(f"Daily digest {begins:%Y-%m-%d %H:%M} to {ends:%Y-%m-%d %H:%M} UTC")
    requests = f"{hours * 60 * 600 + 600:,}"
    assert f"ocr: {3 * hours:.1f} node-hours, EUR {7.5 * hours:.2f}" in digest
    assert f"1,530 of {requests} requests late, 2 minutes with late requests" in digest
    assert f"asr: {4 * hours:.1f} node-hours, EUR {10 * hours:.2f}" in digest
    assert f"0 of {requests} requests late, 0 minutes" in digest
    assert f"{hours * 60}/{hours * 60} minutes with demand data" in digest
    command = ["report", "-c", str(config), "--until", end]
    same = CliRunner().invoke(app, [*command, "--since", f"{hours}h"])
    assert same.exit_code == 0, same.output
    assert same.output.splitlines()[1:] == digest.splitlines()[1:]
    two_days = CliRunner().invoke(app, [*command, "--since", "2d"])
    assert two_days.exit_code == 0, two_days.output
    assert two_days.output.startswith(
        f"48h report {ends - timedelta(days=2):%Y-%m-%d %H:%M} to {ends:%Y-%m-%d %H:%M} UTC"
    )
    assert "ocr: 144.0 node-hours, EUR 360.00" in two_days.output
    assert "3,060 of 1,729,200 requests late, 4 minutes with late requests" in two_days.output
    assert "asr: 192.0 node-hours, EUR 480.00" in two_days.output
    one = CliRunner().invoke(app, [*command, "--since", "2d", "--pool", "asr"])
    assert one.exit_code == 0, one.output
    assert "asr: 192.0 node-hours" in one.output and "ocr" not in one.output


def test_digests_at_a_time_the_spring_night_skips_cover_every_hour_once(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """digest.at 02:30 Europe/Berlin, which the night of 2026-03-29 skips (02:00 CET ->
    03:00 CEST): that day's digest goes at the jump, 01:00 UTC, and covered the day from
    03:00 the day before, not its 02:30: 01:30-02:00 UTC of the 28th was in no digest.
    The days from the daemon's job (DailyTrigger) now follow one another, and their
    node-hours add up to the hours they span (ocr: 3 nodes all along)."""
    from datetime import UTC, timedelta

    from autoscaler.config.loader import load_config
    from autoscaler.daemon import Daemon
    from autoscaler.digest_trigger import digest_due, digest_trigger
    from common.clock import SimulatedClock

    config = two_pools_in_berlin(
        tmp_path, slack_api.base_url, datetime(2026, 3, 28, 23, tzinfo=UTC)
    )
    config.write_text(config.read_text().replace('at: "00:00"', 'at: "02:30"'))
    trigger = digest_trigger(load_config(config), dry_run=False)
    assert trigger is not None
    fire = datetime(2026, 3, 27, 12, tzinfo=UTC)
    for _ in range(3):
        fire = trigger.get_next_fire_time(None, fire + timedelta(seconds=1))
        assert fire is not None
        daemon = Daemon(config, env={"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, clock=SimulatedClock(fire))
        assert daemon.send_digest(digest_due(load_config(config), fire))
    spans = []
    for message in slack_api.messages:
        head, ocr = (message.text or "").splitlines()[:2]
        begins, ends = (datetime.fromisoformat(f"{t}Z") for t in head[13:-4].split(" to "))
        spans.append((begins, ends))
        assert ocr.startswith(f"ocr: {3 * (ends - begins) / timedelta(hours=1):.1f} node-hours")
    assert spans == [
        (datetime(2026, 3, 27, 1, 30, tzinfo=UTC), datetime(2026, 3, 28, 1, 30, tzinfo=UTC)),
        (datetime(2026, 3, 28, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC)),
    ]
