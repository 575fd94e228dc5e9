"""The daily digest across restarts and takeovers: a daemon started, restarted or taking
over the leader lock after `digest.at` sends that day's digest once, never twice.

Nothing recorded the last digest sent: the daily job's next time after a start at 09:01
is tomorrow's, so a deploy, a crash-restart or a reboot over 09:00 (and a standby taking
over from an active daemon that died at 08:59) sent no digest that day. Slack is the
double of its documented Web API (tests/doubles/slack_api.py), reached through
slack-sdk; the leader lock is the Nomad API double's variable lock, reached through
python-nomad. The daemon's loop is stepped by hand (`_scheduled_tick`, the loop's job;
`_start_digest`, the digest's) on injected clocks.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.config.loader import load_config
from autoscaler.daemon import Daemon
from autoscaler.daemon_digest import unsent_today
from backends.leases import make_leader_lock
from common.clock import SimulatedClock
from tests.autoscaler.cli.test_report import setup_day
from tests.autoscaler.test_daemon_leadership import ManualClock
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble

DUE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
DEPLOY = DUE + timedelta(minutes=1)  # a minute after the digest's 09:00
ENV = {"SLACK_BOT_TOKEN": DEFAULT_TOKEN, "NOMAD_TOKEN": DOUBLE_ACL_TOKEN}


def digest_config(folder: Path, slack_url: str, extra: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    config = setup_day(folder, slack_url)
    digest = 'digest: {plot: false, at: "09:00", timezone: UTC}'
    config.write_text(config.read_text().replace("digest: {currency: EUR}", digest) + extra)
    return config


def digests(slack_api: SlackApiDouble) -> list[str]:
    return [m.text or "" for m in slack_api.messages if (m.text or "").startswith("Daily digest")]


def digests_done() -> None:
    """Wait for the digest threads the daemon started (a bound for a hang, not a timing)."""
    for thread in threading.enumerate():
        if thread.name == "digest":
            thread.join(30)


def recorded(config: Path) -> object:
    return json.loads((config.parent / "state" / "digest.json").read_text())["sent"]


@pytest.mark.parametrize(
    ("now", "last", "due"),
    [
        (DEPLOY, date(2026, 11, 26), DUE),
        (DEPLOY, None, DUE),  # no record yet
        (DEPLOY, date(2026, 11, 27), None),  # sent today already
        (DEPLOY - timedelta(minutes=2), date(2026, 11, 25), None),  # today's not due yet
        (datetime(2026, 11, 27, 23, 59, tzinfo=UTC), date(2026, 11, 26), DUE),
    ],
)  # fmt: skip
def test_only_todays_digest_due_and_not_sent_is_caught_up(
    tmp_path: Path, now: datetime, last: date | None, due: datetime | None
) -> None:
    """Yesterday's missed digest is not sent at 08:59 today (a different local day):
    today's, at 09:00, covers the day from its end."""
    config = load_config(digest_config(tmp_path, "http://127.0.0.1:9"))
    assert unsent_today(config, now, last) == due


def test_the_day_is_the_digest_zones(tmp_path: Path) -> None:
    """09:00 Asia/Kolkata is 03:30 UTC: at 04:00 UTC that day's digest is due, and at
    20:00 UTC (01:30 the next day in Kolkata) it is a day past, not caught up."""
    path = digest_config(tmp_path, "http://127.0.0.1:9")
    path.write_text(path.read_text().replace("timezone: UTC", "timezone: Asia/Kolkata"))
    config = load_config(path)
    morning = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
    assert unsent_today(config, morning, date(2026, 11, 26)) == morning - timedelta(minutes=30)
    assert unsent_today(config, morning.replace(hour=20), date(2026, 11, 26)) is None


def test_a_restart_after_the_digest_time_sends_that_days_digest_once(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """Yesterday's digest went out (recorded); the daemon is deployed at 09:01, just after
    today's was due: its first tick sends it. A second restart a minute later, and the
    daily job firing late beside the catch-up, send no other."""
    config = digest_config(tmp_path, slack_api.base_url)
    yesterday = Daemon(config, env=ENV, clock=SimulatedClock(DEPLOY - timedelta(days=1)))
    assert yesterday.send_digest(DEPLOY - timedelta(days=1, minutes=1))
    assert recorded(config) == "2026-11-26"
    deployed = Daemon(config, env=ENV, clock=SimulatedClock(DEPLOY))
    deployed._scheduled_tick()
    digests_done()
    assert [d.partition(" UTC")[0] for d in digests(slack_api)] == [
        "Daily digest 2026-11-25 09:00 to 2026-11-26 09:00",
        "Daily digest 2026-11-26 09:00 to 2026-11-27 09:00",
    ]
    assert recorded(config) == "2026-11-27"
    deployed._start_digest()  # the daily job, firing as the catch-up runs: none more
    deployed._scheduled_tick()
    again = Daemon(config, env=ENV, clock=SimulatedClock(DEPLOY + timedelta(minutes=1)))
    again._scheduled_tick()
    digests_done()
    assert len(digests(slack_api)) == 2


def test_a_digest_slack_refused_is_not_recorded_and_a_restart_sends_it(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    """Slack answers the digest's post 'invalid_auth' (a token being rotated): nothing is
    recorded, so the restart that follows the fix sends it."""
    config = digest_config(tmp_path, slack_api.base_url)
    slack_api.fail("invalid_auth")
    daemon = Daemon(config, env=ENV, clock=SimulatedClock(DEPLOY))
    daemon._start_digest()
    digests_done()
    assert not (config.parent / "state" / "digest.json").exists()
    slack_api.clear_failures()
    restarted = Daemon(config, env=ENV, clock=SimulatedClock(DEPLOY + timedelta(minutes=5)))
    restarted._scheduled_tick()
    digests_done()
    assert len(digests(slack_api)) == 1
    assert recorded(config) == "2026-11-27"


def test_a_dry_run_after_the_digest_time_sends_and_records_nothing(
    tmp_path: Path, slack_api: SlackApiDouble
) -> None:
    config = digest_config(tmp_path, slack_api.base_url)
    daemon = Daemon(config, env=ENV, clock=SimulatedClock(DEPLOY), dry_run=True)
    daemon._scheduled_tick()
    digests_done()
    assert digests(slack_api) == []
    assert not (config.parent / "state" / "digest.json").exists()


def test_a_standby_taking_over_after_the_digest_time_sends_it_once(
    tmp_path: Path, slack_api: SlackApiDouble, nomad_api: NomadApiDouble
) -> None:
    """ops-a leads and dies at 08:59, before its digest; ops-b stands by at 09:00 (its
    daily job sends nothing), takes the lock over once ops-a's has expired, and sends
    the day's digest after its first tick as the active daemon; its next tick does not."""
    lock_clock = ManualClock()
    nomad_api.variables.clock = lock_clock
    daemons = {}
    for name in ("ops-a", "ops-b"):
        election = (
            f'leader_election: {{kind: nomad, address: "{nomad_api.url}", ttl: 2m, '
            f"identity: {name}}}\n"
        )
        config = digest_config(tmp_path / name, slack_api.base_url, election)
        clock = SimulatedClock(DEPLOY - timedelta(minutes=2))
        daemons[name] = (Daemon(config, env=ENV, clock=clock), clock, config)
    (a, _, _), (b, b_clock, b_config) = daemons["ops-a"], daemons["ops-b"]
    a._scheduled_tick()
    assert a._leading
    b_clock.advance(timedelta(minutes=1))  # 09:00
    b._scheduled_tick()
    b._start_digest()  # its daily job, as a standby
    digests_done()
    assert not b._leading and digests(slack_api) == []
    lock_clock.now += 200  # ops-a's TTL (2 min) and Nomad's lock delay have passed
    b_clock.advance(timedelta(minutes=2))
    b._scheduled_tick()
    digests_done()
    assert b._leading
    assert [d.partition(" UTC")[0] for d in digests(slack_api)] == [
        "Daily digest 2026-11-26 09:00 to 2026-11-27 09:00"
    ]
    assert recorded(b_config) == "2026-11-27"
    b._scheduled_tick()
    digests_done()
    assert len(digests(slack_api)) == 1


def test_a_leader_stalled_past_its_ttl_sends_no_digest_the_new_leader_sent(
    tmp_path: Path, slack_api: SlackApiDouble, nomad_api: NomadApiDouble
) -> None:
    """ops-a leads at 08:58 and is stopped (SIGSTOP, a stall) past its lease's TTL; ops-b
    takes the lock over at 09:01 and sends the day's digest. ops-a resumes and its daily
    job, due while it was stopped, fires before its next tick: it went by the leadership
    its last tick saw, not the lease, and posted the digest a second time, from a daemon
    that no longer led. The lease is checked (renewed) first: ops-a stands by, posts
    nothing. Both daemons' lock clocks and the Nomad double's are one manual clock."""
    lock_clock = ManualClock()
    nomad_api.variables.clock = lock_clock
    daemons = {}
    for name in ("ops-a", "ops-b"):
        election = f'leader_election: {{kind: nomad, address: "{nomad_api.url}", ttl: 2m}}\n'
        config = digest_config(tmp_path / name, slack_api.base_url, election)
        settings = load_config(config).leader_election
        assert settings is not None
        lock = make_leader_lock(settings.model_copy(update={"identity": name}), ENV, lock_clock)
        clock = SimulatedClock(DEPLOY - timedelta(minutes=3))
        daemons[name] = (Daemon(config, env=ENV, clock=clock, leader_lock=lock), clock)
    (a, a_clock), (b, b_clock) = daemons["ops-a"], daemons["ops-b"]
    a._scheduled_tick()
    b._scheduled_tick()
    assert a._leading and not b._leading
    lock_clock.now += 200  # ops-a stopped past its TTL (2 min) and Nomad's lock delay
    b_clock.advance(timedelta(minutes=4))  # 09:01
    b._scheduled_tick()
    digests_done()
    assert b._leading and len(digests(slack_api)) == 1
    a_clock.advance(timedelta(minutes=4))  # ops-a resumes: its daily job first
    a._start_digest()
    digests_done()
    assert len(digests(slack_api)) == 1
    assert not a._leading
