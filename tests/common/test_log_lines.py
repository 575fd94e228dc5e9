"""What the daemon writes to stderr under systemd (journald): one JSON object per line,
whatever a library has to say. Runs `autoscaler run --once` as a child process, with the
real Kubernetes client against the Kubernetes API double (HTTPS, a throwaway CA)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.autoscaler.test_daemon import write_config
from tests.doubles.kubernetes_api import KubernetesApiDouble

ROOT = Path(__file__).resolve().parents[2]


def test_a_library_warning_is_one_json_line_once_per_host(tmp_path: Path) -> None:
    """With verify_tls: false (allow_insecure: true), urllib3 warns of every unverified
    request; Python printed each as two plain lines beside the JSON ones (its source line
    and `warnings.warn(`), three requests a tick, so the journal filled with lines no JSON
    reader takes. Now a WARNING line of its own, said once for the host."""
    with KubernetesApiDouble(tls=True) as kube:
        kube.add_deployment("ocr", 3, ready=3)
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", with_ca=False)
        path = write_config(tmp_path)
        config = yaml.safe_load(path.read_text())
        config["pools"][0]["backend"] = {
            "kind": "kubernetes",
            "name": "ocr",
            "kubeconfig": str(kubeconfig),
            "verify_tls": False,
            "allow_insecure": True,
        }
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "autoscaler.cli.main", "run", "--once", "--config", str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        assert len(kube.requests) >= 2  # the fleet was read: more than one unverified call
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # each one JSON
    warned = [line for line in lines if "Unverified HTTPS request" in line["message"]]
    assert len(warned) == 1, done.stderr
    assert warned[0]["levelname"] == "WARNING"


def test_each_line_to_the_journal_carries_its_level(tmp_path: Path) -> None:
    """journald filed every JSON line at info (priority 6), errors and warnings with it:
    `journalctl -u autoscaler -p warning` showed nothing of a failing pool. Where stderr
    is the journal's stream ($JOURNAL_STREAM names its device:inode, systemd.exec(5)),
    each line starts with its syslog level, `<4>` for a WARNING, which journald takes as
    the line's priority and strips (SyslogLevelPrefix=, on by default)."""
    path = write_config(tmp_path)  # a replayed trace of 1995: every pool's metrics fail
    journal = tmp_path / "journal-stream"
    with journal.open("w") as stream:
        info = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        subprocess.run(
            [sys.executable, "-m", "autoscaler.cli.main", "run", "--once", "--config", str(path)],
            stderr=stream,
            stdout=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    lines = journal.read_text().splitlines()
    levels = {"DEBUG": "7", "INFO": "6", "WARNING": "4", "ERROR": "3", "CRITICAL": "2"}
    prefixed = [re.fullmatch(r"<(\d)>(\{.*\})", line) for line in lines]
    assert all(prefixed), lines
    for match in prefixed:
        assert match is not None and match[1] == levels[json.loads(match[2])["levelname"]]
    assert {"4", "6"} <= {match[1] for match in prefixed if match is not None}


def test_why_a_start_was_refused_reaches_the_journal_as_an_error(tmp_path: Path) -> None:
    """A service refused at its start (an invalid config, exit 2, which the unit does not
    restart) said why at info: `journalctl -u autoscaler -p err` showed only systemd's
    'Failed with result exit-code', not the file, line and field to fix. Where stderr is
    the journal's, each line of a command's error text now begins with `<3>` (err)."""
    path = tmp_path / "config.yaml"
    path.write_text("interval: 1m\npools: []\nno_such_key: 1\n")
    journal = tmp_path / "journal-stream"
    with journal.open("w") as stream:
        info = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        done = subprocess.run(
            [sys.executable, "-m", "autoscaler.cli.main", "run", "--config", str(path)],
            stderr=stream,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2
    lines = journal.read_text().splitlines()
    assert f"<3>{path}:3: no_such_key: unknown key 'no_such_key'" in " ".join(lines)
    assert len(lines) == 3 and all(line.startswith("<3>") for line in lines), lines
