"""moto in server mode on 127.0.0.1: a real HTTP endpoint that boto3 talks to as to AWS.

One server per test module (`moto_server` fixture, module scope); `aws` resets its
state before each test and hands over an `AwsWorld` to arrange groups with. The
backends get dummy keys through their `env` argument, never from os.environ.

AWS faults moto cannot produce (throttling, a refused termination) are injected on
the client under test with botocore's `before-send` event: the request is answered
with the error document AWS would send (the query protocol's ErrorResponse), so
botocore parses it exactly as a real answer and the backend's retry path runs. Answers
AWS would not send (a field left out, a count outside the group's bounds) are moto's
own, edited in botocore's `before-parse` event before it reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
DUMMY_KEY_ID = "AKIADOUBLEKEY7EXAMPLE"
DUMMY_SECRET = "wJalrXUtnFEMI/double/secret/bPxRfiCYEXAMPLEKEY"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
    "AWS_DEFAULT_REGION": REGION,
}
IMAGE_ID = "ami-12c6146b"  # one of moto's built-in AMIs


@dataclass
class AwsWorld:
    """Arranging and inspecting Auto Scaling groups in the moto server, as an operator."""

    url: str
    autoscaling: Any = field(init=False)
    ec2: Any = field(init=False)

    def __post_init__(self) -> None:
        session = boto3.Session(
            aws_access_key_id=DUMMY_KEY_ID, aws_secret_access_key=DUMMY_SECRET, region_name=REGION
        )
        self.autoscaling = session.client("autoscaling", endpoint_url=self.url)
        self.ec2 = session.client("ec2", endpoint_url=self.url)

    def create_group(
        self,
        name: str,
        *,
        desired: int,
        min_size: int = 0,
        max_size: int = 10,
        weight: int | None = None,
    ) -> list[str]:
        """A group of GPU instances; returns their instance IDs (all InService in moto).
        With `weight`, a mixed instances policy whose one instance type weighs that many
        capacity units (moto launches DesiredCapacity / weight instances, rounded up)."""
        template = f"{name}-template"
        self.ec2.create_launch_template(
            LaunchTemplateName=template,
            LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "g5.xlarge"},
        )
        launch: dict[str, Any] = {"LaunchTemplate": {"LaunchTemplateName": template}}
        if weight is not None:
            overrides = [{"InstanceType": "g5.12xlarge", "WeightedCapacity": str(weight)}]
            launch = {
                "MixedInstancesPolicy": {
                    "LaunchTemplate": {
                        "LaunchTemplateSpecification": {"LaunchTemplateName": template},
                        "Overrides": overrides,
                    }
                }
            }
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            **launch,
            MinSize=min_size,
            MaxSize=max_size,
            DesiredCapacity=desired,
            AvailabilityZones=[f"{REGION}a"],
        )
        return self.instance_ids(name)

    def group(self, name: str) -> dict[str, Any]:
        answer = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        return answer["AutoScalingGroups"][0]

    def instance_ids(self, name: str) -> list[str]:
        return [i["InstanceId"] for i in self.group(name)["Instances"]]

    def protect(self, name: str, instance_ids: list[str]) -> None:
        self.autoscaling.set_instance_protection(
            AutoScalingGroupName=name, InstanceIds=instance_ids, ProtectedFromScaleIn=True
        )


@dataclass
class MotoServer:
    url: str
    server: ThreadedMotoServer
    world: AwsWorld

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=5).raise_for_status()


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


class AwsFaults:
    """Answers the next N calls of an operation on one client with an AWS error."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queued: dict[str, list[tuple[int, str, str]]] = {}
        self.sent: list[str] = []  # operations that reached moto
        self.edits: dict[str, list[Callable[[str], str]]] = {}
        client.meta.events.register("before-send.auto-scaling", self._before_send)
        client.meta.events.register("before-parse.auto-scaling", self._before_parse)

    def fail_next(
        self,
        operation: str,
        count: int,
        *,
        status: int = 400,
        code: str = "Throttling",
        message: str = "Rate exceeded",
    ) -> None:
        self.queued.setdefault(operation, []).extend([(status, code, message)] * count)

    def edit_next(self, operation: str, edit: Callable[[str], str]) -> None:
        """moto's own answer to the next call of `operation`, its XML text put through
        `edit` before botocore reads it (a field left out, a count out of range)."""
        self.edits.setdefault(operation, []).append(edit)

    def _before_parse(self, response_dict: dict[str, Any], event_name: str = "", **_: Any) -> None:
        waiting = self.edits.get(event_name.rsplit(".", 1)[-1])
        if waiting:
            response_dict["body"] = waiting.pop(0)(response_dict["body"].decode()).encode()

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        waiting = self.queued.get(operation)
        if not waiting:
            self.sent.append(operation)
            return None
        status, code, message = waiting.pop(0)
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            '<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/">'
            f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>5f1e2a3b-double</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml", "Content-Length": str(len(body))}
        return AWSResponse(request.url, status, headers, _Body(body))


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log in test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        url = f"http://{host}:{port}"
        yield MotoServer(url=url, server=server, world=AwsWorld(url))
    finally:
        server.stop()


@pytest.fixture
def aws(moto_server: MotoServer) -> AwsWorld:
    """An empty moto (state reset) and an operator's clients into it."""
    moto_server.reset()
    return moto_server.world
