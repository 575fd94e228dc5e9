"""Fleet backends' settings: one model per kind, chosen by `kind` in a pool's `backend:`.

Split from autoscaler/config/schema.py (which re-exports them) so each file stays one thing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.durations import Duration


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- backends --------------------------------------------------------------------


class ApiCalls(Strict):
    """How every fleet API call is made: a timeout, and retries with backoff on 5xx."""

    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(default=3, ge=0, le=10)


class TlsApiCalls(ApiCalls):
    verify_tls: bool = True
    allow_insecure: bool = Field(
        default=False, description="accept verify_tls: false or plain http to another host"
    )


class NomadAccess(TlsApiCalls):
    """Where and as whom to reach Nomad (the Nomad CLI's environment fills the gaps)."""

    address: str | None = Field(default=None, description="defaults to $NOMAD_ADDR")
    region: str | None = None
    namespace: str = "default"
    token_env: str = "NOMAD_TOKEN"


class NomadJobBackend(NomadAccess):
    kind: Literal["nomad_job"]
    job: str
    group: str


class KubernetesBackend(TlsApiCalls):
    """A Deployment or StatefulSet scaled through its scale subresource."""

    kind: Literal["kubernetes"]
    workload: Literal["deployment", "statefulset"] = "deployment"
    name: str
    namespace: str | None = Field(default=None, description="default: the context's namespace")
    context: str | None = Field(default=None, description="kubeconfig context; default current")
    kubeconfig: Path | None = Field(
        default=None, description="default: $KUBECONFIG, ~/.kube/config"
    )
    in_cluster: bool | None = Field(
        default=None, description="use the pod's service account; default: when in a pod"
    )


class AwsAsgBackend(TlsApiCalls):
    """An AWS Auto Scaling group of GPU instances; credentials from the AWS chain.

    TLS settings too: a plain http endpoint_url to another host would carry the signed
    requests, and any session token, in clear."""

    kind: Literal["aws_asg"]
    group: str = Field(description="Auto Scaling group name")
    region: str | None = Field(default=None, description="default: the AWS chain's region")
    endpoint_url: str | None = Field(default=None, description="only for VPC endpoints/tests")


class NomadClusterBackend(NomadAccess):
    """Nomad client nodes in an AWS Auto Scaling group: scale out by raising the group's
    desired capacity; scale in by draining chosen nodes, then terminating exactly them."""

    kind: Literal["nomad_cluster"]
    asg: str = Field(description="Auto Scaling group the Nomad clients run in")
    aws_region: str | None = None
    aws_endpoint_url: str | None = Field(
        default=None, description="only for VPC endpoints/tests; verify_tls applies to it too"
    )
    node_pool: str | None = None
    node_class: str | None = None
    datacenter: str | None = None
    drain_deadline: Duration = timedelta(minutes=10)
    terminate_busy_after_deadline: bool = Field(
        default=False, description="terminate a node still running allocations at the deadline"
    )
    ignore_system_jobs: bool = True


class SimulatedBackend(Strict):
    kind: Literal["simulated"]
    initial_nodes: int = Field(default=1, ge=0)
    boot_delay: Duration = timedelta(minutes=10)
    boot_failure_rate: float = Field(
        default=0.0, ge=0, lt=1, description="share of new nodes that never become ready"
    )
    seed: int = 0


BackendConfig = Annotated[
    NomadJobBackend | NomadClusterBackend | KubernetesBackend | AwsAsgBackend | SimulatedBackend,
    Field(discriminator="kind"),
]
