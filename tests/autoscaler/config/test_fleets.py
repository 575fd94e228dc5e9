"""Two pools on one fleet (autoscaler/config/fleets.py): refused by the loader that
`validate`, `run` and a reload share, at the second pool's backend line, the first
pool's file and line in the message; pools on fleets that only look alike pass."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autoscaler.config.loader import load_config
from autoscaler.config.problems import ConfigError
from autoscaler.config.validate import validate_files

MAIN = """\
state_dir: state
metrics: {kind: replay, trace: trace.csv}
pools:
  - name: chat
    backend: FIRST
    demand: {query: up}
    capacity: {per_node_rps: 2}
    max_nodes: 8
  - name: chat-batch
    backend: SECOND
    demand: {query: up}
    capacity: {per_node_rps: 2}
    max_nodes: 8
"""
NOMAD = "{kind: nomad_job, address: 'https://nomad.internal:4646', job: llm, group: gpu}"
ASG = "{kind: aws_asg, group: gpu-a10g, region: eu-west-1}"
K8S = "{kind: kubernetes, namespace: ml, name: llm}"


def layout(tmp_path: Path, first: str, second: str) -> Path:
    (tmp_path / "trace.csv").write_text("timestamp,requests\n2026-01-05T00:00:00Z,60\n")
    text = MAIN.replace("FIRST", first).replace("SECOND", second)
    path = tmp_path / "autoscaler.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("first", "second", "what"),
    [
        (NOMAD, NOMAD.replace(":4646'", ":4646/'"), "Nomad job 'llm' group 'gpu'"),
        (ASG, ASG, "Auto Scaling group 'gpu-a10g'"),
        (
            "{kind: nomad_cluster, asg: gpu-a10g, aws_region: eu-west-1, node_class: a}",
            ASG,
            "Auto Scaling group 'gpu-a10g'",
        ),
        (
            "{kind: nomad_cluster, asg: gpu-a10g, aws_region: eu-west-1, node_class: a}",
            "{kind: nomad_cluster, asg: gpu-a10g, aws_region: eu-west-1, node_class: b}",
            "Auto Scaling group 'gpu-a10g'",
        ),
        (K8S, K8S, "deployment 'llm'"),
    ],
)
def test_two_pools_writing_one_fleet_are_refused_naming_both_lines(
    tmp_path: Path, first: str, second: str, what: str
) -> None:
    """Both passed, and each pool took the other's writes for changes by hand: alerts
    and cooldowns round and round, the fleet at whichever count was written last."""
    path = layout(tmp_path, first, second)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (path, 10, "pools[1].backend")
    assert f"pool 'chat-batch' scales the same {what} as pool 'chat' ({path}:5)" in str(problem)
    _, problems = validate_files(path, env={})
    assert [str(p) for p in problems] == [str(problem)]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (NOMAD, NOMAD.replace("group: gpu", "group: gpu-small")),
        (NOMAD, NOMAD.replace("job: llm", "job: embed")),
        (NOMAD, NOMAD.replace("}", ", namespace: staging}")),
        (ASG, ASG.replace("eu-west-1", "us-east-1")),
        (K8S, K8S.replace("}", ", workload: statefulset}")),
        (K8S, K8S.replace("ml", "ml-staging")),
        ("{kind: simulated}", "{kind: simulated}"),
    ],
)
def test_pools_on_fleets_that_only_look_alike_pass(tmp_path: Path, first: str, second: str) -> None:
    path = layout(tmp_path, first, second)
    assert [p.name for p in load_config(path, env={}).pools] == ["chat", "chat-batch"]


def test_a_dry_run_pool_may_watch_a_fleet_another_pool_scales(tmp_path: Path) -> None:
    path = layout(tmp_path, ASG, ASG)
    path.write_text(
        path.read_text().replace("max_nodes: 8\n", "max_nodes: 8\n    dry_run: true\n", 1)
    )
    assert [p.dry_run for p in load_config(path, env={}).pools] == [True, False]


def test_a_pool_file_on_a_main_pools_fleet_names_both_files(tmp_path: Path) -> None:
    path = layout(tmp_path, ASG, K8S)
    path.write_text(path.read_text() + "pool_dir: pools.d\n")
    (tmp_path / "pools.d").mkdir()
    pool_file = tmp_path / "pools.d" / "chat-eu.yaml"
    pool_file.write_text(
        f"demand: {{query: up}}\ncapacity: {{per_node_rps: 2}}\nbackend: {ASG}\nmax_nodes: 4\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (pool_file, 3, "backend")
    assert "pool 'chat-eu' scales the same Auto Scaling group 'gpu-a10g'" in problem.message
    assert f"as pool 'chat' ({path}:5)" in problem.message
