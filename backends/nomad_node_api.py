"""The Nomad node endpoints a cluster scale-in uses, through python-nomad, with retries.

Connection settings, retry classification and error wording are those of
backends.nomad_job (one place for the token and TLS rules); this module only
adds the node calls and words 403/404 for nodes rather than jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import nomad.api
from nomad.api.base import Requester
from nomad.api.exceptions import URLNotFoundNomadException

from backends.base import BackendError
from backends.nomad_job import (
    AUTOSCALER_NAME,
    NomadConnection,
    describe_nomad_error,
    is_retryable_nomad_error,
    redact,
    requester_settings,
    response_of,
)
from backends.retry import call_with_retries
from common.deadline import whole_answer_s

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
        if not isinstance(stubs, list):
            raise BackendError("listing Nomad nodes: unexpected answer shape")
        return stubs

    def node(self, node_id: str) -> dict[str, Any] | None:
        return self._call(
            lambda: _none_if_missing(lambda: self._node.get_node(node_id)),
            what=f"reading node {node_id}",
        )

    def allocations(self, node_id: str) -> list[dict[str, Any]]:
        return (
            self._call(
                lambda: _none_if_missing(lambda: self._node.get_allocations(node_id)),
                what=f"listing allocations of node {node_id}",
            )
            or []
        )

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
        """Cancel any drain and make the node eligible, in one documented call."""
        self._call(
            lambda: _none_if_missing(
                lambda: self._node.drain_node_with_spec(node_id, None, mark_eligible=True)
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
        )


def describe_node_error(error: BaseException, connection: NomadConnection, *, writing: bool) -> str:
    """Like describe_nomad_error, with 403/404 worded for node endpoints."""
    response = response_of(error)
    if response is None or response.status_code not in (403, 404):
        return describe_nomad_error(error, connection, "", writing=writing)
    if response.status_code == 404:
        text = f"Nomad at {connection.address} answered HTTP 404"
    elif connection.token is None:
        text = f"Nomad refused the request and ${connection.token_env} is not set: HTTP 403"
    else:
        needs = "node:write" if writing else "node:read"
        text = f"Nomad refused the ACL token from ${connection.token_env} (needs {needs}): HTTP 403"
    return redact(text, connection.token)


def _none_if_missing(operation: Callable[[], Any]) -> Any:
    try:
        return operation()
    except URLNotFoundNomadException:
        return None
