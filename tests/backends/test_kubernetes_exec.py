"""A kubeconfig user's exec credential plugin (users[].user.exec), run by the real
`kubernetes` client's loader against the API double (tests/doubles/kubernetes_api.py);
the plugins are shell scripts speaking the ExecCredential protocol as documented
(client.authentication.k8s.io/v1: KUBERNETES_EXEC_INFO in, an ExecCredential out)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from backends.base import BackendError
from backends.kubernetes import KubernetesBackend, KubernetesWorkload
from tests.doubles.kubernetes_api import DOUBLE_TOKEN, KubernetesApiDouble, kubernetes_api
from tests.doubles.kubernetes_objects import kubeconfig_document

__all__ = ["kubernetes_api"]  # the fixture, used by name below

NAME = "face-match"
API_VERSION = "client.authentication.k8s.io/v1"


def with_plugin(double: KubernetesApiDouble, tmp_path: Path, script: str) -> KubernetesWorkload:
    """A backend whose kubeconfig user is `script`, an exec plugin."""
    plugin = tmp_path / "cloud-login"
    plugin.write_text("#!/bin/sh\n" + script)
    plugin.chmod(0o755)
    document = kubeconfig_document(double.url, {"double": {"token": ""}}, "double")
    document["users"][0]["user"] = {
        "exec": {"apiVersion": API_VERSION, "command": str(plugin), "interactiveMode": "Never"}
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(document))
    settings = KubernetesBackend(
        kind="kubernetes", name=NAME, kubeconfig=kubeconfig, timeout="0.4s", retries=0
    )
    return KubernetesWorkload(settings, env={})


def read_in_thread(backend: KubernetesWorkload) -> BaseException | None:
    """The read's error; a read still waiting after a minute fails the test."""
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            backend.read()
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(60)
    if reader.is_alive():
        pytest.fail("the read waited on the plugin")
    return outcome[0] if outcome else None


def test_a_plugins_token_is_sent(kubernetes_api: KubernetesApiDouble, tmp_path: Path) -> None:
    kubernetes_api.add_deployment(NAME, replicas=4, ready=3)
    backend = with_plugin(
        kubernetes_api,
        tmp_path,
        'case "$KUBERNETES_EXEC_INFO" in *\'"kind": "ExecCredential"\'*) ;; *) exit 3;; esac\n'
        f'echo \'{{"apiVersion": "{API_VERSION}", "kind": "ExecCredential", '
        f'"status": {{"token": "{DOUBLE_TOKEN}"}}}}\'\n',
    )
    assert read_in_thread(backend) is None
    assert kubernetes_api.requests[-1].headers["authorization"] == f"Bearer {DOUBLE_TOKEN}"


def test_a_hung_plugin_is_killed_and_named(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """The client waited on the plugin with no timeout: the pool's tick was held for ever,
    its error (the tick's deadline) naming nothing. The plugin (and a child of its holding
    the pipe) is killed after the whole answer's bound, twice the block's timeout."""
    pids = tmp_path / "pids"
    backend = with_plugin(kubernetes_api, tmp_path, f'sleep 300 &\necho "$$ $!" > {pids}\nwait\n')
    try:
        error = read_in_thread(backend)
        assert isinstance(error, BackendError), error
        assert str(error) == (
            "kubeconfig user 'double-user' (context 'double'): exec plugin 'cloud-login': "
            "gave no answer within 0.8 s; killed"
        )
        for pid in map(int, pids.read_text().split()):
            assert _ends(pid), pid
        assert kubernetes_api.requests == []
    finally:
        for pid in map(int, pids.read_text().split()) if pids.exists() else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_failing_plugin_is_named_not_sent_on_as_no_credentials(
    kubernetes_api: KubernetesApiDouble, tmp_path: Path
) -> None:
    """The client logged the plugin's failure and called the API server anonymously: the
    error said the server refused the credentials (401), not that the plugin failed."""
    backend = with_plugin(kubernetes_api, tmp_path, "echo 'SSO session expired' >&2\nexit 1\n")
    error = read_in_thread(backend)
    assert isinstance(error, BackendError), error
    assert str(error) == (
        "kubeconfig user 'double-user' (context 'double'): exec plugin 'cloud-login': "
        "exited with status 1: SSO session expired"
    )
    assert kubernetes_api.requests == []


def _ends(pid: int, within_s: float = 10.0) -> bool:
    """Gone (or a zombie) within `within_s`: a SIGKILL is delivered when the process is
    next scheduled, which a loaded machine can put off past an immediate look."""
    until = time.monotonic() + within_s
    while _running(pid):
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
