"""KubernetesWorkload against odd answers, through the real `kubernetes` client and the
double of the documented Kubernetes API (tests/doubles/kubernetes_api.py), which sends
them in place of its own: answers a proxy or a broken server in front of the API server
might give, and the API's own answers sent slowly."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from backends.base import BackendError
from tests.backends.test_kubernetes import NAME, make_backend
from tests.doubles.kubernetes_api import DOUBLE_TOKEN, KubernetesApiDouble, kubernetes_api
from tests.faults.test_deadlines import no_more_than, threads_and_files
from tests.support import wait_for

__all__ = ["kubernetes_api"]  # the fixture, used by name below

SCALE_HEAD = {"kind": "Scale", "apiVersion": "autoscaling/v1"}
METADATA = {"name": NAME, "namespace": "default", "resourceVersion": "2001"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Sign in to continue</body></html>", "text/html"),  # a login proxy
        (b"{}", "application/json"),
        (json.dumps({**SCALE_HEAD, "metadata": METADATA}).encode(), "application/json"),
        (json.dumps({**SCALE_HEAD, "spec": {"replicas": 20}}).encode(), "application/json"),
        (
            json.dumps({**SCALE_HEAD, "metadata": METADATA, "spec": {"replicas": -3}}).encode(),
            "application/json",
        ),
    ],
    ids=["html page", "empty object", "no spec", "no metadata", "negative replicas"],
)
def test_an_answer_that_is_not_a_scale_is_an_error_never_a_count_of_zero(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path, body: bytes, content_type: str
) -> None:
    """Against the double of the documented Kubernetes API: a 200 to GET .../scale that
    is not a Scale. Before, the client's empty model read as 0 replicas (or -3) while the
    Deployment ran 20, and a scale() patched from that count; now it is a BackendError
    and nothing is written."""
    kubernetes_api.add_deployment(NAME, replicas=20, ready=18)
    backend = make_backend(kubernetes_api, tmp_path)
    kubernetes_api.answer_next(body, content_type=content_type, method="GET", path="/scale")
    with pytest.raises(BackendError, match="not a Scale"):
        backend.read()
    kubernetes_api.answer_next(body, content_type=content_type, method="GET", path="/scale")
    with pytest.raises(BackendError, match="not a Scale"):
        backend.scale(15, "forecast")
    assert kubernetes_api.requests_to("PATCH", f"{_path(NAME)}/scale") == []
    assert kubernetes_api.workloads[("deployments", "default", NAME)].replicas == 20


@pytest.mark.parametrize("replicas", [5.7, True, "25", None], ids=repr)
def test_a_count_that_is_not_a_whole_number_is_an_error_never_the_clients_reading(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path, replicas: object
) -> None:
    """Against the double of the documented Kubernetes API (replicas is an int32): a Scale
    whose count is 5.7, true, "25" or null. Before, the client's model read them as 5, 1
    and 25 (Nomad's backend refused the same), so a Deployment running 20 read as 1, and
    a scale() patched from that count; now it is a BackendError and nothing is written."""
    kubernetes_api.add_deployment(NAME, replicas=20, ready=18)
    backend = make_backend(kubernetes_api, tmp_path)
    body = json.dumps({**SCALE_HEAD, "metadata": METADATA, "spec": {"replicas": replicas}})
    for action in (backend.read, lambda: backend.scale(15, "forecast")):
        kubernetes_api.answer_next(body.encode(), method="GET", path="/scale")
        with pytest.raises(BackendError, match=f"not a Scale: {replicas!r} replicas"):
            action()
    assert kubernetes_api.requests_to("PATCH", f"{_path(NAME)}/scale") == []
    assert kubernetes_api.workloads[("deployments", "default", NAME)].replicas == 20


def test_a_ready_count_that_is_not_a_whole_number_is_an_error(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """Against the double of the documented Kubernetes API: status.readyReplicas true read
    as 1 ready node; now the Deployment answer is refused."""
    kubernetes_api.add_deployment(NAME, replicas=20, ready=18)
    body = {"kind": "Deployment", "metadata": METADATA, "status": {"readyReplicas": True}}
    kubernetes_api.answer_next(json.dumps(body).encode(), method="GET", path=NAME)
    with pytest.raises(BackendError, match="True ready replicas"):
        make_backend(kubernetes_api, tmp_path).read()


def test_a_workload_answer_that_is_not_a_deployment_is_an_error(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """Against the double of the documented Kubernetes API: a 200 HTML page for GET of the
    Deployment. Before, it read as 0 ready replicas; now it is a BackendError."""
    kubernetes_api.add_deployment(NAME, replicas=20, ready=18)
    kubernetes_api.answer_next(b"<html>maintenance</html>", content_type="text/html", path=NAME)
    with pytest.raises(BackendError, match="not a deployment"):
        make_backend(kubernetes_api, tmp_path).read()


def test_zero_replicas_left_out_of_the_scale_still_reads_as_zero(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """Guard, against the double of the documented Kubernetes API: ScaleSpec.replicas is
    omitempty, so `"spec": {}` is a Scale of 0 replicas."""
    kubernetes_api.add_deployment(NAME, replicas=0)
    assert make_backend(kubernetes_api, tmp_path).read().desired == 0


def _path(name: str) -> str:
    return f"/apis/apps/v1/namespaces/default/deployments/{name}"


def test_a_reason_annotation_answered_a_byte_at_a_time_does_not_hold_the_scale(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Against the double of the documented Kubernetes API, whose answer to the workload
    PATCH (the reason annotation, after the scale landed) comes a byte every 0.05 s: each
    read is within the 0.4 s timeout, the whole answer takes ~40 s. Before, scale() waited
    for all of it (the annotation call had no total deadline); now it gives up after the
    0.8 s every call gets, keeps the scale and warns."""
    deployment = kubernetes_api.add_deployment(NAME, replicas=4, ready=4)
    backend = make_backend(kubernetes_api, tmp_path)
    kubernetes_api.drip_next(0.05, method="PATCH", path=NAME)
    started = time.monotonic()
    backend.scale(6, "forecast")
    assert time.monotonic() - started < 3
    assert deployment.replicas == 6
    assert "recording the reason annotation failed: no answer" in caplog.text


def test_a_read_left_behind_keeps_no_thread_or_socket(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """Against the double of the documented Kubernetes API, whose answers to the Scale
    GET come a byte every 0.05 s, at a 0.3 s timeout: each read fails at its deadline,
    and the call it leaves behind must end too. Before, urllib3 (which reads a body whole)
    read on until the last byte: 5 reads kept 5 threads and 5 sockets for ~15 s each."""
    kubernetes_api.add_deployment(NAME, replicas=4, ready=4)
    backend = make_backend(kubernetes_api, tmp_path, timeout="0.3s", retries=0)
    before = threads_and_files()
    for _ in range(5):
        kubernetes_api.drip_next(0.05, method="GET")
        with pytest.raises(BackendError, match="whole answer"):
            backend.read()
    assert wait_for(lambda: no_more_than(before), timeout=10), (  # others may end meanwhile
        threads_and_files(),
        before,
    )


@pytest.mark.parametrize("as_json", [True, False], ids=["status message", "plain body"])
def test_a_token_echoed_across_the_cut_of_an_error_leaves_no_piece(
    kubernetes_api: KubernetesApiDouble,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    as_json: bool,
) -> None:
    """Against the double of the documented Kubernetes API, answering 400 with a Status
    whose message (or a plain body) quotes the bearer token after 285 characters, so that
    the 300-character cut falls inside it. Before, the message was cut first and redacted
    after: the token's first 14 characters no longer matched it and reached the error and
    the log. Now it is redacted before it is cut."""
    kubernetes_api.add_deployment(NAME, replicas=4)
    backend = make_backend(kubernetes_api, tmp_path)

    def echo(
        method: str, path: str, headers: dict[str, str], body: object, user: str, query: object
    ):
        text = f"{'x' * 285} {headers['authorization'].split()[1]}"
        return 400, ({"kind": "Status", "message": text, "code": 400} if as_json else text)

    kubernetes_api.route = echo  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as caught:
        backend.read()
    texts = str(caught.value) + caplog.text
    assert "HTTP 400" in str(caught.value)
    assert [piece for piece in pieces(DOUBLE_TOKEN) if piece in texts] == []


def pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]
