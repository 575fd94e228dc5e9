"""An AWS Auto Scaling group as a fleet, through boto3.

Reads the group's desired capacity and its instances' lifecycle states; sets
the desired capacity with SetDesiredCapacity (HonorCooldown=False: the
autoscaler keeps its own cooldowns). A request outside the group's
MinSize/MaxSize, a scale-in that would need protected instances to go, or a scale
the group's suspended Launch or Terminate process would never carry out, is
clamped to what the group allows: the clamped value is written, a warning is
logged and scale() returns what was clamped and why, so the tick can report it.

Credentials come from the standard AWS chain (env, shared files, SSO, instance
role); keys from `env` are passed on explicitly so a caller's env mapping wins.
They never reach a log line or an error: errors are re-worded from AWS error
codes and short, redacted messages. botocore's own retries are off; retries of
throttling, 5xx and lost connections go through backends.retry, once; credentials AWS
refuses as expired are read again from the chain, and where they changed, tried once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from backends.aws_asg_group import (
    GroupSnapshot,
    group_fleet_state,
    group_snapshot,
    suspended_note,
)
from backends.aws_asg_launches import LaunchWatch
from backends.aws_asg_policies import ask_group
from backends.aws_credentials import aws_session, frozen_credentials, remember_sent_credentials
from backends.base import Backend, BackendError, FleetState, require_count
from backends.retry import call_with_retries
from backends.settings import Fleet, TlsApiCalls
from common.clock import Clock, SystemClock
from common.deadline import whole_answer_s
from common.secrets import redact, remember, shorten
from common.settings import Name
from common.tick_circuit import server_of
from common.transport import plain_http_finding

if TYPE_CHECKING:  # boto3 is the [aws] extra: imported when a group is used, not on load
    import boto3


class AwsAsgBackend(TlsApiCalls):
    """An AWS Auto Scaling group of GPU instances; credentials from the AWS chain.

    TLS settings too: a plain http endpoint_url to another host would carry the signed
    requests, and any session token, in clear."""

    kind: Literal["aws_asg"]
    group: Name = Field(description="Auto Scaling group name")
    region: str | None = Field(default=None, description="default: the AWS chain's region")
    endpoint_url: str | None = Field(default=None, description="only for VPC endpoints/tests")

    def fleet(self) -> Fleet:
        return auto_scaling_group(self.group, self.region, self.endpoint_url)

    def plain_findings(self, where: str, env: Mapping[str, str]) -> list[str]:
        return plain_http_finding(self.endpoint_url, f"{where}: endpoint_url")

    def connect(
        self,
        clock: Clock,
        env: Mapping[str, str],
        state_path: Path | None,
        boot_time: timedelta | None = None,
    ) -> Backend:
        return AutoScalingGroup(self, env=env, clock=clock, boot_time=boot_time)


def auto_scaling_group(name: str, region: str | None, endpoint_url: str | None) -> Fleet:
    """An Auto Scaling group, whichever backend writes its desired capacity (aws_asg, or
    nomad_cluster's group)."""
    return Fleet(f"Auto Scaling group {name!r}", ("aws", region, endpoint_url))


log = logging.getLogger(__name__)

AUTOSCALER_NAME = "gpu-autoscaler"
_SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
_TRANSIENT_CODES = frozenset(  # ScalingActivityInProgress: a 400 that another activity ends
    {"InternalFailure", "ServiceUnavailable", "RequestTimeout", "ScalingActivityInProgress"}
)
_REFUSED_CREDENTIALS = frozenset({"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"})

_MESSAGE_LIMIT = 200


# ---- pure ----------------------------------------------------------------------------


def clamp_desired(requested: int, snapshot: GroupSnapshot) -> tuple[int, str | None]:
    """The desired capacity the group can take, and a sentence when it is not `requested`."""
    target, notes = requested, []
    if target > snapshot.max_size:
        notes.append(f"above the group's MaxSize {snapshot.max_size}")
        target = snapshot.max_size
    if target < snapshot.min_size:
        notes.append(f"below the group's MinSize {snapshot.min_size}")
        target = snapshot.min_size
    process = "Launch" if target > snapshot.desired else "Terminate"
    if target != snapshot.desired and process in snapshot.suspended:
        notes.append(suspended_note(process))  # written, it would wait unseen
        target = snapshot.desired
    if target < snapshot.desired:
        # Lowering desired lets AWS remove only unprotected instances.
        floor = min(snapshot.desired, snapshot.protected)
        if target < floor:
            notes.append(_protected_note(snapshot))
            target = floor
    if target == requested:
        return target, None
    return target, f"asked for {requested}, clamped to {target}: {'; '.join(notes)}"


def _protected_note(snapshot: GroupSnapshot) -> str:
    """The protected instances, and the capacity units they hold where weights make those
    differ: '4 instances are protected' for one instance of 4 units sent people looking for
    protection on instances that had none."""
    count = sum(1 for i in snapshot.instances if i.protected and i.counted)
    if count == snapshot.protected:
        return f"{count} instances are protected from scale-in"
    held = f"{count} instance holds" if count == 1 else f"{count} instances hold"
    return f"protected from scale-in, {held} {snapshot.protected} capacity units"


# ---- pure: classifying and wording failures ------------------------------------------


def _error_code(error: BaseException) -> str:
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _status_code(error: BaseException) -> int:
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if isinstance(status, int) else 0
    return 0


def is_retryable_aws_error(error: BaseException) -> bool:
    """Throttling, 5xx, garbled answers and lost connections; never a refusal or a 4xx."""
    import botocore.exceptions
    from botocore.parsers import ResponseParserError

    if isinstance(error, botocore.exceptions.ClientError):
        code = _error_code(error)
        return code in _THROTTLING_CODES or code in _TRANSIENT_CODES or _status_code(error) >= 500
    return isinstance(
        error,
        botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError
        | ResponseParserError,
    )


def redact_all(text: str, secrets: tuple[str, ...]) -> str:
    """Every secret the process knows (common.secrets), these included."""
    remember(*secrets)
    return redact(text)


def describe_aws_error(error: BaseException, where: str, secrets: tuple[str, ...] = ()) -> str:
    """A sentence for people: the AWS error code and its short message, keys removed."""
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        code = _error_code(error) or "error"
        message = " ".join(str(error.response.get("Error", {}).get("Message", "")).split())
        status = _status_code(error)
        text = f"AWS answered {code}" + (f" (HTTP {status})" if status else "")
        if message:  # redacted before the cut: a key cut in two no longer matches
            remember(*secrets)
            text += f": {shorten(message, _MESSAGE_LIMIT)}"
    elif isinstance(error, botocore.exceptions.NoCredentialsError):
        text = "no AWS credentials found in the AWS credential chain"
    elif isinstance(
        error, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError
    ):
        text = f"no answer from AWS ({where}) in time"
    elif isinstance(error, botocore.exceptions.ConnectionError):
        text = f"connection to AWS ({where}) failed ({type(error).__name__})"
    elif isinstance(error, BackendError):
        text = str(error)
    else:
        text = type(error).__name__
    return redact_all(text, secrets)


# ---- the adapter ---------------------------------------------------------------------


class OnAGroup:
    """`other_autoscalers` for a backend whose nodes are a group's instances (nomad_cluster):
    the group's own policies and scheduled actions act on them too."""

    group: AutoScalingGroup

    def other_autoscalers(self) -> list[str]:
        return self.group.other_autoscalers()


class AutoScalingGroup:
    """One Auto Scaling group, sized through its desired capacity."""

    name = "aws_asg"

    def __init__(
        self,
        config: AwsAsgBackend,
        env: Mapping[str, str] = os.environ,
        sleep: Callable[[float], None] = time.sleep,
        *,
        clock: Clock | None = None,
        boot_time: timedelta | None = None,
    ) -> None:
        self.config = config
        self.target = f"Auto Scaling group {config.group!r}"
        self._sleep = sleep
        self._env = env
        self._secrets = tuple(env.get(name, "") for name in _SECRET_ENV)
        remember(*self._secrets)
        self._session = aws_session(config.region, env)
        self.client = self._client(self._session)
        self.region = self._session.region_name
        self.launches = LaunchWatch(self, boot_time, clock or SystemClock())

    def _client(self, session: boto3.Session) -> Any:
        import botocore.config

        timeout = self.config.timeout.total_seconds()
        client = session.client(
            "autoscaling",
            endpoint_url=self.config.endpoint_url,
            # None keeps botocore's own CA choice (AWS_CA_BUNDLE, the profile's ca_bundle);
            # True would override it.
            verify=None if self.config.verify_tls else False,
            config=botocore.config.Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},
                user_agent_extra=AUTOSCALER_NAME,
            ),
        )
        client.meta.events.register("before-send.auto-scaling", remember_sent_credentials)
        return client

    def _renewed(self) -> bool:
        """The credential chain read again, after AWS refused the credentials as expired or
        unknown: boto3 reads a profile's credentials file once, so one that a refresher
        rewrites (a cron's assume-role, saml2aws) failed every call until a restart. True
        where the chain now gives other credentials, the client rebuilt on them."""
        session = aws_session(self.config.region, self._env)
        if frozen_credentials(session) in (None, frozen_credentials(self._session)):
            return False
        self._session, self.client = session, self._client(session)
        return True

    def __repr__(self) -> str:
        return f"AutoScalingGroup({self.config.group!r} in {self.region})"

    def check(self) -> None:
        """Credentials accepted and the group exists (for `validate --check-backends`)."""
        self.describe()

    def other_autoscalers(self) -> list[str]:
        """The group's own policies and scheduled actions that act (backends.aws_asg_policies)."""
        return ask_group(self)

    def read(self) -> FleetState:
        fleet = group_fleet_state(self.describe())
        return replace(fleet, stuck=self.launches.stuck(fleet.pending))

    def scale(self, desired: int, reason: str) -> str | None:
        require_count(desired)
        snapshot = self.describe()
        target, note = clamp_desired(desired, snapshot)
        if note:
            log.warning("%s: %s", self.target, note)
        if target == snapshot.desired:
            log.debug("%s already at desired %d; nothing to write", self.target, target)
            return note
        log.info("%s: desired %d -> %d (%s)", self.target, snapshot.desired, target, reason)
        self.set_desired(target)
        return note

    # ---- the group operations, also used by backends.nomad_cluster ------------------

    def describe(self) -> GroupSnapshot:
        answer = self._call(
            lambda: self.client.describe_auto_scaling_groups(
                AutoScalingGroupNames=[self.config.group]
            ),
            what=f"describing {self.target}",
        )
        groups = answer.get("AutoScalingGroups") or []
        if not groups:
            raise BackendError(f"{self.target} not found in region {self.region}")
        return group_snapshot(groups[0])

    def set_desired(self, desired: int) -> None:
        self._call(
            lambda: self.client.set_desired_capacity(
                AutoScalingGroupName=self.config.group,
                DesiredCapacity=desired,
                HonorCooldown=False,
            ),
            what=f"setting the desired capacity of {self.target} to {desired}",
        )

    def terminate(self, instance_id: str) -> None:
        """Terminate exactly this instance and lower desired capacity with it."""
        self._call(
            lambda: self.client.terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=True
            ),
            what=f"terminating instance {instance_id} of {self.target}",
        )

    def call_once(self, operation: Callable[[], Any], *, what: str) -> Any:
        """One attempt, no retry: a question asked beside a tick's own calls."""
        return self._call(operation, what=what, retries=0)

    def _call(self, operation: Callable[[], Any], *, what: str, retries: int | None = None) -> Any:
        where = self.config.endpoint_url or f"region {self.region}"

        def describe(error: BaseException) -> str:
            return describe_aws_error(error, where, self._secrets)

        def attempt() -> Any:
            try:
                return operation()
            except Exception as error:
                code = _error_code(error)
                if code not in _REFUSED_CREDENTIALS or not self._renewed():
                    raise
                log.warning("%s: AWS answered %s; credentials read again", self.target, code)
                return operation()  # the operations read self.client when called

        return call_with_retries(
            attempt,
            what=what,
            retries=self.config.retries if retries is None else retries,
            is_retryable=is_retryable_aws_error,
            describe=describe,
            sleep=self._sleep,
            deadline_s=whole_answer_s(self.config.timeout.total_seconds()),
            server=server_of(self.client.meta.endpoint_url),
        )
