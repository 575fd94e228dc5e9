"""An HTTP double of the Nomad HTTP API endpoints the backends use, on 127.0.0.1.

Shapes follow Nomad's HTTP API documents, "Jobs - HTTP API" (api-docs/jobs):
"Read Job" (GET /v1/job/:job_id), "List Job Allocations"
(GET /v1/job/:job_id/allocations; the DeploymentStatus field of each stub is
AllocationListStub in Nomad's api/allocations.go), "List Job Evaluations"
(GET /v1/job/:job_id/evaluations: see tests.doubles.nomad_evaluations), "Read Job's
Most Recent Deployment" (GET /v1/job/:job_id/deployment: a Deployment, or null), "Read
Job Scale Status" (GET /v1/job/:job_id/scale) and "Scale Task Group" (POST or PUT
/v1/job/:job_id/scale). A group's `scaling` block shows in the job as
TaskGroups[].Scaling, a ScalingPolicy as Nomad's server keeps it (nomad/structs: ID, Type
"horizontal", Target {Namespace, Job, Group}, Policy: the block's `policy`, opaque to
Nomad, null without one, Min, Max, Enabled, CreateIndex, ModifyIndex); null without a
block. Errors follow Nomad's server (nomad/job_endpoint.go): plain-text bodies, 404 "job
not found", 400 for a missing group, a count outside the group's scaling block or an
active deployment, and 403 "Permission denied" (no token) / "ACL token not found" (wrong
token) when ACLs are on. The `namespace` query parameter selects the namespace
("default" when absent).

The client-node endpoints (nodes, node allocations, drain, eligibility, dynamic
node metadata) are served from tests.doubles.nomad_nodes, and variables with
their locks (/v1/var) from tests.doubles.nomad_variables; see their docstrings.

Every request is recorded (method, path, query, headers, body) for assertions,
and faults can be queued: the next N requests answer 5xx (or a 429 or 503 with a
Retry-After, as a proxy or load balancer in front of Nomad may send), stall longer than a
client's timeout (then still apply, as a slow real server would), or drop the
connection without an answer; a fault can be limited to a method and to paths
containing a given text (e.g. "/drain").
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest

from tests.doubles.http_base import IncomingRequest, JsonApiHandler, LoopbackDouble
from tests.doubles.http_base import IncomingRequest as RecordedRequest
from tests.doubles.nomad_nodes import FakeNode, NomadNodes
from tests.doubles.nomad_variables import NomadVariables

DOUBLE_ACL_TOKEN = "9c4d1a77-double-acl-secret-5e0f"


@dataclass
class Fault:
    kind: str  # "status" | "delay" | "drop" | "await"
    status: int = 503
    seconds: float = 0.0
    method: str | None = None  # only requests with this method meet the fault
    path: str | None = None  # only requests whose path contains this meet the fault
    retry_after: str | None = None  # "status": the Retry-After header sent, if any
    body: str = "injected fault: service unavailable"  # "status": the plain-text answer
    awaited: str = ""  # "await": served once a request whose path holds this has come


@dataclass
class FakeJob:
    id: str
    namespace: str
    groups: dict[str, int]
    type: str = "service"
    stopped: bool = False
    active_deployment: bool = False
    blocked_words: str = "job scaling blocked due to active deployment"
    """The 400's body for a scale an active deployment blocks (another Nomad's wording)."""
    scaling: dict[str, tuple[int, int]] = field(default_factory=dict)
    """A group's scaling block: (min, max), which Nomad holds every count to."""
    scaling_policy: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The block's `policy` (what the Nomad Autoscaler acts on), by group."""
    scaling_disabled: set[str] = field(default_factory=set)
    """Groups whose scaling block says `enabled = false`."""
    allocations: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    """GET /v1/job/:job_id/evaluations (tests.doubles.nomad_evaluations builds them)."""
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    create_index: int = 10
    modify_index: int = 18
    version: int = 0


def allocation(
    group: str,
    *,
    job_id: str = "",
    client_status: str = "running",
    desired_status: str = "run",
    healthy: bool | None = True,
    in_deployment: bool = True,
) -> dict[str, Any]:
    """An AllocationListStub as GET /v1/job/:job_id/allocations lists it."""
    alloc_id = str(uuid.uuid4())
    return {
        "ID": alloc_id,
        "EvalID": str(uuid.uuid4()),
        "Name": f"{job_id}.{group}[0]",
        "NodeID": str(uuid.uuid4()),
        "JobID": job_id,
        "TaskGroup": group,
        "DesiredStatus": desired_status,
        "DesiredDescription": "",
        "ClientStatus": client_status,
        "ClientDescription": "",
        "DeploymentStatus": (
            {"Healthy": healthy, "Canary": False, "ModifyIndex": 13} if in_deployment else None
        ),
        "TaskStates": {},
        "CreateIndex": 9,
        "ModifyIndex": 13,
        "CreateTime": 1495755675944527600,
        "ModifyTime": 1495755675944527600,
    }


class NomadApiDouble(LoopbackDouble[RecordedRequest]):
    def __init__(self, acl_token: str | None = DOUBLE_ACL_TOKEN) -> None:
        super().__init__(_Handler)
        self.acl_token = acl_token
        self.jobs: dict[tuple[str, str], FakeJob] = {}
        self.node_api = NomadNodes()
        self.variables = NomadVariables()
        self.faults: list[Fault] = []
        self.index = 100
        self.arrived = threading.Condition(self.lock)  # told of each request recorded

    def record(self, request: RecordedRequest) -> None:
        with self.arrived:
            super().record(request)
            self.arrived.notify_all()

    # ---- arranging ---------------------------------------------------------------

    def add_job(self, job_id: str, groups: dict[str, int], namespace: str = "default", **kw: Any):
        job = FakeJob(id=job_id, namespace=namespace, groups=dict(groups), **kw)
        self.jobs[(namespace, job_id)] = job
        return job

    def fail_next(
        self,
        count: int,
        status: int = 503,
        method: str | None = None,
        path: str | None = None,
        retry_after: str | None = None,
        body: str | None = None,
    ) -> None:
        """The next `count` requests (of `method`, to `path`, if given) answer `status`,
        with Retry-After `retry_after` where given (a proxy's rate limit in front), and
        `body` where given (Nomad's 500 "No cluster leader" while its servers elect one)."""
        said = {} if body is None else {"body": body}
        self.faults.extend(
            Fault(
                "status", status=status, method=method, path=path, retry_after=retry_after, **said
            )
            for _ in range(count)
        )

    def delay_next(self, count: int, seconds: float, method: str | None = None) -> None:
        """The next `count` requests stall `seconds` before being served as usual."""
        self.faults.extend(Fault("delay", seconds=seconds, method=method) for _ in range(count))

    def await_next(self, count: int, path: str, awaited: str, seconds: float = 30.0) -> None:
        """The next `count` requests to `path` are answered only once a request whose path
        holds `awaited` has come (at most `seconds` later): a client that asks one after
        another, waiting on the first, never gets its answer within its timeout."""
        self.faults.extend(
            Fault("await", path=path, awaited=awaited, seconds=seconds) for _ in range(count)
        )

    def asked(self, awaited: str, seconds: float) -> bool:
        """Whether a request whose path holds `awaited` has come, waiting `seconds` for it."""
        with self.arrived:
            return self.arrived.wait_for(
                lambda: any(awaited in r.path for r in self.requests), seconds
            )

    def drop_next(self, count: int, method: str | None = None) -> None:
        """The next `count` requests get the connection closed and no answer."""
        self.faults.extend(Fault("drop", method=method) for _ in range(count))

    def add_node(self, instance_id: str | None, **kw: Any) -> FakeNode:
        """A client node (see NomadNodes.add: running=, system=, node_pool=, drain_seconds=...)."""
        with self.lock:
            return self.node_api.add(instance_id, **kw)

    def finish_drain(self, node_id: str) -> None:
        with self.lock:
            self.node_api.finish_drain(node_id)

    @property
    def nodes(self) -> dict[str, FakeNode]:
        return self.node_api.nodes

    # ---- asserting ---------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # ---- answering (called from handler threads) ---------------------------------

    def next_fault(self, method: str, path: str = "") -> Fault | None:
        with self.lock:
            for position, fault in enumerate(self.faults):
                if fault.method in (None, method) and (fault.path or "") in path:
                    return self.faults.pop(position)
            return None

    def authorize(self, headers: dict[str, str]) -> str | None:
        """The 403 body when the request's token is refused, else None."""
        if self.acl_token is None:
            return None
        given = headers.get("x-nomad-token")
        bearer = headers.get("authorization", "")
        if given is None and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if not given:
            return "Permission denied"
        if given != self.acl_token:
            return "ACL token not found"
        return None

    def route(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if parts[:2] in (["v1", "nodes"], ["v1", "node"], ["v1", "client"]):
            with self.lock:
                return self.node_api.route(method, parts, query, body)
        if parts[:2] == ["v1", "var"]:
            with self.lock:
                return self.variables.route(method, "/".join(parts[2:]), query, body)
        if len(parts) < 3 or parts[:2] != ["v1", "job"]:
            return 404, "404 page not found"
        namespace = query.get("namespace") or "default"
        job = self.jobs.get((namespace, parts[2]))
        rest = parts[3:]
        with self.lock:
            if method == "GET" and rest == []:
                return (200, self.job_json(job)) if job else (404, "job not found")
            if method == "GET" and rest == ["allocations"]:
                return (200, list(job.allocations)) if job else (200, [])
            if method == "GET" and rest == ["evaluations"]:
                return (200, list(job.evaluations)) if job else (200, [])
            if method == "GET" and rest == ["deployment"]:
                return (200, self.deployment_json(job)) if job else (404, "job not found")
            if method == "GET" and rest == ["scale"]:
                return (200, self.scale_status_json(job)) if job else (404, "job not found")
            if method in ("POST", "PUT") and rest == ["scale"]:
                if job is None:
                    return 404, f'job "{parts[2]}" not found'
                return self.scale(job, body)
        return 405, "Invalid method"

    def job_json(self, job: FakeJob) -> dict[str, Any]:
        return {
            "Region": "global",
            "Namespace": job.namespace,
            "ID": job.id,
            "ParentID": "",
            "Name": job.id,
            "Type": job.type,
            "Priority": 50,
            "Datacenters": ["dc1"],
            "NodePool": "default",
            "TaskGroups": [
                {
                    "Name": name,
                    "Count": count,
                    "Scaling": self.scaling_json(job, name),
                    "Tasks": [{"Name": "worker", "Driver": "docker"}],
                }
                for name, count in job.groups.items()
            ],
            "Stop": job.stopped,
            "Status": "dead" if job.stopped else "running",
            "StatusDescription": "",
            "Version": job.version,
            "CreateIndex": job.create_index,
            "ModifyIndex": job.modify_index,
            "JobModifyIndex": job.modify_index,
        }

    @staticmethod
    def scaling_json(job: FakeJob, group: str) -> dict[str, Any] | None:
        if group not in job.scaling:
            return None
        low, high = job.scaling[group]
        return {
            "ID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job.namespace}/{job.id}/{group}")),
            "Type": "horizontal",
            "Target": {"Namespace": job.namespace, "Job": job.id, "Group": group},
            "Policy": job.scaling_policy.get(group),
            "Min": low,
            "Max": high,
            "Enabled": group not in job.scaling_disabled,
            "CreateIndex": job.create_index,
            "ModifyIndex": job.modify_index,
        }

    @staticmethod
    def deployment_json(job: FakeJob) -> dict[str, Any] | None:
        """The job's latest deployment: running while one is active, else the last scale's,
        successful; null for a job never changed since it was registered."""
        if not job.active_deployment and job.version == 0:
            return None
        return {
            "ID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job.id}/deployment/{job.version}")),
            "Namespace": job.namespace,
            "JobID": job.id,
            "JobVersion": job.version,
            "JobModifyIndex": job.modify_index,
            "JobCreateIndex": job.create_index,
            "TaskGroups": {},
            "Status": "running" if job.active_deployment else "successful",
            "StatusDescription": (
                "Deployment is running"
                if job.active_deployment
                else "Deployment completed successfully"
            ),
            "CreateIndex": job.modify_index,
            "ModifyIndex": job.modify_index,
        }

    def scale_status_json(self, job: FakeJob) -> dict[str, Any]:
        groups = {}
        for name, count in job.groups.items():
            allocs = [a for a in job.allocations if a["TaskGroup"] == name]
            in_deployment = [a for a in allocs if a.get("DeploymentStatus")]
            groups[name] = {
                "Desired": count,
                "Placed": len(in_deployment),
                "Running": sum(1 for a in allocs if a["ClientStatus"] == "running"),
                "Healthy": sum(1 for a in in_deployment if a["DeploymentStatus"]["Healthy"]),
                "Unhealthy": sum(
                    1 for a in in_deployment if a["DeploymentStatus"]["Healthy"] is False
                ),
                "Events": list(job.events.get(name, [])) or None,
            }
        return {
            "JobCreateIndex": job.create_index,
            "JobID": job.id,
            "Namespace": job.namespace,
            "JobModifyIndex": job.modify_index,
            "JobStopped": job.stopped,
            "TaskGroups": groups,
        }

    def scale(self, job: FakeJob, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, "Failed to decode request body"
        target = body.get("Target") or {}
        group = target.get("Group", "")
        if not group:
            return 400, "missing task group name"
        count = body.get("Count")
        if count is not None and (not isinstance(count, int) or count < 0):
            return 400, "scaling action count can't be negative"
        if not body.get("Message") and not body.get("Error"):
            return 400, "one of Message or Error must be provided"
        if group not in job.groups:
            return 400, f'task group "{group}" specified for scaling does not exist in job'
        if count is not None and group in job.scaling:
            low, high = job.scaling[group]
            if count < low:
                return 400, f"group count was less than scaling policy minimum: {count} < {low}"
            if count > high:
                return 400, f"group count was greater than scaling policy maximum: {count} > {high}"
        if count is not None and job.active_deployment:
            return 400, job.blocked_words
        previous = job.groups[group]
        self.index += 2
        eval_id = str(uuid.uuid4())
        if count is not None:
            job.groups[group] = count
            job.modify_index = self.index - 1
            job.version += 1
        job.events.setdefault(group, []).insert(
            0,
            {
                "Count": count,
                "PreviousCount": previous,
                "Error": bool(body.get("Error")),
                "Message": body.get("Message") or body.get("Error"),
                "Meta": body.get("Meta"),
                "EvalID": eval_id,
                "CreateIndex": self.index,
                "Time": 1608304897537638400 + self.index,
            },
        )
        return 200, {
            "EvalCreateIndex": self.index,
            "EvalID": eval_id,
            "Index": self.index,
            "JobModifyIndex": job.modify_index,
            "KnownLeader": False,
            "LastContact": 0,
            "Warnings": "",
        }


class _Handler(JsonApiHandler):
    def serve(self, request: IncomingRequest) -> None:
        double: NomadApiDouble = self.server.double
        method, path, query, headers, body = (
            request.method,
            request.path,
            request.query,
            request.headers,
            request.body,
        )
        double.record(RecordedRequest(method, path, query, headers, body))

        fault = double.next_fault(method, path)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status" and fault.retry_after is not None:
            self.send_payload(
                fault.status, "rate limited by the proxy", {"Retry-After": fault.retry_after}
            )
            return
        if fault is not None and fault.kind == "status":
            self._reply(fault.status, fault.body)
            return
        if fault is not None and fault.kind == "delay" and self.server.stopping.wait(fault.seconds):
            return
        if fault is not None and fault.kind == "await":
            double.asked(fault.awaited, fault.seconds)

        refused = double.authorize(headers)
        if refused is not None:
            self._reply(403, refused)
            return
        parts = [unquote(p) for p in path.strip("/").split("/")]
        status, payload = double.route(method, parts, query, body)
        self._reply(status, payload)

    def _reply(self, status: int, payload: Any) -> None:
        headers = {}
        if status == 200:
            double: NomadApiDouble = self.server.double
            headers = {
                "X-Nomad-Index": str(double.index),
                "X-Nomad-KnownLeader": "true",
                "X-Nomad-LastContact": "0",
            }
        self.send_payload(status, payload, headers)


@pytest.fixture
def nomad_api() -> Iterator[NomadApiDouble]:
    """A started Nomad API double with ACLs on (token DOUBLE_ACL_TOKEN); stopped after."""
    double = NomadApiDouble()
    double.start()
    try:
        yield double
    finally:
        double.stop()
