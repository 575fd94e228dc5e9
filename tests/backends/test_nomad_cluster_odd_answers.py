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
