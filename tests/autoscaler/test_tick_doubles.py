"""The tick end to end against HTTP doubles: python-nomad → Nomad API double,
slack-sdk → Slack Web API double, and kubernetes → Kubernetes API double (each follows
its official API documents; see tests/doubles/). Metrics come from an in-memory series
(the real Prometheus path is covered in test_cli_prometheus.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autoscaler.decision_log import DecisionLog
from autoscaler.notify_slack import SlackNotifier
from autoscaler.overrides import OverridesFile
from autoscaler.state import PoolState
from autoscaler.tick import PoolTicker
from backends.kubernetes import KubernetesBackend, KubernetesWorkload
from backends.nomad_job import NomadJobBackend, NomadJobGroup
from common.clock import SimulatedClock
from tests.autoscaler.test_tick import START, FlatDemand, make_pool
from tests.doubles.kubernetes_api import KubernetesApiDouble
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, allocation
from tests.doubles.nomad_evaluations import alloc_metric, placement_failed
from tests.doubles.slack_api import DEFAULT_TOKEN, SlackApiDouble
from tests.support import RecordingNotifier


def make_ticker(
    nomad: NomadApiDouble, slack: SlackApiDouble, log: Path, *, dry_run: bool, rps: float = 10.0
) -> tuple[PoolTicker, SimulatedClock]:
    clock = SimulatedClock(START)
    backend = NomadJobGroup(
        NomadJobBackend(
            kind="nomad_job",
            job="ocr-workers",
            group="gpu",
            address=nomad.url,
            timeout=timedelta(seconds=2),
            retries=2,
        ),
        env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN},
        sleep=lambda _: None,
    )
    notifier = SlackNotifier("#gpu-autoscaler", DEFAULT_TOKEN, base_url=slack.base_url, timeout=2.0)
    ticker = PoolTicker(
        make_pool(),
        backend,
        1.0,
        FlatDemand(clock, rps),
        timedelta(minutes=5),
        notifier,
        DecisionLog(log),
        dry_run,
    )
    return ticker, clock


def scale_posts(nomad: NomadApiDouble) -> list:
    return [r for r in nomad.requests if r.method in ("POST", "PUT") and r.path.endswith("/scale")]


def test_scales_the_nomad_group_and_tells_slack(
    nomad_api: NomadApiDouble,
    slack_api: SlackApiDouble,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    ticker, clock = make_ticker(nomad_api, slack_api, tmp_path / "d.jsonl", dry_run=False)
    state = PoolState()
    result = ticker.tick(clock.now(), state, OverridesFile())
    assert result.acted and result.decision is not None and result.decision.desired == 13
    (post,) = scale_posts(nomad_api)
    assert post.body["Count"] == 13 and post.body["Target"]["Group"] == "gpu"
    assert "autoscaler" in post.body["Message"].lower()
    assert len(slack_api.messages) == 1 and "2 → 13" in slack_api.messages[0].text
    clock.advance(timedelta(minutes=1))
    ticker.tick(clock.now(), state, OverridesFile())  # steady: no write, no message
    assert len(scale_posts(nomad_api)) == 1 and len(slack_api.messages) == 1
    everything = (
        caplog.text
        + (tmp_path / "d.jsonl").read_text()
        + "".join(m.text for m in slack_api.messages)
    )
    assert DOUBLE_ACL_TOKEN not in everything and DEFAULT_TOKEN not in everything


def test_dry_run_never_writes_to_nomad(
    nomad_api: NomadApiDouble, slack_api: SlackApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    ticker, clock = make_ticker(nomad_api, slack_api, tmp_path / "d.jsonl", dry_run=True)
    result = ticker.tick(clock.now(), PoolState(), OverridesFile())
    assert result.decision is not None and result.decision.desired == 13 and not result.acted
    assert scale_posts(nomad_api) == []
    assert "would" in slack_api.messages[0].text


def test_slack_down_does_not_stop_scaling(
    nomad_api: NomadApiDouble, slack_api: SlackApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("ocr-workers", {"gpu": 2})
    slack_api.fail("http_500")
    ticker, clock = make_ticker(nomad_api, slack_api, tmp_path / "d.jsonl", dry_run=False)
    result = ticker.tick(clock.now(), PoolState(), OverridesFile())
    assert result.acted and len(scale_posts(nomad_api)) == 1


def test_nomad_outage_alerts_once_and_recovery_once(
    nomad_api: NomadApiDouble, slack_api: SlackApiDouble, tmp_path: Path
) -> None:
    nomad_api.add_job("ocr-workers", {"gpu": 13})
    ticker, clock = make_ticker(nomad_api, slack_api, tmp_path / "d.jsonl", dry_run=False)
    state = PoolState()
    # three ticks × (1 try + 2 retries) of the read (the first tick's one look at the job
    # for a scaling policy, autoscaler.other_autoscalers, is not the outage here)
    nomad_api.fail_next(9, status=503, path="/scale")
    for _ in range(3):
        result = ticker.tick(clock.now(), state, OverridesFile())
        assert "backend" in result.errors
        clock.advance(timedelta(minutes=1))
    assert len(slack_api.messages) == 1 and "backend" in slack_api.messages[0].text
    ticker.tick(clock.now(), state, OverridesFile())
    assert len(slack_api.messages) == 2 and "recovered" in slack_api.messages[1].text
    assert scale_posts(nomad_api) == []


def test_a_kubectl_scale_racing_a_write_is_a_change_by_hand_not_fought(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """The kubernetes client against the Kubernetes API double (API reference: a scale
    write carrying a stale resourceVersion is 409 Conflict). A person's `kubectl scale`
    landing between the autoscaler's read and its write is not overridden, and the next
    tick holds that count for the cooldown and says so, as any change by hand."""
    deployment = kubernetes_api.add_deployment("ocr-workers", replicas=2, ready=2)
    ticker, clock, notifier = kubernetes_ticker(kubernetes_api, tmp_path)
    state = PoolState()
    kubernetes_api.before_next("PATCH", lambda: kubernetes_api.scale_by_hand(deployment, 5))
    first = ticker.tick(clock.now(), state, OverridesFile())  # wants 13; a person sets 5
    assert not first.acted and "by someone else" in first.errors["backend"]
    for _ in range(3):  # within the 5-minute cooldown
        clock.advance(timedelta(minutes=1))
        result = ticker.tick(clock.now(), state, OverridesFile())
        assert result.decision is not None and result.decision.desired == 5
    assert deployment.replicas == 5
    manual = [t for t in notifier.texts if "outside the autoscaler" in t]
    assert len(manual) == 1 and "from 2 to 5" in manual[0]


def test_allocations_nomad_cannot_place_are_told_once(
    nomad_api: NomadApiDouble, slack_api: SlackApiDouble, tmp_path: Path
) -> None:
    """A group at 5 whose last 2 allocations Nomad could not place (no GPU node with a
    free device: the double's evaluations as Nomad lists them) while demand asks for 13.
    Before, nothing said why the pool sat pending; now the cause is told once, in Nomad's
    words, and the count the demand asks is written as ever."""
    job = nomad_api.add_job("ocr-workers", {"gpu": 5})
    job.allocations = [allocation("gpu", job_id="ocr-workers") for _ in range(3)]
    metric = alloc_metric(failed=2, exhausted={"devices: no devices match request": 3})
    job.evaluations = placement_failed("ocr-workers", "gpu", metric)
    ticker, clock = make_ticker(nomad_api, slack_api, tmp_path / "d.jsonl", dry_run=False)
    state = PoolState()
    for _ in range(3):
        result = ticker.tick(clock.now(), state, OverridesFile())
        assert result.errors == {} and result.decision is not None
        clock.advance(timedelta(minutes=1))
    assert len(scale_posts(nomad_api)) == 1 and job.groups["gpu"] == 13
    alerts = [m.text for m in slack_api.messages if "cannot place" in m.text]
    assert len(alerts) == 1  # once, not at every tick
    assert "rollout failing: nodes are not coming up (2 of 5 pending)" in alerts[0]
    assert "Nomad cannot place 2 allocation(s)" in alerts[0]
    assert "devices: no devices match request" in alerts[0]


def test_the_rollout_alert_does_not_count_nodes_on_their_way_as_stuck(
    nomad_api: NomadApiDouble, slack_api: SlackApiDouble, tmp_path: Path
) -> None:
    """A group at 8: 3 allocations running, 3 placed and starting (a model loading), 2
    Nomad could not place. The alert said '5 of 8 nodes are not coming up', though 3 of
    the 5 were on their way; Nomad's cause carries the count that is stuck."""
    job = nomad_api.add_job("ocr-workers", {"gpu": 8})
    job.allocations = [allocation("gpu", job_id="ocr-workers") for _ in range(3)] + [
        allocation("gpu", job_id="ocr-workers", client_status="pending", healthy=None)
        for _ in range(3)
    ]
    metric = alloc_metric(failed=2, exhausted={"devices: no devices match request": 3})
    job.evaluations = placement_failed("ocr-workers", "gpu", metric)
    ticker, clock = make_ticker(nomad_api, slack_api, tmp_path / "d.jsonl", dry_run=False)
    ticker.tick(clock.now(), PoolState(), OverridesFile())
    (alert,) = [m.text for m in slack_api.messages if "rollout failing" in m.text]
    assert "5 of 8 nodes are not coming up" not in alert
    assert "nodes are not coming up (5 of 8 pending): Nomad cannot place 2 allocation(s)" in alert


def test_nodes_that_do_not_come_up_are_told_once(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """The kubernetes client against the Kubernetes API double (API reference: a pod the
    scheduler cannot place is Pending with PodScheduled False, reason Unschedulable). Pods
    that found no GPU node for longer than the progress deadline are told on Slack once,
    naming the cause, and once when they come up. The demand's count is still written:
    what adds GPU nodes reacts to the pods waiting."""
    deployment = kubernetes_api.add_deployment("ocr-workers", replicas=8, ready=4)
    labels = {"app": "ocr-workers"}
    since = datetime.now(UTC) - timedelta(minutes=25)
    for n in range(4):
        kubernetes_api.pods.add(f"ocr-workers-5f7c9-ready{n}", "ready", since, labels)
        kubernetes_api.pods.add(f"ocr-workers-5f7c9-wait{n}", "unschedulable", since, labels)
    ticker, clock, notifier = kubernetes_ticker(kubernetes_api, tmp_path)
    state = PoolState()
    for _ in range(3):  # wants 13
        result = ticker.tick(clock.now(), state, OverridesFile())
        assert result.decision is not None and result.decision.desired == 13
        clock.advance(timedelta(minutes=1))
    assert deployment.replicas == 13
    (told,) = [t for t in notifier.texts if "rollout" in t]
    assert "rollout failing: nodes are not coming up (4 of 8 pending): 4 pods Unschedulable" in told
    assert "Insufficient nvidia.com/gpu" in told
    for n in range(4):  # a GPU node came
        kubernetes_api.pods.add(f"ocr-workers-5f7c9-wait{n}", "ready", since, labels)
    deployment.ready_replicas = 13
    ticker.tick(clock.now(), state, OverridesFile())
    assert len([t for t in notifier.texts if "rollout" in t]) == 2
    assert any("rollout recovered after 3m" in t for t in notifier.texts)


def kubernetes_ticker(
    double: KubernetesApiDouble, tmp_path: Path
) -> tuple[PoolTicker, SimulatedClock, RecordingNotifier]:
    backend = KubernetesWorkload(
        KubernetesBackend(
            kind="kubernetes",
            name="ocr-workers",
            kubeconfig=double.write_kubeconfig(tmp_path / "kubeconfig"),
            timeout=timedelta(seconds=2),
            retries=2,
        ),
        env={},
        sleep=lambda _: None,
    )
    clock, notifier = SimulatedClock(START), RecordingNotifier()
    ticker = PoolTicker(
        make_pool(),
        backend,
        1.0,
        FlatDemand(clock, 10.0),
        timedelta(minutes=5),
        notifier,
        DecisionLog(None),
        False,
    )
    return ticker, clock, notifier


def test_a_dry_run_pool_watching_a_fleet_another_pool_scales_takes_no_change_by_hand(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """Pool 'ocr' scales the Nomad group; 'ocr-trial' (dry_run: true, a candidate setting
    at 50 % utilization) watches it, as the loader allows. Each scale by 'ocr' read to the
    watcher as a change by hand: alerted ('the count changed from 2 to 13 outside the
    autoscaler') and its would-be decisions held for the cooldown, at every scale of the
    pool beside it. The config's own writes are not changes by hand: it says what it
    would do (13 → 20). Built by the daemon's runtime on python-nomad against the Nomad
    API double."""
    from autoscaler.config.schema import Config
    from autoscaler.runtime import build_runtime

    job = nomad_api.add_job("ocr-workers", {"gpu": 2})
    trace = tmp_path / "trace.csv"
    minutes = [START + k * timedelta(minutes=1) for k in range(-120, 60)]
    trace.write_text(
        "timestamp,requests\n" + "".join(f"{at:%Y-%m-%dT%H:%M:%SZ},600\n" for at in minutes)
    )
    backend = {"kind": "nomad_job", "address": nomad_api.url, "job": "ocr-workers", "group": "gpu"}
    pool = {
        "backend": backend,
        "demand": {"query": "sum(rate(requests_total[2m]))"},
        "capacity": {"per_node_rps": 1.0},
        "predictor": {"kind": "linear", "margin": "band"},
        "max_nodes": 50,
        "cooldown": "30m",
    }
    config = Config.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "metrics": {"kind": "replay", "trace": str(trace)},
            "pools": [
                {**pool, "name": "ocr", "target_utilization": 0.8},
                {**pool, "name": "ocr-trial", "target_utilization": 0.5, "dry_run": True},
            ],
        }
    )
    notifier = RecordingNotifier()
    clock = SimulatedClock(START)
    runtime = build_runtime(
        config,
        source=tmp_path / "autoscaler.yaml",
        dry_run=False,
        clock=clock,
        env={"NOMAD_TOKEN": DOUBLE_ACL_TOKEN},
        notifier=notifier,
    )
    writer, watcher = runtime.tickers
    states = {"ocr": PoolState(), "ocr-trial": PoolState()}
    for _ in range(2):
        for ticker in (watcher, writer):
            ticker.tick(clock.now(), states[ticker.pool.name], OverridesFile())
        clock.advance(timedelta(minutes=1))
    assert job.groups["gpu"] == 13  # the writer's 0.8: 10 req/s on 13 nodes
    texts = [m.text for m in notifier.messages]
    assert not any("outside the autoscaler" in text for text in texts), texts
    last = watcher.tick(clock.now(), states["ocr-trial"], OverridesFile())
    assert last.decision is not None and (last.decision.current, last.decision.desired) == (13, 20)
    assert not last.acted and job.groups["gpu"] == 13
