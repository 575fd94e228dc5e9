"""Another autoscaler on a pool's fleet: logged at each start and reload, told on Slack
once per finding.

The wording is pure and tested as such; the daemon is run end to end on a Kubernetes pool
through the real `kubernetes` client against the API double (its autoscaling/v2
HorizontalPodAutoscalers: tests/doubles/kubernetes_hpas.py), its demand a replayed trace;
a Nomad pool's tick through python-nomad and slack-sdk against the Nomad and Slack doubles.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.cli.main import app
from autoscaler.daemon import Daemon
from autoscaler.other_autoscalers import (
    OtherAutoscalers,
    check_failure,
    found_text,
    manual_change_text,
    not_checked_text,
)
from autoscaler.overrides import OverridesFile
from autoscaler.state import PoolState
from backends.base import BackendError
from common.clock import SimulatedClock
from tests.autoscaler.test_daemon import NOON, run_ticks, write_config
from tests.autoscaler.test_tick_doubles import make_ticker
from tests.backends.test_nomad_scaling import POLICY
from tests.doubles.kubernetes_api import DOUBLE_TOKEN, KubernetesApiDouble
from tests.doubles.nomad_api import NomadApiDouble
from tests.doubles.slack_api import SlackApiDouble
from tests.support import RecordingNotifier

POOL = "image-gen"
HPA = "HorizontalPodAutoscaler 'image-gen-cpu' (1 to 8 replicas): kubectl delete hpa ..."


# ---- pure wording ---------------------------------------------------------------------


def test_found_names_each_other_autoscaler_and_says_the_daemon_runs_on() -> None:
    assert found_text(POOL, []) is None
    text = found_text(POOL, [HPA, "scheduled action 'night'"])
    assert text is not None and text.startswith(f"{POOL}: another autoscaler also scales")
    assert f"{HPA}; scheduled action 'night'" in text
    assert "fight" in text and "runs on" in text
    assert check_failure([HPA]).startswith(f"another autoscaler also scales this fleet: {HPA}")


def test_a_count_changed_outside_names_the_other_autoscaler_when_one_was_found() -> None:
    until = datetime(2026, 11, 23, 12, 5, tzinfo=UTC)
    plain = manual_change_text(POOL, 4, 7, until, [])
    assert plain == (
        f"{POOL}: the count changed from 4 to 7 outside the autoscaler; "
        "holding it until 2026-11-23 12:05 UTC (cooldown)"
    )
    named = manual_change_text(POOL, 4, 7, until, [HPA])
    assert f"outside the autoscaler (another autoscaler scales this fleet: {HPA}); hold" in named


def test_a_failure_to_ask_is_worded_without_its_surprise() -> None:
    assert not_checked_text(POOL, BackendError("listing X failed: HTTP 403")) == (
        f"{POOL}: could not check for another autoscaler: listing X failed: HTTP 403"
    )
    surprise = not_checked_text(POOL, KeyError("token=abc"))
    assert surprise.endswith("unexpected KeyError") and "abc" not in surprise


class _Asked:
    def __init__(self, answer: list[str] | Exception) -> None:
        self.answer, self.calls = answer, 0

    def other_autoscalers(self) -> list[str]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_asked_once_whatever_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[object] = []
    for answer in ([HPA], [], BackendError("timed out"), RuntimeError("surprise")):
        backend, others = _Asked(answer), OtherAutoscalers(POOL)
        told: list[str] = []
        for _ in range(3):
            told = others.ask_once(backend, sent.append, told)  # type: ignore[arg-type]
        assert backend.calls == 1
    assert len(sent) == 1  # the one found: one alert
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "could not check for another autoscaler: timed out" in warnings[1]


# ---- the daemon, against the Kubernetes API double -------------------------------------------


def kubernetes_config(kube: KubernetesApiDouble, tmp_path: Path) -> Path:
    """The daemon's test config, its pool on a deployment of the Kubernetes API double."""
    kube.add_deployment(POOL, replicas=4, ready=4)
    path = write_config(tmp_path)
    config = yaml.safe_load(path.read_text())
    config["pools"][0]["backend"] = {
        "kind": "kubernetes",
        "name": POOL,
        "kubeconfig": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
        "timeout": "2s",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kubernetes_daemon(
    kube: KubernetesApiDouble, tmp_path: Path, notifier: RecordingNotifier
) -> tuple[Daemon, SimulatedClock]:
    clock = SimulatedClock(NOON)
    path = kubernetes_config(kube, tmp_path)
    return Daemon(path, clock=clock, notifier=notifier, env={}), clock


def warnings_of(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and words in r.getMessage()
    ]


def test_slack_is_told_once_per_finding_not_at_every_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A `--once` from cron every minute is a start every minute: each posted the same
    alert. What was told is kept (the pool's state): told again only once it changes."""
    sent: list[object] = []
    told = OtherAutoscalers(POOL).ask_once(_Asked([HPA]), sent.append, [])  # type: ignore[arg-type]
    for _ in range(3):  # three more starts, the same HPA
        told = OtherAutoscalers(POOL).ask_once(_Asked([HPA]), sent.append, told)  # type: ignore[arg-type]
    assert len(sent) == 1 and told == [HPA]
    assert len(warnings_of(caplog, "another autoscaler also scales")) == 4  # the log, each start
    told = OtherAutoscalers(POOL).ask_once(_Asked([]), sent.append, told)  # type: ignore[arg-type]
    assert told == [] and len(sent) == 1  # gone: nothing to tell
    OtherAutoscalers(POOL).ask_once(_Asked([HPA]), sent.append, told)  # type: ignore[arg-type]
    assert len(sent) == 2  # back: told again


def test_an_hpa_on_the_deployment_is_told_at_start_and_again_once_it_changes(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, nothing said an HPA also scaled the deployment: each side took the other's
    counts for changes by hand, held for its cooldown, and went round again."""
    kubernetes_api.hpas.add("default", "image-gen-cpu", ("deployments", POOL), max_replicas=8)
    notifier = RecordingNotifier()
    daemon, clock = kubernetes_daemon(kubernetes_api, tmp_path, notifier)
    run_ticks(daemon, clock, 3)
    told = [t for t in notifier.texts if "another autoscaler also scales" in t]
    assert len(told) == 1 and told[0].startswith(f":rotating_light: {POOL}: another autoscaler")
    assert "HorizontalPodAutoscaler 'image-gen-cpu' (1 to 8 replicas)" in told[0]
    assert "kubectl delete hpa image-gen-cpu -n default" in told[0]
    assert len(warnings_of(caplog, "another autoscaler also scales")) == 1
    hpa_lists = [r for r in kubernetes_api.requests if "horizontalpodautoscalers" in r.path]
    assert len(hpa_lists) == 1
    assert daemon.runtime.tickers[0].backend.read().desired != 4  # it still acted

    daemon.request_reload()
    run_ticks(daemon, clock, 2)
    told = [t for t in notifier.texts if "another autoscaler also scales" in t]
    assert len(told) == 1  # the same HPA: logged again, not posted again
    assert len(warnings_of(caplog, "another autoscaler also scales")) == 2
    kubernetes_api.hpas.add("default", "image-gen-gpu", ("deployments", POOL), max_replicas=6)
    daemon.request_reload()
    run_ticks(daemon, clock, 2)
    told = [t for t in notifier.texts if "another autoscaler also scales" in t]
    assert len(told) == 2 and "image-gen-gpu" in told[1]
    assert DOUBLE_TOKEN not in "".join(notifier.texts) + caplog.text


def test_a_restarted_daemon_does_not_post_the_same_hpa_again(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart (or each `run --once` from cron) is a new daemon: what was told comes
    from the state file it saved, not from memory."""
    kubernetes_api.hpas.add("default", "image-gen-cpu", ("deployments", POOL), max_replicas=8)
    path = kubernetes_config(kubernetes_api, tmp_path)
    notifier = RecordingNotifier()
    for _ in range(2):  # a start, then a restart on the same state file
        clock = SimulatedClock(NOON)
        run_ticks(Daemon(path, clock=clock, notifier=notifier, env={}), clock, 1)
    told = [t for t in notifier.texts if "another autoscaler also scales" in t]
    assert len(told) == 1
    assert len(warnings_of(caplog, "another autoscaler also scales")) == 2


def test_a_count_the_hpa_changed_is_said_to_be_likely_its(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    kubernetes_api.hpas.add("default", "image-gen-cpu", ("deployments", POOL), max_replicas=8)
    notifier = RecordingNotifier()
    daemon, clock = kubernetes_daemon(kubernetes_api, tmp_path, notifier)
    run_ticks(daemon, clock, 1)
    workload = kubernetes_api.workloads[("deployments", "default", POOL)]
    kubernetes_api.scale_by_hand(workload, workload.replicas + 3)  # the HPA acting
    run_ticks(daemon, clock, 1)
    (changed,) = [t for t in notifier.texts if "outside the autoscaler" in t]
    assert "(another autoscaler scales this fleet: HorizontalPodAutoscaler 'image-gen-cpu'" in (
        changed
    )


def test_hpas_not_listable_is_said_once_and_the_daemon_scales_on(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubernetes_api.deny("list", "horizontalpodautoscalers")
    notifier = RecordingNotifier()
    daemon, _ = kubernetes_daemon(kubernetes_api, tmp_path, notifier)
    results = [daemon.tick() for _ in range(3)]
    assert all(not result.errors for (result,) in results)
    assert results[0][0].acted
    (said,) = warnings_of(caplog, "could not check for another autoscaler")
    assert said.startswith(f"{POOL}: could not check for another autoscaler: listing ")
    assert "RBAC list on horizontalpodautoscalers" in said
    assert not [t for t in notifier.texts if "another autoscaler" in t]


class _Held:
    """A leader lock this daemon holds throughout (the active one of a pair)."""

    identity, ttl_s = "ops-1", 60.0

    def acquire_or_renew(self) -> bool:
        return True

    def is_held(self, margin: float = 0.0) -> bool:
        return True

    def release(self) -> None:
        pass

    def holder(self) -> str | None:
        return self.identity

    def peek(self) -> str | None:
        return self.identity


def test_an_hpa_is_told_by_a_daemon_under_leader_election_too(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """Under `leader_election` each pool's backend is wrapped so that its writes check the
    lease: before, the wrapper had no other_autoscalers, so the active daemon of a pair
    never asked and an HPA on the workload went unsaid."""
    kubernetes_api.hpas.add("default", "image-gen-cpu", ("deployments", POOL), max_replicas=8)
    notifier, clock = RecordingNotifier(), SimulatedClock(NOON)
    path = kubernetes_config(kubernetes_api, tmp_path)
    daemon = Daemon(path, clock=clock, notifier=notifier, env={}, leader_lock=_Held())
    run_ticks(daemon, clock, 2)
    told = [t for t in notifier.texts if "another autoscaler also scales" in t]
    assert len(told) == 1 and "HorizontalPodAutoscaler 'image-gen-cpu'" in told[0]


# ---- validate --check-backends ---------------------------------------------------------------


def check_backends(path: Path) -> str:
    result = CliRunner().invoke(app, ["validate", str(path), "--check-backends"], env={})
    return result.output


def test_validate_fails_the_check_naming_the_hpa(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """Before, `validate --check-backends` passed a fleet another autoscaler also scaled."""
    kubernetes_api.hpas.add("default", "image-gen-cpu", ("deployments", POOL), max_replicas=8)
    output = check_backends(kubernetes_config(kubernetes_api, tmp_path))
    assert (
        f"FAILED {POOL}: other autoscalers: another autoscaler also scales this fleet: "
        "HorizontalPodAutoscaler 'image-gen-cpu' (1 to 8 replicas): kubectl delete hpa"
    ) in " ".join(output.split())
    assert f"{POOL}: kubernetes: reachable, target exists" in output


def test_validate_says_none_found_or_why_it_could_not_ask(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    path = kubernetes_config(kubernetes_api, tmp_path)
    assert f"  {POOL}: other autoscalers: none found" in check_backends(path)
    kubernetes_api.deny("list", "horizontalpodautoscalers")
    output = " ".join(check_backends(path).split())
    assert f"{POOL}: other autoscalers: not checked: could not check for another" in output
    assert "RBAC list on horizontalpodautoscalers" in output
    assert f"FAILED {POOL}: other autoscalers" not in output


# ---- a Nomad job group, through python-nomad and slack-sdk against their doubles ------------


def test_a_nomad_scaling_policy_is_posted_to_slack_once(
    nomad_api: NomadApiDouble, slack_api: SlackApiDouble, tmp_path: Path
) -> None:
    """Before, the Nomad Autoscaler and the daemon took turns at the group's count unseen."""
    nomad_api.add_job(
        "ocr-workers", {"gpu": 2}, scaling={"gpu": (1, 20)}, scaling_policy={"gpu": POLICY}
    )
    ticker, clock = make_ticker(nomad_api, slack_api, tmp_path / "d.jsonl", dry_run=False)
    state = PoolState()
    for _ in range(3):
        result = ticker.tick(clock.now(), state, OverridesFile())
        assert not result.errors
        clock.advance(timedelta(minutes=1))
    told = [m.text for m in slack_api.messages if "another autoscaler" in m.text]
    assert len(told) == 1
    assert "the scaling policy of Nomad job 'ocr-workers' group 'gpu' (1 to 20;" in told[0]
    assert "set `enabled = false` in its scaling block" in told[0]
    # asked once; each count written reads the group's scaling bounds besides
    writes = len(nomad_api.requests_to("POST", "/v1/job/ocr-workers/scale"))
    assert len(nomad_api.requests_to("GET", "/v1/job/ocr-workers")) == 1 + writes
