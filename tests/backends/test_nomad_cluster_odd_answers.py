"""NomadCluster against odd node listings: python-nomad against the double of the
documented Nomad HTTP API (tests/doubles/nomad_api.py, nodes in nomad_nodes.py), which
sends them in place of its own, and boto3 against moto's server."""

from __future__ import annotations

from typing import Any

import pytest

from backends.base import BackendError
from tests.backends.test_nomad_cluster import Cluster, cluster
from tests.doubles.moto_server import aws, moto_server
from tests.doubles.nomad_api import nomad_api

__all__ = ["aws", "cluster", "moto_server", "nomad_api"]  # fixtures, used by name below


@pytest.mark.parametrize(
    "damage",
    [
        lambda stub: {k: v for k, v in stub.items() if k != "ID"},
        lambda stub: {**stub, "ID": None},
        lambda stub: None,
        lambda stub: stub["ID"],
    ],
    ids=["no ID", "ID null", "stub null", "stub a string"],
)
def test_a_node_listing_of_odd_shape_is_a_backend_error(cluster: Cluster, damage: Any) -> None:
    """Against the double of the documented Nomad HTTP API, listing (GET /v1/nodes) a node
    stub that is not a NodeListStub with an ID. Before, check() passed on most of them, and
    read() and scale() raised KeyError, TypeError or AttributeError (a tick failed as a
    'tick' surprise; `validate --check-backends` would end in a traceback) or asked for
    node "None"; now each is a BackendError, and nothing is drained."""
    cluster.arrange([0, 1, 2])
    normal = cluster.nomad.node_api.stub
    cluster.nomad.node_api.stub = lambda node: damage(normal(node))  # type: ignore[method-assign]
    backend = cluster.backend()
    for call in (backend.check, backend.read, lambda: backend.scale(1, "night")):
        with pytest.raises(BackendError, match="listing Nomad nodes"):
            call()
    assert cluster.writes() == []
    assert cluster.desired() == 3


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (lambda node, normal: "a node", "reading node"),
        (lambda node, normal: [normal], "reading node"),
    ],
    ids=["node a string", "node a list"],
)
def test_a_node_read_of_odd_shape_is_a_backend_error(
    cluster: Cluster, answer: Any, said: str
) -> None:
    """Against the double of the documented Nomad HTTP API, GET /v1/node/:id answering
    something other than a Node object. Before, a scale-in raised AttributeError (a 'tick'
    surprise); now a BackendError, and nothing is drained."""
    cluster.arrange([0, 0, 0])
    normal = cluster.nomad.node_api.node_json
    cluster.nomad.node_api.node_json = lambda node: answer(node, normal(node))  # type: ignore[method-assign]
    with pytest.raises(BackendError, match=said):
        cluster.backend().scale(1, "night")
    assert cluster.writes() == []
    assert cluster.desired() == 3


def test_an_allocation_listing_of_odd_shape_is_never_an_idle_node(cluster: Cluster) -> None:
    """Against the double of the documented Nomad HTTP API, GET /v1/node/:id/allocations
    answering a list of strings (or an object). Before, a list of strings raised
    AttributeError and an object was counted as no allocation, an idle node a scale-in
    would pick first; now a BackendError, and nothing is drained."""
    cluster.arrange([0, 3, 3])
    route = cluster.nomad.node_api.route

    def odd(method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if parts[-1:] == ["allocations"]:
            return 200, odd.answer
        return route(method, parts, query, body)

    cluster.nomad.node_api.route = odd  # type: ignore[method-assign]
    for odd.answer in (["an allocation"], {"Allocations": []}):  # type: ignore[attr-defined]
        with pytest.raises(BackendError, match="listing allocations of node"):
            cluster.backend().scale(2, "night")
        assert cluster.writes() == []
        assert cluster.desired() == 3


def test_node_fields_of_odd_shape_leave_the_node_alone(cluster: Cluster) -> None:
    """Against the double of the documented Nomad HTTP API, a Node whose Attributes and
    Meta are not objects: such a node has no instance ID, so it is never drained (before,
    AttributeError)."""
    cluster.arrange([0, 0, 0])
    normal = cluster.nomad.node_api.node_json
    damaged = lambda node: {**normal(node), "Attributes": "x", "Meta": ["y"]}  # noqa: E731
    cluster.nomad.node_api.node_json = damaged  # type: ignore[method-assign]
    cluster.backend().scale(1, "night")
    assert [w for w in cluster.writes() if "drain" in w[1]] == []


@pytest.mark.parametrize(
    ("busy", "damage"),
    [
        ([3, 4], lambda node: {k: v for k, v in node.items() if k not in _DRAIN_FIELDS}),
        (
            [3, 4],
            lambda node: (
                {k: v for k, v in node.items() if k not in _DRAIN_FIELDS[:2]}
                | {"SchedulingEligibility": "eligible"}
            ),
        ),
        (
            [0, 4],
            lambda node: {k: v for k, v in node.items() if k != "DrainStrategy"} | {"Drain": 0},
        ),
    ],
    ids=["drain fields left out", "no drain fields, eligible", "idle node, no DrainStrategy"],
)
def test_a_draining_node_that_does_not_say_it_drains_is_left_as_it_is(
    cluster: Cluster, busy: list[int], damage: Any
) -> None:
    """Against the double of the documented Nomad HTTP API, whose Node for a node being
    drained (GET /v1/node/:id) leaves out, or sends odd values in, the fields that say
    whether it drains and is eligible. Before, a busy node read as a drain that stopped
    and was given back (drain cancelled, made eligible), or, said to be eligible, as a
    drain cancelled by hand and dropped from the scale-in (left draining, then ineligible
    for good); an idle one read as drained and its instance was terminated mid-drain. Now
    the read is a BackendError naming the node, nothing is changed, and the scale-in goes
    on once the answers are whole."""
    nodes = cluster.arrange(busy, drain_seconds=None)  # drains end when the test says
    backend = cluster.backend()
    backend.scale(1, "night")
    chosen = nodes[0]
    assert chosen.drain_strategy is not None
    normal = cluster.nomad.node_api.node_json
    cluster.nomad.node_api.node_json = lambda node: damage(normal(node))  # type: ignore[method-assign]
    writes = len(cluster.writes())
    with pytest.raises(BackendError, match="node gpu-0: its Node does not say whether it drains"):
        backend.read()
    assert len(cluster.writes()) == writes
    assert chosen.drain_strategy is not None and chosen.eligibility == "ineligible"
    assert chosen.instance_id in cluster.instances() and cluster.desired() == 2
    cluster.nomad.node_api.node_json = normal  # type: ignore[method-assign]
    cluster.nomad.finish_drain(chosen.id)
    assert backend.read().desired == 1
    assert cluster.instances() == {nodes[1].instance_id}


_DRAIN_FIELDS = ("Drain", "DrainStrategy", "SchedulingEligibility")
