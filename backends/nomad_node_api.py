"""The Nomad node endpoints a cluster scale-in uses, through python-nomad, with retries.

Connection settings are those of backends.nomad_connection (one place for the token
and TLS rules), retry classification and error wording those of the job backend
(backends.nomad_errors, backends.nomad_job); this module only
adds the node calls and words 403/404 for nodes rather than jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import nomad.api
from nomad.api.base import Requester
from nomad.api.exceptions import BaseNomadException, URLNotFoundNomadException

from backends.base import BackendError
from backends.nomad_connection import AUTOSCALER_NAME, NomadConnection, requester_settings
from backends.nomad_drain import DRAIN_META_KEY, instance_id_of, node_in_pool
from backends.nomad_errors import is_retryable_nomad_error, nomad_retry_after, response_of
from backends.nomad_job import describe_nomad_error, redact
from backends.retry import call_with_retries
from common.deadline import whole_answer_s
from common.tick_circuit import server_of

log = logging.getLogger(__name__)

_NANOSECONDS = 1_000_000_000


class _ClientMetadata(Requester):
    """POST /v1/client/metadata (dynamic node metadata); python-nomad has no class for it."""

    ENDPOINT = "client"


class NomadNodeApi:
    """Nomad's node endpoints; a node that left the cluster reads as None, not an error."""

    def __init__(
        self,
        connection: NomadConnection,
        *,
        retries: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.retries = retries
        self._sleep = sleep
        settings = requester_settings(connection)
        self._nodes = nomad.api.Nodes(**settings)
        self._node = nomad.api.Node(**settings)
        self._metadata = _ClientMetadata(**settings)

    def list_nodes(self) -> list[dict[str, Any]]:
        stubs = self._call(self._nodes.get_nodes, what="listing Nomad nodes")
        if not isinstance(stubs, list) or not all(map(_is_node_stub, stubs)):
            raise BackendError("listing Nomad nodes: unexpected answer shape")
        return stubs

    def node(self, node_id: str) -> dict[str, Any] | None:
        what = f"reading node {node_id}"
        found = self._call(
            lambda: _none_if_missing(lambda: self._node.get_node(node_id)), what=what
        )
        if found is not None and not isinstance(found, dict):
            raise BackendError(f"{what}: unexpected answer shape")
        return found

    def allocations(self, node_id: str) -> list[dict[str, Any]]:
        """A node's allocations ([] for a node that left); an answer that is not a list of
        objects is an error, never read as an idle node (which a scale-in would pick)."""
        what = f"listing allocations of node {node_id}"
        found = self._call(
            lambda: _none_if_missing(lambda: self._node.get_allocations(node_id)), what=what
        )
        found = [] if found is None else found
        if not isinstance(found, list) or not all(isinstance(a, dict) for a in found):
            raise BackendError(f"{what}: unexpected answer shape")
        return found

    def mark_ineligible(self, node_id: str, name: str) -> None:
        self._call(
            lambda: self._node.eligible_node(node_id, ineligible=True),
            what=f"marking node {name} ineligible",
            writing=True,
        )

    def drain(
        self, node_id: str, name: str, *, deadline_s: float, ignore_system_jobs: bool, reason: str
    ) -> None:
        body = {
            "NodeID": node_id,
            "DrainSpec": {
                "Deadline": int(deadline_s * _NANOSECONDS),
                "IgnoreSystemJobs": ignore_system_jobs,
            },
            "MarkEligible": False,
            "Meta": {"source": AUTOSCALER_NAME, "message": reason[:200]},
        }
        self._call(
            lambda: self._node.request(node_id, "drain", json=body, method="post").json(),
            what=f"draining node {name}",
            writing=True,
        )

    def give_back(self, node_id: str, name: str) -> None:
        """Cancel any drain and make the node eligible, in one documented call; a node that
        left Nomad has nothing to give back (Nomad answers a drain update for a node it does
        not know with HTTP 500 "node not found": nomad/node_endpoint.go, Node.UpdateDrain)."""
        self._call(
            lambda: _none_if_missing(
                lambda: self._node.drain_node_with_spec(node_id, None, mark_eligible=True),
                unknown_node_too=True,
            ),
            what=f"giving node {name} back",
            writing=True,
        )

    def set_meta(self, node_id: str, key: str, value: str | None) -> None:
        """Dynamic node metadata (Nomad 1.5+); None unsets the key."""
        body = {"NodeID": node_id, "Meta": {key: value}}
        self._call(
            lambda: self._metadata.request(
                "metadata", method="post", params={"node_id": node_id}, json=body
            ).json(),
            what=f"{'setting' if value else 'unsetting'} meta {key} on node {node_id}",
            writing=True,
        )

    def _call(self, operation: Callable[[], Any], *, what: str, writing: bool = False) -> Any:
        def describe(error: BaseException) -> str:
            return describe_node_error(error, self.connection, writing=writing)

        return call_with_retries(
            operation,
            what=what,
            retries=self.retries,
            is_retryable=is_retryable_nomad_error,
            describe=describe,
            sleep=self._sleep,
            deadline_s=whole_answer_s(self.connection.timeout_s),
            retry_after=nomad_retry_after,
            server=server_of(self.connection.address),
        )


class PoolNodes:
    """The nodes of one pool (its node pool, class and datacenter filters) as a cluster
    scale-in sees them: listed, mapped to their instances, and marked while we drain them."""

    def __init__(
        self,
        api: NomadNodeApi,
        *,
        node_pool: str | None,
        node_class: str | None,
        datacenter: str | None,
        drain_mark: str,
        target: str,
    ) -> None:
        self.api = api
        self.filters = (node_pool, node_class, datacenter)
        self.drain_mark = drain_mark
        self.target = target
        self._instance_of: dict[str, str | None] = {}

    def listed(self) -> list[dict[str, Any]]:
        return [stub for stub in self.api.list_nodes() if node_in_pool(stub, *self.filters)]

    def instance_id(self, node_id: str) -> str | None:
        """A node's instance ID (attributes are read once per node: they do not change)."""
        if node_id not in self._instance_of:
            node = self.api.node(node_id)
            instance_id = instance_id_of(node) if node else None
            if node and instance_id is None:
                log.warning("%s: node %s has no AWS instance ID attribute", self.target, node_id)
            self._instance_of[node_id] = instance_id
        return self._instance_of[node_id]

    def marked(self) -> list[tuple[str, dict[str, Any]]]:
        """The pool's nodes that carry our drain mark, as (ID, the node's document)."""
        nodes = ((stub["ID"], self.api.node(stub["ID"])) for stub in self.listed())
        return [
            (node_id, node)
            for node_id, node in nodes
            if node and _mapping(node.get("Meta")).get(DRAIN_META_KEY) == self.drain_mark
        ]

    def tag(self, node_id: str) -> None:
        self._tag_quietly(node_id, self.drain_mark)

    def untag(self, node_id: str) -> None:
        self._tag_quietly(node_id, None)

    def _tag_quietly(self, node_id: str, value: str | None) -> None:
        """Best effort (Nomad before 1.5 has no dynamic node metadata): the record is the
        main trace; the tag only helps repair when the record is lost, and a stale tag
        only makes such a repair re-check a node that is already eligible."""
        try:
            self.api.set_meta(node_id, DRAIN_META_KEY, value)
        except BackendError as error:
            log.warning("%s: %s", self.target, error)


def describe_node_error(error: BaseException, connection: NomadConnection, *, writing: bool) -> str:
    """Like describe_nomad_error, with 403/404 worded for node endpoints."""
    response = response_of(error)
    if response is None or response.status_code not in (403, 404):
        return describe_nomad_error(error, connection, "", writing=writing)
    if response.status_code == 404:
        text = f"Nomad at {connection.address} answered HTTP 404"
    elif connection.token is None:
        text = f"Nomad refused the request and {connection.credential.source} is not set: HTTP 403"
    else:
        needs = "node:write" if writing else "node:read"
        source = connection.credential.source
        text = f"Nomad refused the ACL token from {source} (needs {needs}): HTTP 403"
    return redact(text, connection.token)


def _mapping(value: object) -> dict[str, Any]:
    """A field that should hold an object, or an empty one where it holds anything else."""
    return value if isinstance(value, dict) else {}


def _is_node_stub(stub: object) -> bool:
    """A NodeListStub as far as a scale-in reads it: an object with a text ID."""
    return isinstance(stub, dict) and isinstance(stub.get("ID"), str) and bool(stub["ID"])


def _none_if_missing(operation: Callable[[], Any], *, unknown_node_too: bool = False) -> Any:
    """None for a 404; with `unknown_node_too`, also for the HTTP 500 "node not found" that
    a node update names a node Nomad does not know with (an uncoded RPC error, which
    Nomad's HTTP agent answers as a 500 with the error's text)."""
    try:
        return operation()
    except URLNotFoundNomadException:
        return None
    except BaseNomadException as error:
        response = response_of(error)
        if (
            unknown_node_too
            and response is not None
            and response.status_code == 500
            and response.text.strip() == "node not found"
        ):
            return None
        raise
