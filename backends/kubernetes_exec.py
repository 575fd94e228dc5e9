"""A kubeconfig user's exec credential plugin (users[].user.exec), run within a bound.

The client runs the plugin with no timeout: one hung (on a dead metadata endpoint, an
SSO refresh) held the pool's tick for ever, and the tick's error named nothing. Here the
client's loader runs it through BoundedExecProvider: killed past the bound, and named.
The client only logs a plugin that failed and loads no credentials, which reached the
API server as a 401; the failure is also kept for `plugin_runs`' caller to raise.
Imported with the [kubernetes] extra, when a connection is made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.exec_provider import ExecProvider

from common.deadline import whole_answer_s

DEFAULT_BOUND_S = whole_answer_s(10.0)
"""A plugin run outside `plugin_runs` (the client refreshing an expired credential
within a call): the whole answer of the blocks' default timeout."""

_runs = threading.local()


@contextmanager
def plugin_runs(seconds: float) -> Iterator[list[str]]:
    """While within, a plugin this thread runs gets `seconds`; yields what failed."""
    install()
    failures: list[str] = []
    _runs.seconds, _runs.failures = seconds, failures
    try:
        yield failures
    finally:
        del _runs.seconds, _runs.failures


def install() -> None:
    """The client's loader builds its provider by this module-level name."""
    kube_config.ExecProvider = BoundedExecProvider


def _kill(process: subprocess.Popen[str], *, group: bool) -> None:
    """Killed, its pipes closed unread (Popen's exit then reaps it)."""
    with suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()


class BoundedExecProvider(ExecProvider):
    """ExecProvider.run (the ExecCredential protocol, as the client speaks it), the
    process killed past the bound, and every failure naming the plugin."""

    def run(self, previous_response: Any = None) -> dict[str, Any]:
        name = f"exec plugin {Path(self.args[0]).name!r}"
        try:
            return self._run(getattr(_runs, "seconds", DEFAULT_BOUND_S), previous_response)
        except ConfigException as error:
            said = f"{name}: {str(error).removeprefix('exec: ')}"
            failures = getattr(_runs, "failures", None)
            if failures is not None:
                failures.append(said)
            raise ConfigException(said) from None

    def _run(self, seconds: float, previous_response: Any) -> dict[str, Any]:
        interactive = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        spec: dict[str, Any] = {"interactive": interactive}
        if previous_response:
            spec["response"] = previous_response
        if self.cluster:
            spec["cluster"] = self.cluster.value
            for extension in self.cluster.value.get("extensions") or []:
                if extension["name"] == "client.authentication.k8s.io/exec":
                    spec["cluster"]["config"] = extension["extension"]
                    break
        info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        self.env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        with subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=sys.stderr if interactive else subprocess.PIPE,
            stdin=sys.stdin if interactive else subprocess.DEVNULL,
            cwd=self.cwd,
            env=self.env,
            text=True,
            shell=self.shell,
            # its own process group, killed whole: a child left holding the pipe (a shell
            # script's) would hold the read; not when it may prompt on the terminal
            process_group=None if interactive else 0,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=seconds)
            except subprocess.TimeoutExpired:
                _kill(process, group=not interactive)
                raise ConfigException(f"gave no answer within {seconds:g} s; killed") from None
        if process.returncode != 0:
            detail = (stderr or "").strip()
            raise ConfigException(
                f"exited with status {process.returncode}" + (f": {detail}" if detail else "")
            )
        return self._status(stdout)

    def _status(self, stdout: str) -> dict[str, Any]:
        try:
            data = json.loads(stdout)
        except ValueError as error:
            raise ConfigException(f"its output is not an ExecCredential: {error}") from None
        if not isinstance(data, dict):
            raise ConfigException("its output is not an ExecCredential object")
        for key in ("apiVersion", "kind", "status"):
            if key not in data:
                raise ConfigException(f"its ExecCredential has no {key!r}")
        if data["apiVersion"] != self.api_version:
            raise ConfigException(
                f"it answers apiVersion {data['apiVersion']}, not {self.api_version}"
            )
        return dict(data["status"])
