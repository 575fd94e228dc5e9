"""KubernetesWorkload through the real `kubernetes` client against the API double."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
import yaml

from backends.base import BackendError, FleetState
from backends.kubernetes import REASON_ANNOTATION, KubernetesBackend, KubernetesWorkload
from backends.kubernetes_credentials import (
    CredentialSource,
    choose_namespace,
    credential_source,
)
from tests.doubles.kubernetes_api import (
    DOUBLE_TOKEN,
    DOUBLE_USER,
    KubernetesApiDouble,
    kubernetes_api,
)
from tests.doubles.kubernetes_objects import kubeconfig_document

__all__ = ["kubernetes_api"]  # the fixture, used by name below

NAME = "face-match"
DEPLOY = f"/apis/apps/v1/namespaces/default/deployments/{NAME}"
SCALE = f"{DEPLOY}/scale"


def make_backend(
    double: KubernetesApiDouble,
    tmp_path: Path,
    *,
    sleeps: list[float] | None = None,
    env: dict[str, str] | None = None,
    kubeconfig: Path | None = None,
    **overrides: Any,
) -> KubernetesWorkload:
    if kubeconfig is None:
        kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    settings: dict[str, Any] = {
        "kind": "kubernetes",
        "name": NAME,
        "kubeconfig": kubeconfig,
        "timeout": "0.4s",
        "retries": 2,
    }
    settings.update(overrides)
    sleeps = [] if sleeps is None else sleeps
    return KubernetesWorkload(KubernetesBackend(**settings), env=env or {}, sleep=sleeps.append)


@pytest.fixture
def deployment(kubernetes_api: KubernetesApiDouble):
    return kubernetes_api.add_deployment(NAME, replicas=4, ready=3)


# ---- reading ------------------------------------------------------------------------


def test_read_deployment_spec_and_ready_replicas(kubernetes_api, deployment, tmp_path) -> None:
    assert make_backend(kubernetes_api, tmp_path).read() == FleetState(
        desired=4, ready=3, pending=1
    )
    assert [(r.method, r.path) for r in kubernetes_api.requests] == [
        ("GET", SCALE),
        ("GET", DEPLOY),
        ("GET", "/api/v1/namespaces/default/pods"),  # one pending: why (none stuck here)
    ]
    for request in kubernetes_api.requests:
        assert request.headers["authorization"] == f"Bearer {DOUBLE_TOKEN}"
        assert request.headers["user-agent"].startswith("gpu-autoscaler")


def test_read_statefulset(kubernetes_api: KubernetesApiDouble, tmp_path: Path) -> None:
    kubernetes_api.add_statefulset("llm", replicas=3, ready=1, namespace="ml")
    backend = make_backend(
        kubernetes_api, tmp_path, workload="statefulset", name="llm", namespace="ml"
    )
    assert backend.read() == FleetState(desired=3, ready=1, pending=2)
    assert kubernetes_api.requests[0].path == "/apis/apps/v1/namespaces/ml/statefulsets/llm/scale"


def test_absent_ready_replicas_and_zero_scale_read_as_zero(kubernetes_api, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=2, ready=0)
    kubernetes_api.add_statefulset("idle", replicas=0)
    assert make_backend(kubernetes_api, tmp_path).read() == FleetState(2, 0, 2)
    idle = make_backend(kubernetes_api, tmp_path, workload="statefulset", name="idle")
    assert idle.read() == FleetState(0, 0, 0)


def test_pending_is_never_negative(kubernetes_api: KubernetesApiDouble, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=1, ready=3, status_replicas=3)  # scaling in
    assert make_backend(kubernetes_api, tmp_path).read() == FleetState(1, 3, 0)


# ---- scaling ------------------------------------------------------------------------


def test_scale_patches_the_scale_subresource(kubernetes_api, deployment, tmp_path) -> None:
    version_read = str(deployment.resource_version)
    make_backend(kubernetes_api, tmp_path).scale(6, "forecast 420 req/s needs 6 nodes")
    (patch,) = kubernetes_api.requests_to("PATCH", SCALE)
    assert patch.body == {"spec": {"replicas": 6}, "metadata": {"resourceVersion": version_read}}
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    assert deployment.replicas == 6
    assert deployment.annotations[REASON_ANNOTATION] == "forecast 420 req/s needs 6 nodes"
    assert make_backend(kubernetes_api, tmp_path).read().desired == 6


def test_scale_to_zero_and_back(kubernetes_api, deployment, tmp_path) -> None:
    backend = make_backend(kubernetes_api, tmp_path)
    backend.scale(0, "night")
    assert backend.read().desired == 0
    backend.scale(2, "morning")
    assert deployment.replicas == 2


def test_no_write_when_the_count_is_already_right(kubernetes_api, deployment, tmp_path) -> None:
    make_backend(kubernetes_api, tmp_path).scale(4, "steady")
    assert [(r.method, r.path) for r in kubernetes_api.requests] == [("GET", SCALE)]


def test_negative_count_is_refused_before_any_request(kubernetes_api, deployment, tmp_path):
    with pytest.raises(ValueError):
        make_backend(kubernetes_api, tmp_path).scale(-1, "bug")
    assert kubernetes_api.requests == []


def test_a_conflict_is_read_again_and_reapplied(kubernetes_api, deployment, tmp_path) -> None:
    kubernetes_api.conflict_next(2)
    sleeps: list[float] = []
    make_backend(kubernetes_api, tmp_path, sleeps=sleeps).scale(5, "forecast")
    assert len(kubernetes_api.requests_to("PATCH", SCALE)) == 3
    assert len(kubernetes_api.requests_to("GET", SCALE)) == 3  # first read + one per retry
    assert len(sleeps) == 2
    assert deployment.replicas == 5


def test_a_stale_resource_version_is_a_real_conflict(kubernetes_api, deployment, tmp_path):
    """Something else touched the object (not its count) between our read and our write."""
    kubernetes_api.before_next("PATCH", lambda: kubernetes_api._bump(deployment, generation=False))
    make_backend(kubernetes_api, tmp_path).scale(5, "forecast")
    first, second = kubernetes_api.requests_to("PATCH", SCALE)
    assert first.body["metadata"] != second.body["metadata"]
    assert deployment.replicas == 5


def test_a_count_changed_by_hand_meanwhile_is_not_fought(kubernetes_api, deployment, tmp_path):
    kubernetes_api.before_next("PATCH", lambda: kubernetes_api.scale_by_hand(deployment, 9))
    with pytest.raises(
        BackendError, match=r"scaled to 9 by someone else .* 4 -> 5; not overriding"
    ):
        make_backend(kubernetes_api, tmp_path).scale(5, "forecast")
    assert deployment.replicas == 9
    assert len(kubernetes_api.requests_to("PATCH", SCALE)) == 1


def test_a_missing_annotation_permission_does_not_fail_the_scale(
    kubernetes_api, deployment, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    kubernetes_api.deny("patch", "deployments")
    backend = make_backend(kubernetes_api, tmp_path)
    backend.scale(6, "forecast")
    backend.scale(7, "forecast")
    assert deployment.replicas == 7
    assert len(kubernetes_api.requests_to("PATCH", DEPLOY)) == 1  # not asked again
    assert "recording the reason annotation failed" in caplog.text


# ---- failures -----------------------------------------------------------------------


def test_a_5xx_is_retried(kubernetes_api, deployment, tmp_path) -> None:
    kubernetes_api.fail_next(1, status=503, method="GET")
    kubernetes_api.fail_next(2, status=500, method="PATCH")
    sleeps: list[float] = []
    make_backend(kubernetes_api, tmp_path, sleeps=sleeps).scale(6, "forecast")
    assert deployment.replicas == 6
    assert len(sleeps) == 3


def test_gives_up_after_the_configured_retries(kubernetes_api, deployment, tmp_path) -> None:
    kubernetes_api.fail_next(10, status=503, method="PATCH")
    with pytest.raises(BackendError) as caught:
        make_backend(kubernetes_api, tmp_path, retries=1).scale(6, "forecast")
    assert str(caught.value).startswith(
        "scaling deployment 'face-match' in namespace 'default' to 6 failed after 2 attempts: "
        "Kubernetes answered HTTP 503: the server is currently unable to handle the request"
    )
    assert deployment.replicas == 4


def test_a_timeout_is_retried(kubernetes_api, deployment, tmp_path) -> None:
    kubernetes_api.delay_next(1, seconds=2.0)
    sleeps: list[float] = []
    started = time.monotonic()
    assert make_backend(kubernetes_api, tmp_path, sleeps=sleeps, timeout="0.3s").read().desired == 4
    assert time.monotonic() - started < 1.5  # the client gave up after its own timeout
    assert len(sleeps) == 1


def test_timeouts_on_every_attempt_are_reported(kubernetes_api, deployment, tmp_path) -> None:
    kubernetes_api.delay_next(3, seconds=2.0)
    started = time.monotonic()
    with pytest.raises(
        BackendError, match=r"after 3 attempts: no answer from http://127\.0\.0\.1:\d+ within 0.2s"
    ):
        make_backend(kubernetes_api, tmp_path, timeout="0.2s").read()
    assert time.monotonic() - started < 1.5


def test_a_dropped_connection_is_retried(kubernetes_api, deployment, tmp_path) -> None:
    kubernetes_api.drop_next(1, method="PATCH")
    make_backend(kubernetes_api, tmp_path).scale(3, "forecast")
    assert deployment.replicas == 3


def test_nothing_listening_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    double = KubernetesApiDouble()  # never started: only its kubeconfig writer is used
    double.server.server_close()
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace(str(double.port), str(port)))
    sleeps: list[float] = []
    with pytest.raises(BackendError, match=r"after 2 attempts: connection to .* failed \(Conn"):
        make_backend(double, tmp_path, kubeconfig=kubeconfig, retries=1, sleeps=sleeps).read()
    assert len(sleeps) == 1


def test_not_found_is_clear_and_not_retried(kubernetes_api, tmp_path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=2, namespace="ml")
    sleeps: list[float] = []
    with pytest.raises(BackendError) as caught:
        make_backend(kubernetes_api, tmp_path, sleeps=sleeps).scale(3, "x")
    assert "deployment 'face-match' not found in namespace 'default'" in str(caught.value)
    assert len(kubernetes_api.requests) == 1
    assert sleeps == []


def test_forbidden_names_the_user_and_the_permission(kubernetes_api, deployment, tmp_path):
    kubernetes_api.deny("patch", "deployments/scale")
    sleeps: list[float] = []
    with pytest.raises(BackendError) as caught:
        make_backend(kubernetes_api, tmp_path, sleeps=sleeps).scale(6, "forecast")
    message = str(caught.value)
    assert f'User "{DOUBLE_USER}" cannot patch resource "deployments/scale"' in message
    assert "kubeconfig user 'double-user' (context 'double')" in message
    assert "it needs RBAC patch on deployments/scale in API group apps" in message
    assert len(kubernetes_api.requests_to("PATCH", SCALE)) == 1
    assert sleeps == []


def test_a_webhook_denial_is_said_as_such_not_as_missing_rbac(kubernetes_api, deployment, tmp_path):
    """A validating admission webhook (a policy capping replicas) refuses the write with a
    403, as RBAC does: it was told as 'it needs RBAC patch on deployments/scale', sending
    people to roles they already have instead of to the policy."""
    kubernetes_api.deny_admission = ("replica-cap.policy.example", "at most 5 replicas here")
    with pytest.raises(BackendError) as caught:
        make_backend(kubernetes_api, tmp_path).scale(6, "forecast")
    message = str(caught.value)
    assert 'admission webhook "replica-cap.policy.example" denied the request' in message
    assert "at most 5 replicas here" in message and "RBAC" not in message
    assert deployment.replicas == 4


def test_forbidden_read_says_get_is_needed(kubernetes_api, deployment, tmp_path) -> None:
    kubernetes_api.deny("get", "deployments")
    with pytest.raises(BackendError, match="needs RBAC get on deployments/scale and deployments"):
        make_backend(kubernetes_api, tmp_path).check()


def test_a_wrong_token_is_401_not_retried_and_never_shown(
    kubernetes_api, deployment, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-0f0f0f-secret"
    kubeconfig = kubernetes_api.write_kubeconfig(
        tmp_path / "kubeconfig", contexts={"double": {"token": wrong}}
    )
    with pytest.raises(BackendError, match="did not accept the credentials of kubeconfig user"):
        make_backend(kubernetes_api, tmp_path, kubeconfig=kubeconfig).read()
    assert len(kubernetes_api.requests) == 2  # once more with the credentials read again
    assert wrong not in caplog.text


def test_a_token_rotated_on_disk_is_read_again_after_a_401(
    kubernetes_api, deployment, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    """A kubeconfig user's tokenFile (a projected service account token, rotated by the
    kubelet or an agent): the client reads it once, when the kubeconfig loads, so once the
    old token was refused every tick failed with a 401 until a restart. Now a 401 loads
    the credentials again and the call is made once more, with the new token."""
    caplog.set_level(logging.DEBUG)
    old, new = "Kq7rZ2wTf9xPm4old", "Hv3nB8yQc6LsJ1new"
    token_file = tmp_path / "token"
    token_file.write_text(old)
    kubernetes_api.tokens = {old: DOUBLE_USER}
    document = kubeconfig_document(kubernetes_api.url, {"double": {"token": ""}}, "double")
    document["users"][0]["user"] = {"tokenFile": str(token_file)}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(document))
    backend = make_backend(kubernetes_api, tmp_path, kubeconfig=kubeconfig)
    assert backend.read().desired == 4
    token_file.write_text(new)  # rotated; the old token no longer accepted
    kubernetes_api.tokens = {new: DOUBLE_USER}
    backend.scale(6, "forecast")
    assert deployment.replicas == 6
    assert backend.read().desired == 6
    assert kubernetes_api.requests[-1].headers["authorization"] == f"Bearer {new}"
    assert old not in caplog.text and new not in caplog.text


def test_token_never_in_logs_or_errors(kubernetes_api, deployment, tmp_path, caplog) -> None:
    """Retries, a refusal, a give-up, an echo and successes, logged at DEBUG (urllib3 too)."""
    caplog.set_level(logging.DEBUG)
    backend = make_backend(kubernetes_api, tmp_path)
    texts = [repr(backend), repr(backend.connection)]
    kubernetes_api.fail_next(1, status=503)
    kubernetes_api.drop_next(1, method="PATCH")
    backend.scale(7, "forecast")
    errors = []
    kubernetes_api.deny("patch", "deployments/scale")
    with pytest.raises(BackendError) as refused:
        backend.scale(8, "again")
    errors.append(refused.value)
    kubernetes_api.fail_next(3, status=502)
    with pytest.raises(BackendError) as gave_up:
        backend.read()
    errors.append(gave_up.value)
    kubernetes_api.denied = set()
    original_route = kubernetes_api.route
    kubernetes_api.route = lambda method, path, headers, body, user, query: (  # a proxy
        400,
        {"kind": "Status", "message": f"bad header {headers['authorization']}", "code": 400},
    )
    with pytest.raises(BackendError) as echoed:
        backend.read()
    kubernetes_api.route = original_route
    errors.append(echoed.value)
    assert "bad header [redacted]" in str(echoed.value)
    for error in errors:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    assert all(
        r.headers["authorization"] == f"Bearer {DOUBLE_TOKEN}" for r in kubernetes_api.requests
    )
    assert DOUBLE_TOKEN not in caplog.text
    for text in texts:
        assert DOUBLE_TOKEN not in text


def test_check_passes_when_reachable_and_present(kubernetes_api, deployment, tmp_path) -> None:
    make_backend(kubernetes_api, tmp_path).check()
    with pytest.raises(BackendError, match="not found"):
        make_backend(kubernetes_api, tmp_path, name="other").check()


# ---- credentials, context and namespace ---------------------------------------------


def two_context_kubeconfig(double: KubernetesApiDouble, path: Path) -> Path:
    return double.write_kubeconfig(
        path,
        contexts={
            "staging": {"token": "staging-token-aaaa", "namespace": "staging"},
            "prod": {"token": DOUBLE_TOKEN, "namespace": "ml"},
        },
        current="staging",
    )


def test_context_and_its_namespace_from_a_kubeconfig(kubernetes_api, tmp_path) -> None:
    kubernetes_api.tokens["staging-token-aaaa"] = "staging-user"
    kubernetes_api.add_deployment(NAME, replicas=2, namespace="staging")
    kubernetes_api.add_deployment(NAME, replicas=5, ready=5, namespace="ml")
    kubernetes_api.add_deployment(NAME, replicas=7, namespace="other")
    kubeconfig = two_context_kubeconfig(kubernetes_api, tmp_path / "kubeconfig")
    assert make_backend(kubernetes_api, tmp_path, kubeconfig=kubeconfig).read().desired == 2
    prod = make_backend(kubernetes_api, tmp_path, kubeconfig=kubeconfig, context="prod")
    assert prod.read() == FleetState(5, 5, 0)
    assert kubernetes_api.requests[-1].headers["authorization"] == f"Bearer {DOUBLE_TOKEN}"
    assert kubernetes_api.requests[-1].path.startswith("/apis/apps/v1/namespaces/ml/")
    pinned = make_backend(
        kubernetes_api, tmp_path, kubeconfig=kubeconfig, context="prod", namespace="other"
    )
    assert pinned.read().desired == 7


def test_kubeconfig_from_the_environment_then_home(kubernetes_api, deployment, tmp_path):
    config_file = kubernetes_api.write_kubeconfig(tmp_path / "from-env")
    kw = {"kubeconfig": None}
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{config_file}"}
    assert make_backend(kubernetes_api, tmp_path, env=env, **kw).read().desired == 4
    (tmp_path / ".kube").mkdir()
    kubernetes_api.write_kubeconfig(tmp_path / ".kube" / "config")
    assert make_backend(kubernetes_api, tmp_path, env={"HOME": str(tmp_path)}, **kw).read()


def test_unknown_context_and_missing_kubeconfig_are_clear(kubernetes_api, tmp_path) -> None:
    kubeconfig = two_context_kubeconfig(kubernetes_api, tmp_path / "kubeconfig")
    with pytest.raises(BackendError, match=r"no context 'dev' \(contexts: prod, staging\)"):
        make_backend(kubernetes_api, tmp_path, kubeconfig=kubeconfig, context="dev").read()
    with pytest.raises(BackendError, match=r"no kubeconfig at .*nowhere .*\$KUBECONFIG"):
        make_backend(kubernetes_api, tmp_path, kubeconfig=tmp_path / "nowhere").read()
    assert kubernetes_api.requests == []


def test_a_kubeconfig_path_that_is_no_regular_file_is_refused_not_waited_on(
    kubernetes_api, deployment, tmp_path
) -> None:
    """$KUBECONFIG lists a FIFO beside a real file (a mistaken `mkfifo`, a process
    substitution): the client library opened it and waited for a writer for ever, holding
    the start. Now the connection is refused naming the path and what it is."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    real = kubernetes_api.write_kubeconfig(tmp_path / "from-env")
    settings = KubernetesBackend(kind="kubernetes", name=NAME, timeout="0.4s", retries=0)
    backend = KubernetesWorkload(settings, env={"KUBECONFIG": f"{real}:{fifo}"})
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _catch(backend.read, outcome), daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # a regression: release the reader (a writer opens and closes)
        with open(fifo, "w"):
            pass
        pytest.fail("the read waited on the FIFO")
    (error,) = outcome
    assert isinstance(error, BackendError), error
    assert re.search(r"kubeconfig .*pipe: not a regular file \(a FIFO\)", str(error)), error
    assert kubernetes_api.requests == []


def _catch(call, outcome: list[BaseException]) -> None:  # type: ignore[no-untyped-def]
    try:
        call()
    except BaseException as exc:  # handed to the test's thread
        outcome.append(exc)


def test_constructing_a_backend_does_no_io(tmp_path: Path) -> None:
    config = KubernetesBackend(kind="kubernetes", name=NAME, kubeconfig=tmp_path / "none")
    KubernetesWorkload(config, env={})  # a missing kubeconfig surfaces on first use


def service_account_dir(tmp_path: Path, double: KubernetesApiDouble, token: str) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(double.ca_file.read_bytes())
    (directory / "namespace").write_text("ml\n")
    return directory


def test_in_cluster_service_account_over_https(tmp_path: Path, caplog) -> None:
    """The pod's token, CA and namespace files, and KUBERNETES_SERVICE_HOST/PORT."""
    caplog.set_level(logging.DEBUG)
    with KubernetesApiDouble(tls=True) as double:
        double.add_deployment(NAME, replicas=3, ready=2, namespace="ml")
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(double.port)}
        config = KubernetesBackend(kind="kubernetes", name=NAME, retries=0)
        backend = KubernetesWorkload(
            config, env=env, service_account_dir=service_account_dir(tmp_path, double, DOUBLE_TOKEN)
        )
        assert backend.read() == FleetState(3, 2, 1)
        backend.scale(4, "forecast")
        assert double.workloads[("deployments", "ml", NAME)].replicas == 4
        assert double.requests[0].headers["authorization"].lower() == f"bearer {DOUBLE_TOKEN}"
        double.deny("get", "deployments/scale")
        with pytest.raises(BackendError, match="Kubernetes refused the pod's service account"):
            backend.read()
    assert DOUBLE_TOKEN not in caplog.text


def test_an_untrusted_certificate_is_not_retried(tmp_path: Path) -> None:
    with KubernetesApiDouble(tls=True) as double:
        double.add_deployment(NAME, replicas=3)
        kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig", with_ca=False)
        sleeps: list[float] = []
        with pytest.raises(BackendError, match=r"TLS failed talking to https://127\.0\.0\.1"):
            make_backend(double, tmp_path, kubeconfig=kubeconfig, sleeps=sleeps).read()
        assert sleeps == []
        insecure = make_backend(double, tmp_path, kubeconfig=kubeconfig, verify_tls=False)
        with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
            assert insecure.read().desired == 3


def test_credential_source_selection() -> None:
    def source(env: dict[str, str], **kw: Any) -> CredentialSource:
        return credential_source(KubernetesBackend(kind="kubernetes", name=NAME, **kw), env)

    in_pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert source(in_pod).in_cluster is True
    assert source({}).in_cluster is False
    assert source(in_pod, in_cluster=False).in_cluster is False
    assert source({}, in_cluster=True).in_cluster is True
    assert source(in_pod, kubeconfig="/etc/kube.yaml") == CredentialSource(False, "/etc/kube.yaml")
    assert source({"HOME": "/home/ops"}).kubeconfig == "/home/ops/.kube/config"
    assert source({"KUBECONFIG": "/a:/b", "HOME": "/h"}, context="prod") == CredentialSource(
        False, "/a:/b", "prod"
    )


def test_namespace_choice() -> None:
    assert choose_namespace("ml", "staging") == "ml"
    assert choose_namespace(None, "staging") == "staging"
    assert choose_namespace(None, None) == "default"
    assert choose_namespace("", " ") == "default"


def test_an_insecure_kubeconfig_is_refused_unless_the_pool_allows_it(
    kubernetes_api, deployment, tmp_path
) -> None:
    """`insecure-skip-tls-verify` in a kubeconfig is an insecure setting like any other."""
    path = kubernetes_api.write_kubeconfig(tmp_path / "kubeconfig", skip_tls_verify=True)
    with pytest.raises(BackendError, match="insecure-skip-tls-verify"):
        make_backend(kubernetes_api, tmp_path, kubeconfig=path).read()
    allowed = make_backend(kubernetes_api, tmp_path, kubeconfig=path, allow_insecure=True)
    assert allowed.read().desired == 4
    assert kubernetes_api.requests  # it did reach the API once allowed


def test_a_rate_limited_answer_is_retried_and_worded(kubernetes_api, deployment, tmp_path) -> None:
    """The API server's rate limits answer 429 in plain text with Retry-After (no Status
    object): retried like a 5xx, and said in the server's words when it lasts."""
    kubernetes_api.fail_next(1, status=429, method="PATCH")
    sleeps: list[float] = []
    make_backend(kubernetes_api, tmp_path, sleeps=sleeps).scale(6, "forecast")
    assert deployment.replicas == 6 and len(sleeps) == 1
    kubernetes_api.fail_next(10, status=429, method="PATCH")
    with pytest.raises(BackendError, match="HTTP 429: Too many requests, please try again later"):
        make_backend(kubernetes_api, tmp_path, retries=1).scale(7, "forecast")
