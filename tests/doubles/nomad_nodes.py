"""The client-node part of the Nomad API double (served by tests.doubles.nomad_api).

Shapes follow Nomad's "Nodes - HTTP API" document (api-docs/nodes): "List Nodes"
(GET /v1/nodes, NodeListStub: ID, Name, Datacenter, NodeClass, NodePool, Drain,
SchedulingEligibility, Status, LastDrain...), "Read Node" (GET /v1/node/:node_id,
with Attributes such as unique.platform.aws.instance-id, Meta and DrainStrategy),
"Read Node Allocations" (GET /v1/node/:node_id/allocations, whole Allocations with
their Job), "Drain Node" (POST or PUT /v1/node/:node_id/drain with NodeID,
DrainSpec {Deadline (ns), IgnoreSystemJobs} or null to cancel, MarkEligible) and
"Toggle Node Eligibility" (POST or PUT /v1/node/:node_id/eligibility with
Eligibility "eligible" | "ineligible"); and the "Client - HTTP API" document's
dynamic node metadata (GET and POST /v1/client/metadata, Meta values null to unset).
Errors follow Nomad's HTTP agent (command/agent/node_endpoint.go) and its RPCs
(nomad/node_endpoint.go), worded by command/agent/http.go, which answers an RPC's uncoded
error as HTTP 500 with the error's text: reading a node that is not there is 404 "node
not found" (the agent codes that one), but draining it or setting its eligibility is 500
"node not found" (Node.UpdateDrain and Node.UpdateEligibility return a plain error), and
so are a bad eligibility value and making a draining node eligible; a missing node's
allocations are 200 [] (Node.GetAllocs looks no node up).

A drain ends as Nomad ends one: once the allocations it waits for have stopped,
Drain turns false, DrainStrategy null, LastDrain.Status "complete", and the node
stays ineligible. How fast the allocations stop is up to the test: each node's
`drain_seconds` (0: at once; a number: that many real seconds after the drain
starts; None: only when the test calls `finish_drain`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

INSTANCE_ID_ATTRIBUTE = "unique.platform.aws.instance-id"
_NANOSECONDS = 1_000_000_000


@dataclass
class FakeNode:
    id: str
    name: str
    instance_id: str | None
    datacenter: str = "dc1"
    node_class: str = "gpu"
    node_pool: str = "default"
    status: str = "ready"
    eligibility: str = "eligible"
    drain_strategy: dict[str, Any] | None = None
    last_drain: dict[str, Any] | None = None
    drain_started: float | None = None
    drain_seconds: float | None = 0.0
    meta: dict[str, str] = field(default_factory=dict)
    allocations: list[dict[str, Any]] = field(default_factory=list)
    modify_index: int = 20


def node_allocation(node_id: str, job_id: str, job_type: str = "service") -> dict[str, Any]:
    """An Allocation as GET /v1/node/:node_id/allocations lists it (Job embedded)."""
    return {
        "ID": str(uuid.uuid4()),
        "Namespace": "default",
        "EvalID": str(uuid.uuid4()),
        "Name": f"{job_id}.worker[0]",
        "NodeID": node_id,
        "JobID": job_id,
        "Job": {"ID": job_id, "Name": job_id, "Type": job_type, "Namespace": "default"},
        "TaskGroup": "worker",
        "DesiredStatus": "run",
        "DesiredDescription": "",
        "ClientStatus": "running",
        "ClientDescription": "Tasks are running",
        "TaskStates": {},
        "CreateIndex": 15,
        "ModifyIndex": 15,
    }


class NomadNodes:
    """Node state and the node/client routes; the caller holds the double's lock."""

    def __init__(self) -> None:
        self.nodes: dict[str, FakeNode] = {}
        self.index = 500

    # ---- arranging ---------------------------------------------------------------

    def add(
        self,
        instance_id: str | None,
        *,
        running: int = 0,
        system: int = 0,
        name: str | None = None,
        **kw: Any,
    ) -> FakeNode:
        node_id = str(uuid.uuid4())
        node = FakeNode(
            id=node_id, name=name or f"gpu-{len(self.nodes) + 1}", instance_id=instance_id, **kw
        )
        node.allocations = [node_allocation(node_id, "face-match") for _ in range(running)]
        node.allocations += [
            node_allocation(node_id, "log-shipper", "system") for _ in range(system)
        ]
        self.nodes[node_id] = node
        return node

    def finish_drain(self, node_id: str) -> None:
        """The drain's allocations stop now (migrated elsewhere)."""
        node = self.nodes[node_id]
        node.drain_seconds = 0.0
        self.progress(node)

    def running(self, node: FakeNode) -> list[dict[str, Any]]:
        return [a for a in node.allocations if a["ClientStatus"] in ("running", "pending")]

    # ---- drain progress ------------------------------------------------------------

    def progress(self, node: FakeNode) -> None:
        if node.drain_strategy is None or node.drain_started is None:
            return
        if node.drain_seconds is None or time.monotonic() - node.drain_started < node.drain_seconds:
            return
        ignore_system = bool(node.drain_strategy["DrainSpec"].get("IgnoreSystemJobs"))
        for alloc in node.allocations:
            if ignore_system and alloc["Job"]["Type"] == "system":
                continue
            alloc["DesiredStatus"], alloc["ClientStatus"] = "stop", "complete"
        node.drain_strategy, node.drain_started = None, None
        node.last_drain = {**(node.last_drain or {}), "Status": "complete"}
        self._touch(node)

    def _touch(self, node: FakeNode) -> None:
        self.index += 1
        node.modify_index = self.index

    # ---- answering -----------------------------------------------------------------

    def route(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        for node in self.nodes.values():
            self.progress(node)
        if parts == ["v1", "nodes"] and method == "GET":
            prefix = query.get("prefix", "")
            return 200, [self.stub(n) for n in self.nodes.values() if n.id.startswith(prefix)]
        if parts == ["v1", "client", "metadata"]:
            return self.metadata(method, query, body)
        if len(parts) < 3 or parts[:2] != ["v1", "node"]:
            return 404, "404 page not found"
        node = self.nodes.get(parts[2])
        rest = parts[3:]
        if node is None:
            return self.missing_node(method, rest)
        if method == "GET" and rest == []:
            return 200, self.node_json(node)
        if method == "GET" and rest == ["allocations"]:
            return 200, [dict(a) for a in node.allocations]
        if method in ("POST", "PUT") and rest == ["eligibility"]:
            return self.set_eligibility(node, body)
        if method in ("POST", "PUT") and rest == ["drain"]:
            return self.drain(node, body)
        return 405, "Invalid method"

    @staticmethod
    def missing_node(method: str, rest: list[str]) -> tuple[int, Any]:
        """What Nomad answers about a node ID it does not know (see the module docstring)."""
        if method == "GET" and rest == ["allocations"]:
            return 200, []
        if method in ("POST", "PUT") and rest in (["drain"], ["eligibility"]):
            return 500, "node not found"
        if method == "GET" and rest == []:
            return 404, "node not found"
        return 405, "Invalid method"

    def stub(self, node: FakeNode) -> dict[str, Any]:
        return {
            "Address": "10.0.0.1",
            "ID": node.id,
            "Name": node.name,
            "Datacenter": node.datacenter,
            "NodeClass": node.node_class,
            "NodePool": node.node_pool,
            "Version": "1.9.3",
            "Drain": node.drain_strategy is not None,
            "SchedulingEligibility": node.eligibility,
            "Status": node.status,
            "StatusDescription": "",
            "LastDrain": node.last_drain,
            "CreateIndex": 10,
            "ModifyIndex": node.modify_index,
        }

    def node_json(self, node: FakeNode) -> dict[str, Any]:
        attributes = {"kernel.name": "linux", "os.name": "ubuntu", "unique.hostname": node.name}
        if node.instance_id is not None:
            attributes[INSTANCE_ID_ATTRIBUTE] = node.instance_id
        return {
            **self.stub(node),
            "HTTPAddr": "10.0.0.1:4646",
            "TLSEnabled": False,
            "Attributes": attributes,
            "Meta": dict(node.meta),
            "DrainStrategy": node.drain_strategy,
            "ComputedClass": "v1:123",
        }

    def _update_answer(self) -> dict[str, Any]:
        return {
            "EvalCreateIndex": self.index,
            "EvalIDs": [str(uuid.uuid4())],
            "Index": self.index,
            "NodeModifyIndex": self.index,
        }

    def set_eligibility(self, node: FakeNode, body: Any) -> tuple[int, Any]:
        wanted = body.get("Eligibility") if isinstance(body, dict) else None
        if wanted not in ("eligible", "ineligible"):
            return 500, f'invalid scheduling eligibility "{wanted or ""}"'
        if wanted == "eligible" and node.drain_strategy is not None:
            return 500, "can not set node's scheduling eligibility to eligible while it is draining"
        node.eligibility = wanted
        self._touch(node)
        return 200, self._update_answer()

    def drain(self, node: FakeNode, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, "Failed to decode request body"
        spec = body.get("DrainSpec")
        if spec is None:  # cancel
            node.drain_strategy, node.drain_started = None, None
            if node.last_drain:
                node.last_drain = {**node.last_drain, "Status": "canceled"}
            if body.get("MarkEligible"):
                node.eligibility = "eligible"
        else:
            deadline = int(spec.get("Deadline") or 0)
            now_ns = time.time_ns()
            node.drain_strategy = {
                "DrainSpec": {
                    "Deadline": deadline,
                    "IgnoreSystemJobs": bool(spec.get("IgnoreSystemJobs")),
                },
                "ForceDeadline": now_ns + deadline if deadline > 0 else 0,
                "StartedAt": now_ns,
            }
            node.drain_started = time.monotonic()
            node.eligibility = "ineligible"
            node.last_drain = {
                "StartedAt": now_ns // _NANOSECONDS,
                "Status": "draining",
                "Meta": body.get("Meta"),
            }
        self._touch(node)
        self.progress(node)
        return 200, self._update_answer()

    def metadata(self, method: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        node_id = query.get("node_id") or (body.get("NodeID") if isinstance(body, dict) else None)
        node = self.nodes.get(node_id or "")
        if node is None:
            return 404, "node not found"
        if method in ("POST", "PUT"):
            if not isinstance(body, dict) or not isinstance(body.get("Meta"), dict):
                return 400, "Failed to decode request body"
            for key, value in body["Meta"].items():
                if value is None:
                    node.meta.pop(key, None)
                else:
                    node.meta[key] = str(value)
            self._touch(node)
        elif method != "GET":
            return 405, "Invalid method"
        return 200, {"Meta": dict(node.meta), "Dynamic": dict(node.meta), "Static": {}}
