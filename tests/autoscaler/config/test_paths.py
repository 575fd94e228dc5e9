"""Every path in the config is relative to the config file's folder, whatever block it is in."""

from __future__ import annotations

import os
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from autoscaler.config.loader import load_config
from autoscaler.config.schema import Config

# Every Path field once, as a relative path; metrics is prometheus (ca_file) here,
# replay (trace) in REPLAY, a bearer token file in BEARER. Four pools, so every kind of
# backend with a path (a kubeconfig, a Nomad token_file) appears.
RELATIVE = """\
interval: 1m
state_dir: state
decision_log: logs/decisions.jsonl
overrides_file: overrides.yaml
metrics:
  kind: prometheus
  url: https://prometheus.internal:9090
  ca_file: tls/prometheus-ca.pem
  basic_auth: {username: autoscaler, password_file: secrets/prometheus-password}
  client_cert: {cert_file: tls/client.pem, key_file: tls/client-key.pem}
slack:
  channel: "#gpu"
  token_file: secrets/slack-token
leader_election:
  kind: kubernetes
  ttl: 2m
  kubeconfig: kube/lease.yaml
  token_file: secrets/nomad-lock-token
pools:
  - name: ocr
    backend: {kind: kubernetes, name: ocr, kubeconfig: kube/pool.yaml}
    demand: {query: up}
    capacity: {profile: profiles/a10g.yaml}
    max_nodes: 4
  - name: face
    backend: {kind: simulated}
    demand: {query: up}
    capacity: {per_node_rps: 2}
    max_nodes: 4
  - name: asr
    backend: {kind: nomad_job, job: asr, group: gpu, token_file: secrets/nomad-token}
    demand: {query: up}
    capacity: {per_node_rps: 2}
    max_nodes: 4
  - name: tts
    backend: {kind: nomad_cluster, asg: tts, token_file: secrets/nomad-cluster-token}
    demand: {query: up}
    capacity: {per_node_rps: 2}
    max_nodes: 4
"""

REPLAY = """\
state_dir: state
metrics: {kind: replay, trace: traces/week.csv}
pool_dir: pools.d
pools:
  - name: ocr
    backend: {kind: simulated}
    demand: {query: up}
    capacity: {per_node_rps: 2}
    max_nodes: 4
"""

BEARER = """\
state_dir: state
metrics: {kind: prometheus, bearer_token_file: secrets/prometheus-token}
pools:
  - name: ocr
    backend: {kind: simulated}
    demand: {query: up}
    capacity: {per_node_rps: 2}
    max_nodes: 4
"""

EXPECTED = {
    ("Config", "state_dir"): "state",
    ("Config", "decision_log"): "logs/decisions.jsonl",
    ("Config", "overrides_file"): "overrides.yaml",
    ("PrometheusMetrics", "ca_file"): "tls/prometheus-ca.pem",
    ("BasicAuth", "password_file"): "secrets/prometheus-password",
    ("ClientCertificate", "cert_file"): "tls/client.pem",
    ("ClientCertificate", "key_file"): "tls/client-key.pem",
    ("PrometheusMetrics", "bearer_token_file"): "secrets/prometheus-token",
    ("SlackConfig", "token_file"): "secrets/slack-token",
    ("LeaderElection", "kubeconfig"): "kube/lease.yaml",
    ("LeaderElection", "token_file"): "secrets/nomad-lock-token",
    ("NomadJobBackend", "token_file"): "secrets/nomad-token",
    ("NomadClusterBackend", "token_file"): "secrets/nomad-cluster-token",
    ("KubernetesBackend", "kubeconfig"): "kube/pool.yaml",
    ("Capacity", "profile"): "profiles/a10g.yaml",
    ("ReplayMetrics", "trace"): "traces/week.csv",
    ("Config", "pool_dir"): "pools.d",
}


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "autoscaler.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def path_values(model: BaseModel) -> Iterator[tuple[tuple[str, str], Path]]:
    """((model class, field), value) for every Path set anywhere in a loaded config."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Path):
                yield (type(model).__name__, name), item
            elif isinstance(item, BaseModel):
                yield from path_values(item)


def path_fields(model: type[BaseModel]) -> set[tuple[str, str]]:
    """(model class, field) for every field that can hold a Path, in every model reachable."""
    found: set[tuple[str, str]] = set()
    for name, info in model.model_fields.items():
        for kind in _types_in(info.annotation):
            if kind is Path:
                found.add((model.__name__, name))
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= path_fields(kind)
    return found


def _types_in(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated, list, dict):
        args = typing.get_args(annotation)
        for arg in args[:1] if origin is typing.Annotated else args:
            yield from _types_in(arg)
    else:
        yield annotation


def test_every_relative_path_is_resolved_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "autoscaler"  # not the working directory
    covered: set[tuple[str, str]] = set()
    pool_file = folder / "replay" / "pools.d" / "face.yaml"
    pool_file.parent.mkdir(parents=True)
    pool_file.write_text(
        "backend: {kind: simulated}\ndemand: {query: up}\n"
        "capacity: {per_node_rps: 1}\nmax_nodes: 2\n"
    )
    for name, text in {"main": RELATIVE, "replay": REPLAY, "bearer": BEARER}.items():
        config = load_config(write(folder / name, text))
        for key, value in path_values(config):
            assert value == folder / name / EXPECTED[key], key
            covered.add(key)
    assert covered == path_fields(Config), "the configs above must set every Path field"
    assert covered == set(EXPECTED)


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    text = RELATIVE
    for relative in EXPECTED.values():
        text = text.replace(f" {relative}", f" {elsewhere / relative}")
    config = load_config(write(tmp_path / "etc", text))
    found = dict(path_values(config))
    assert len(found) == len(EXPECTED) - 3  # all but REPLAY's trace and pool_dir, BEARER's file
    for key, value in found.items():
        assert value == elsewhere / EXPECTED[key], key


def test_home_paths_go_to_the_home_folder_not_under_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = RELATIVE.replace("kube/pool.yaml", "~/.kube/config")
    config = load_config(write(tmp_path / "etc", text))
    backend = config.pools[0].backend
    assert getattr(backend, "kubeconfig", None) == tmp_path / "home" / ".kube" / "config"


def test_each_file_of_a_kubeconfig_list_is_resolved(tmp_path: Path) -> None:
    listed = os.pathsep.join(["kube/a.yaml", str(tmp_path / "abs.yaml")])
    text = RELATIVE.replace("kube/lease.yaml", listed)
    config = load_config(write(tmp_path / "etc", text))
    assert config.leader_election is not None
    assert str(config.leader_election.kubeconfig).split(os.pathsep) == [
        str(tmp_path / "etc" / "kube" / "a.yaml"),
        str(tmp_path / "abs.yaml"),
    ]
