"""AutoScalingGroup through boto3 against moto in server mode on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import socket
import textwrap
import traceback
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autoscaler.cli.main import app
from backends.aws_asg import AutoScalingGroup, AwsAsgBackend, clamp_desired
from backends.aws_asg_group import group_snapshot
from backends.base import BackendError, FleetState
from tests.doubles.moto_server import (
    AWS_ENV,
    DUMMY_KEY_ID,
    DUMMY_SECRET,
    AwsFaults,
    AwsWorld,
    aws,
    moto_server,
)

__all__ = ["aws", "moto_server"]  # fixtures, used by name below

GROUP = "gpu-workers"


def make_backend(url: str, sleeps: list[float] | None = None, **overrides: Any) -> AutoScalingGroup:
    settings: dict[str, Any] = {
        "kind": "aws_asg",
        "group": GROUP,
        "endpoint_url": url,
        "timeout": "2s",
        "retries": 2,
    }
    settings.update(overrides)
    sleeps = [] if sleeps is None else sleeps
    return AutoScalingGroup(AwsAsgBackend(**settings), env=dict(AWS_ENV), sleep=sleeps.append)


def snapshot(desired: int, min_size: int, max_size: int, protected: int, total: int):
    return group_snapshot(
        {
            "AutoScalingGroupName": GROUP,
            "DesiredCapacity": desired,
            "MinSize": min_size,
            "MaxSize": max_size,
            "Instances": [
                {
                    "InstanceId": f"i-{n}",
                    "LifecycleState": "InService",
                    "ProtectedFromScaleIn": n < protected,
                }
                for n in range(total)
            ],
        }
    )


# ---- pure clamping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "protected", "expected", "words"),
    [
        (3, 2, 3, None),
        (9, 2, 6, "MaxSize 6"),
        (0, 0, 1, "MinSize 1"),
        (1, 2, 2, "2 instances are protected"),  # 4 running, 2 protected: at most 2 can go
        (5, 4, 5, None),  # raising is never held back by protection
    ],
)
def test_clamp_desired(requested: int, protected: int, expected: int, words: str | None) -> None:
    target, note = clamp_desired(requested, snapshot(4, 1, 6, protected=protected, total=4))
    assert target == expected
    if words is None:
        assert note is None
    else:
        assert note is not None and words in note and f"asked for {requested}" in note


# ---- against moto -------------------------------------------------------------------


def test_read_counts_desired_in_service_and_pending(aws: AwsWorld) -> None:
    aws.create_group(GROUP, desired=3, max_size=6)
    backend = make_backend(aws.url)
    assert backend.read() == FleetState(desired=3, ready=3, pending=0)
    aws.autoscaling.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=5)
    state = backend.read()
    assert state.desired == 5
    assert state.ready + state.pending == 5


def test_an_instance_marked_unhealthy_is_not_ready(aws: AwsWorld) -> None:
    """Against moto serving the documented Auto Scaling query API: SetInstanceHealth marks
    an instance Unhealthy, which DescribeAutoScalingGroups then lists as InService with
    HealthStatus Unhealthy (as AWS does until it replaces it, and for good while the
    group's ReplaceUnhealthy process is suspended). Before, it was counted ready: the GPU
    and latency signals sized on a node that served nothing. Now it reads as pending."""
    ids = aws.create_group(GROUP, desired=3, max_size=6)
    aws.autoscaling.suspend_processes(
        AutoScalingGroupName=GROUP, ScalingProcesses=["ReplaceUnhealthy"]
    )
    aws.autoscaling.set_instance_health(InstanceId=ids[0], HealthStatus="Unhealthy")
    assert make_backend(aws.url).read() == FleetState(desired=3, ready=2, pending=1)


def weighed(units: int | str) -> Any:
    """An edit of moto's DescribeAutoScalingGroups answer that gives each instance the
    WeightedCapacity AWS documents for a group under a mixed instances policy with weights
    (the Instance type's "number of capacity units contributed by the instance", a
    string); moto launches by the weights but leaves the field out of its answer."""
    member = r"(<member>\s*<InstanceId>[^<]+</InstanceId>)"
    return lambda xml: re.sub(member, rf"\1<WeightedCapacity>{units}</WeightedCapacity>", xml)


def test_a_weighted_group_counts_ready_and_protected_in_capacity_units(aws: AwsWorld) -> None:
    """Against moto serving the documented Auto Scaling query API: a mixed instances policy
    whose instance type weighs 4 units, DesiredCapacity 8, two instances in service. AWS
    counts DesiredCapacity in units; before, ready counted instances (2 ready, 6 pending
    of 8 when all 8 units served), and protection was counted in instances too (one
    protected instance of 4 units let a scale-in write 1 unit, below what AWS can remove
    to). Now ready and protection are in units, as the count is."""
    ids = aws.create_group(GROUP, desired=8, max_size=16, weight=4)
    assert len(ids) == 2
    backend = make_backend(aws.url)
    faults = AwsFaults(backend.client)
    faults.edit_next("DescribeAutoScalingGroups", weighed(4))
    assert backend.read() == FleetState(desired=8, ready=8, pending=0)
    aws.protect(GROUP, ids[:1])
    faults.edit_next("DescribeAutoScalingGroups", weighed(4))
    note = backend.scale(1, "night")
    assert note is not None and "clamped to 4" in note
    assert aws.group(GROUP)["DesiredCapacity"] == 4


def test_a_weighted_groups_clamp_counts_its_protected_instances_apart_from_units(
    aws: AwsWorld,
) -> None:
    """Against moto serving the documented Auto Scaling query API: one protected instance
    of 4 units was told as '4 instances are protected from scale-in', sending people to
    look for protection on instances that had none. Now the instance and its units."""
    ids = aws.create_group(GROUP, desired=8, max_size=16, weight=4)
    aws.protect(GROUP, ids[:1])
    backend = make_backend(aws.url)
    AwsFaults(backend.client).edit_next("DescribeAutoScalingGroups", weighed(4))
    note = backend.scale(1, "night")
    assert note is not None
    assert "protected from scale-in, 1 instance holds 4 capacity units" in note


def test_scale_sets_desired_capacity(aws: AwsWorld) -> None:
    aws.create_group(GROUP, desired=2, max_size=6)
    backend = make_backend(aws.url)
    assert backend.scale(4, "forecast peak") is None
    assert aws.group(GROUP)["DesiredCapacity"] == 4
    backend.scale(3, "forecast fell")
    assert aws.group(GROUP)["DesiredCapacity"] == 3


def test_scale_to_the_current_size_writes_nothing(aws: AwsWorld) -> None:
    aws.create_group(GROUP, desired=2)
    backend = make_backend(aws.url)
    faults = AwsFaults(backend.client)
    backend.scale(2, "steady")
    backend.scale(2, "steady")
    assert "SetDesiredCapacity" not in faults.sent
    assert faults.sent == ["DescribeAutoScalingGroups"] * 2


def test_scale_clamps_to_max_and_min_and_says_so(
    aws: AwsWorld, caplog: pytest.LogCaptureFixture
) -> None:
    aws.create_group(GROUP, desired=2, min_size=1, max_size=4)
    backend = make_backend(aws.url)
    with caplog.at_level(logging.WARNING, logger="backends.aws_asg"):
        note = backend.scale(9, "campaign")
    assert aws.group(GROUP)["DesiredCapacity"] == 4
    assert note == "asked for 9, clamped to 4: above the group's MaxSize 4"
    assert "clamped to 4" in caplog.text
    note = backend.scale(0, "night")
    assert aws.group(GROUP)["DesiredCapacity"] == 1
    assert note is not None and "MinSize 1" in note


def test_scale_in_is_clamped_by_protected_instances(aws: AwsWorld) -> None:
    ids = aws.create_group(GROUP, desired=4, max_size=6)
    aws.protect(GROUP, ids[:3])
    backend = make_backend(aws.url)
    note = backend.scale(1, "night")
    group = aws.group(GROUP)
    assert group["DesiredCapacity"] == 3
    assert note is not None and "3 instances are protected" in note
    remaining = {i["InstanceId"] for i in group["Instances"]}
    assert set(ids[:3]) <= remaining  # the protected ones all stay


def test_protected_instances_on_standby_do_not_hold_a_scale_in(aws: AwsWorld) -> None:
    """Against moto serving the documented Auto Scaling query API: two protected instances
    put on standby (EnterStandby, desired capacity decremented), as an operator does to
    patch or debug them. A standby instance is out of the desired capacity and lowering it
    never removes one. Before, they counted as protected instances of the count, and a
    scale-in from 2 to 1 was clamped to 2 and nothing written; now 1 is written."""
    ids = aws.create_group(GROUP, desired=4, max_size=6)
    aws.protect(GROUP, ids[:2])
    aws.autoscaling.enter_standby(
        AutoScalingGroupName=GROUP, InstanceIds=ids[:2], ShouldDecrementDesiredCapacity=True
    )
    assert aws.group(GROUP)["DesiredCapacity"] == 2
    assert make_backend(aws.url).scale(1, "night") is None
    group = aws.group(GROUP)
    assert group["DesiredCapacity"] == 1
    standby = {i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "Standby"}
    assert standby == set(ids[:2])


@pytest.mark.parametrize(("process", "asked"), [("Launch", 5), ("Terminate", 1)], ids=["out", "in"])
def test_a_scale_the_groups_suspended_process_would_never_make_is_told_not_written(
    aws: AwsWorld, process: str, asked: int
) -> None:
    """Against moto serving the documented Auto Scaling query API: the group's Launch (or
    Terminate) process suspended (SuspendProcesses; AWS suspends Launch itself after a day
    of failed launches, as a GPU shortage brings). AWS then takes a raised (lowered)
    DesiredCapacity and launches (removes) nothing. Before, it was written and nothing
    said: pending for ever, or instances paid for that the count no longer held. Now the
    count is held and the note names the process and how to resume it."""
    aws.create_group(GROUP, desired=3, max_size=6)
    aws.autoscaling.suspend_processes(AutoScalingGroupName=GROUP, ScalingProcesses=[process])
    backend = make_backend(aws.url)
    faults = AwsFaults(backend.client)
    note = backend.scale(asked, "forecast")
    assert note is not None and f"{process} process is suspended" in note
    assert f"resume-processes --scaling-processes {process}" in note
    assert "SetDesiredCapacity" not in faults.sent
    assert aws.group(GROUP)["DesiredCapacity"] == 3
    aws.autoscaling.resume_processes(AutoScalingGroupName=GROUP, ScalingProcesses=[process])
    assert backend.scale(asked, "forecast") is None
    assert aws.group(GROUP)["DesiredCapacity"] == asked


def test_throttling_is_retried_with_backoff(aws: AwsWorld) -> None:
    aws.create_group(GROUP, desired=2)
    sleeps: list[float] = []
    backend = make_backend(aws.url, sleeps=sleeps)
    faults = AwsFaults(backend.client)
    faults.fail_next("SetDesiredCapacity", 2, code="Throttling")
    backend.scale(3, "peak")
    assert aws.group(GROUP)["DesiredCapacity"] == 3
    assert len(sleeps) == 2  # our backoff, once per retry: botocore's retries are off
    assert faults.sent.count("SetDesiredCapacity") == 1


def test_a_scaling_activity_in_progress_is_waited_out_not_a_failure(aws: AwsWorld) -> None:
    """Against moto serving the documented Auto Scaling query API, with the error document
    AWS documents for SetDesiredCapacity while another scaling activity runs
    (ScalingActivityInProgress, HTTP 400), which moto never sends. Before, a 400 was
    never retried: the tick failed and the failure was alerted (and under nomad_cluster a
    refused termination gave every draining node back). Now it is retried with backoff."""
    aws.create_group(GROUP, desired=2)
    sleeps: list[float] = []
    backend = make_backend(aws.url, sleeps=sleeps)
    AwsFaults(backend.client).fail_next(
        "SetDesiredCapacity",
        1,
        code="ScalingActivityInProgress",
        message="Scaling activity 3f1c2d6e is in progress and blocks this action",
    )
    assert backend.scale(3, "peak") is None
    assert aws.group(GROUP)["DesiredCapacity"] == 3
    assert len(sleeps) == 1


def test_retries_end_in_a_backend_error(aws: AwsWorld) -> None:
    aws.create_group(GROUP, desired=2)
    backend = make_backend(aws.url, retries=1)
    faults = AwsFaults(backend.client)
    faults.fail_next("DescribeAutoScalingGroups", 2, status=503, code="ServiceUnavailable")
    with pytest.raises(
        BackendError, match=r"failed after 2 attempts: AWS answered ServiceUnavailable"
    ):
        backend.read()


def test_a_refusal_is_not_retried(aws: AwsWorld) -> None:
    aws.create_group(GROUP, desired=2)
    sleeps: list[float] = []
    backend = make_backend(aws.url, sleeps=sleeps)
    faults = AwsFaults(backend.client)
    faults.fail_next("SetDesiredCapacity", 1, code="AccessDenied", message="not authorized")
    with pytest.raises(BackendError, match="AccessDenied"):
        backend.scale(3, "peak")
    assert sleeps == []


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda xml: re.sub(r"<DesiredCapacity>\d+</DesiredCapacity>", "", xml), "None"),
        (lambda xml: re.sub(r"<MaxSize>\d+</MaxSize>", "", xml), "None"),
        (lambda xml: xml.replace("<DesiredCapacity>3<", "<DesiredCapacity>6<"), "outside"),
        (lambda xml: xml.replace("<MinSize>1<", "<MinSize>4<"), "outside"),
        (lambda xml: re.sub(r"<InstanceId>[^<]+</InstanceId>", "", xml, count=1), "InstanceId"),
        (weighed(0), "WeightedCapacity"),
        (weighed("1.5"), "WeightedCapacity"),
    ],
    ids=[
        "no DesiredCapacity",
        "no MaxSize",
        "desired above MaxSize",
        "desired below MinSize",
        "an instance without its ID",
        "a weight of 0 units",
        "a weight of 1.5 units",
    ],
)
def test_a_group_answer_that_breaks_its_documented_shape_is_an_error(
    aws: AwsWorld, edit: Any, said: str
) -> None:
    """moto's own DescribeAutoScalingGroups answer (the documented query API), edited before
    boto3 reads it: a count left out, DesiredCapacity outside MinSize..MaxSize (which AWS
    never lets happen), an instance without its InstanceId. Before, a left-out field was a
    KeyError (a 'tick failed' surprise; `validate --check-backends` ended in a traceback),
    and a group said to hold 6 against MaxSize 4 (it held 3) was asked for 5 and set to 4,
    a write made on a count that was not there. Now each is a BackendError, nothing written."""
    aws.create_group(GROUP, desired=3, min_size=1, max_size=4)
    backend = make_backend(aws.url)
    faults = AwsFaults(backend.client)
    for call in (backend.check, backend.read, lambda: backend.scale(5, "peak")):
        faults.edit_next("DescribeAutoScalingGroups", edit)
        with pytest.raises(BackendError, match=said):
            call()
    assert "SetDesiredCapacity" not in faults.sent
    assert aws.group(GROUP)["DesiredCapacity"] == 3


def test_a_group_being_deleted_is_an_error_not_a_fleet(aws: AwsWorld) -> None:
    """moto's own DescribeAutoScalingGroups answer (the documented query API) with the
    group's Status, which AWS sets only while DeleteAutoScalingGroup runs (a force delete
    empties the group, its counts going to 0, before it is gone), and moto never reports.
    Before, it read as a fleet: its counts taken for a change by hand and alerted so, a
    scale clamped and written on them. Now it is a BackendError saying the group is being
    deleted, and nothing is written."""
    aws.create_group(GROUP, desired=3, min_size=1, max_size=4)
    backend = make_backend(aws.url)
    faults = AwsFaults(backend.client)
    deleting = "<Status>Delete in progress</Status><AutoScalingGroupName>"
    for call in (backend.check, backend.read, lambda: backend.scale(4, "peak")):
        faults.edit_next(
            "DescribeAutoScalingGroups",
            lambda xml: xml.replace("<AutoScalingGroupName>", deleting, 1),
        )
        with pytest.raises(BackendError, match="'gpu-workers' is being deleted"):
            call()
    assert "SetDesiredCapacity" not in faults.sent
    assert aws.group(GROUP)["DesiredCapacity"] == 3


def test_missing_group_is_reported(aws: AwsWorld) -> None:
    with pytest.raises(BackendError, match="'gpu-workers' not found"):
        make_backend(aws.url).check()


def test_unreachable_endpoint_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    sleeps: list[float] = []
    backend = make_backend(f"http://127.0.0.1:{port}", sleeps=sleeps, retries=1)
    with pytest.raises(BackendError, match=r"connection to AWS .* failed"):
        backend.read()
    assert len(sleeps) == 1


def test_keys_never_reach_logs_or_errors(aws: AwsWorld, caplog: pytest.LogCaptureFixture) -> None:
    aws.create_group(GROUP, desired=2)
    backend = make_backend(aws.url, retries=1)
    faults = AwsFaults(backend.client)
    faults.fail_next(
        "SetDesiredCapacity",
        2,
        status=500,
        code="InternalFailure",
        message=f"echo {DUMMY_KEY_ID} {DUMMY_SECRET}",
    )
    # Our loggers at DEBUG, everything else at WARNING: botocore's own DEBUG log prints
    # the signed request headers, so the daemon keeps botocore at WARNING or above.
    with (
        caplog.at_level(logging.WARNING),
        caplog.at_level(logging.DEBUG, logger="backends"),
        pytest.raises(BackendError) as caught,
    ):
        backend.scale(3, "peak")
    text = caplog.text + str(caught.value) + "".join(traceback.format_exception(caught.value))
    assert "[redacted]" in str(caught.value)
    assert DUMMY_KEY_ID not in text
    assert DUMMY_SECRET not in text
    assert DUMMY_SECRET not in repr(backend)


@pytest.mark.parametrize("secret", [DUMMY_KEY_ID, DUMMY_SECRET], ids=["key id", "secret key"])
def test_a_key_echoed_across_the_cut_of_an_error_message_leaves_no_piece(
    aws: AwsWorld, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    """Against moto serving the documented Auto Scaling query API, with an AWS error
    document whose Message quotes a key after 185 characters, so that the 200-character
    cut falls inside it. Before, the message was cut first and redacted after: the key's
    first 14 characters no longer matched it and reached the error and the log. Now the
    message is redacted before it is cut."""
    aws.create_group(GROUP, desired=2)
    backend = make_backend(aws.url, retries=0)
    faults = AwsFaults(backend.client)
    faults.fail_next(
        "DescribeAutoScalingGroups", 1, code="AccessDenied", message=f"{'x' * 185} {secret}"
    )
    with caplog.at_level(logging.DEBUG, logger="backends"), pytest.raises(BackendError) as caught:
        backend.read()
    texts = str(caught.value) + caplog.text
    assert "AccessDenied" in str(caught.value)
    pieces = [secret[i : i + 8] for i in range(len(secret) - 7)]
    assert [piece for piece in pieces if piece in texts] == []


CHAIN_KEY_ID = "ASIAZ4QW8RTPL2MVXN6C"
CHAIN_SECRET = "k9Xq2Vb7Lm4Tz8Rw1Pn6Hs3Jd5Fg0YeQcUoAiEt"
CHAIN_TOKEN = "IQoJb3JpZ2luX2VjEPr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDk7Tz9qLw3"


def test_keys_from_the_credential_chain_are_redacted_where_aws_quotes_them(
    aws: AwsWorld,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Against moto serving the documented Auto Scaling query API, with keys and a session
    token from a profile's shared credentials file (the chain: no keys in the daemon's env,
    as with SSO or an instance role), and an AWS error document quoting them as AWS's
    SignatureDoesNotMatch quotes the signed headers and IncompleteSignature the
    Authorization header. Before, only keys given in env were redacted: the key id and the
    token reached the error and the log. Now what each signed request carries is."""
    write_profile(profile_only(monkeypatch, tmp_path), CHAIN_KEY_ID, CHAIN_TOKEN)
    aws.create_group(GROUP, desired=2)
    backend = AutoScalingGroup(
        AwsAsgBackend(kind="aws_asg", group=GROUP, endpoint_url=aws.url, retries=0),
        env={"AWS_DEFAULT_REGION": "us-east-1"},
    )
    AwsFaults(backend.client).fail_next(
        "DescribeAutoScalingGroups",
        1,
        code="SignatureDoesNotMatch",
        message=f"Authorization=AWS4-HMAC-SHA256 Credential {CHAIN_KEY_ID} "
        f"x-amz-security-token:{CHAIN_TOKEN}",
    )
    with caplog.at_level(logging.DEBUG, logger="backends"), pytest.raises(BackendError) as caught:
        backend.read()
    texts = str(caught.value) + caplog.text
    assert "SignatureDoesNotMatch" in str(caught.value)
    for secret in (CHAIN_KEY_ID, CHAIN_TOKEN):
        pieces = [secret[i : i + 8] for i in range(len(secret) - 7)]
        assert [piece for piece in pieces if piece in texts] == []


ROTATED_KEY_ID = "ASIAM3HD9FYK5CBW7JQE"
ROTATED_TOKEN = "FwoGZXIvYXdzEJr//////////wEaDNf4Yh2kQm8Lp3sWtCKGAc7VxZ1bRn6Ujq"


def test_credentials_a_refresher_rewrote_are_read_again_when_aws_says_expired(
    aws: AwsWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Against moto serving the documented Auto Scaling query API, with a session token in
    a profile's shared credentials file that a refresher (a cron's assume-role, saml2aws)
    rewrites before it expires, and the AWS error document ExpiredToken for the first call
    after the old one expired. boto3 reads that file once: before, every call failed with
    ExpiredToken until a restart. Now the chain is read again and the call made once more
    with the new credentials; keys given in env, which cannot change, are not retried."""
    credentials = profile_only(monkeypatch, tmp_path)
    write_profile(credentials, CHAIN_KEY_ID, CHAIN_TOKEN)
    aws.create_group(GROUP, desired=2)
    backend = AutoScalingGroup(
        AwsAsgBackend(kind="aws_asg", group=GROUP, endpoint_url=aws.url, retries=0),
        env={"AWS_DEFAULT_REGION": "us-east-1"},
    )
    expired = "The security token included in the request is expired"
    AwsFaults(backend.client).fail_next(
        "DescribeAutoScalingGroups", 1, code="ExpiredToken", message=expired
    )
    write_profile(credentials, ROTATED_KEY_ID, ROTATED_TOKEN)
    assert backend.read() == FleetState(desired=2, ready=2, pending=0)
    signed: list[bytes] = []  # each request's Authorization header, as botocore sends it
    backend.client.meta.events.register(
        "before-send.auto-scaling",
        lambda request, **_: signed.append(request.headers["Authorization"]),
    )
    backend.scale(3, "peak")
    assert len(signed) == 2 and all(f"Credential={ROTATED_KEY_ID}/".encode() in s for s in signed)
    assert aws.group(GROUP)["DesiredCapacity"] == 3

    fixed = make_backend(aws.url, retries=0)
    faults = AwsFaults(fixed.client)
    faults.fail_next("DescribeAutoScalingGroups", 1, code="ExpiredToken", message=expired)
    with pytest.raises(BackendError, match="ExpiredToken"):
        fixed.read()
    assert faults.sent == []


@pytest.mark.parametrize(
    ("env", "said"),
    [({}, "no AWS region"), ({"AWS_PROFILE": "gpu-prod", "AWS_REGION": "us-east-1"}, "profile")],
    ids=["no region", "no such profile"],
)
def test_validate_names_the_backend_of_a_group_it_cannot_reach(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], said: str
) -> None:
    """boto3 itself, on a machine whose AWS config names no region and no profile: an
    aws_asg pool without a region (none in the environment either), or with $AWS_PROFILE
    naming a profile that is not there. Before, `validate` (and the start) ended in a
    traceback (botocore's NoRegionError, a BackendError). Now each is refused at the
    file, line and field of the pool's backend, exit status 2."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "autoscaler.yaml"
    path.write_text(
        textwrap.dedent("""\
        metrics: {kind: prometheus, url: https://prometheus.example.com}
        pools:
          - name: p
            backend: {kind: aws_asg, group: sdxl-workers}
            demand: {query: up}
            capacity: {per_node_rps: 1}
            max_nodes: 2
        """)
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:4: pools[0].backend: " in result.output
    assert said in result.output
    assert "Traceback" not in result.output


def profile_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The credential chain left to a shared credentials file (returned, not yet written):
    no keys in the environment, no profile named, no config file."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    credentials = tmp_path / "credentials"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    return credentials


def write_profile(credentials: Path, key_id: str, token: str) -> None:
    credentials.write_text(
        f"[default]\naws_access_key_id = {key_id}\n"
        f"aws_secret_access_key = {CHAIN_SECRET}\naws_session_token = {token}\n"
    )
