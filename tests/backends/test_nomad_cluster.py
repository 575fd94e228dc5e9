"""NomadCluster: python-nomad against the Nomad API double, boto3 against moto's server."""

from __future__ import annotations

import logging
import os
import threading
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backends.base import BackendError, CountChangedError, FleetState
from backends.nomad_cluster import NomadCluster, NomadClusterBackend
from backends.nomad_drain import DRAIN_META_KEY
from common.clock import SimulatedClock
from tests.backends.test_aws_asg_launches import NO_CAPACITY, activity, with_activities
from tests.doubles.moto_server import AWS_ENV, DUMMY_SECRET, AwsFaults, AwsWorld, aws, moto_server
from tests.doubles.nomad_api import DOUBLE_ACL_TOKEN, NomadApiDouble, nomad_api
from tests.doubles.nomad_nodes import FakeNode

__all__ = ["aws", "moto_server", "nomad_api"]  # fixtures, used by name below

GROUP = "gpu-nomad-clients"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Cluster:
    """One arranged world: an ASG in moto whose instances are nodes in the Nomad double."""

    def __init__(self, aws: AwsWorld, nomad: NomadApiDouble, tmp_path: Path) -> None:
        self.aws, self.nomad = aws, nomad
        self.clock = SimulatedClock(START)
        self.state_path = tmp_path / "gpu-scale-in.json"
        self.sleeps: list[float] = []

    def arrange(self, busy: list[int], *, min_size: int = 0, **node_kw: Any) -> list[FakeNode]:
        """One node per instance; busy[i] running service allocations on node i."""
        ids = self.aws.create_group(GROUP, desired=len(busy), min_size=min_size, max_size=8)
        return [
            self.nomad.add_node(instance, running=count, system=1, name=f"gpu-{n}", **node_kw)
            for n, (instance, count) in enumerate(zip(ids, busy, strict=True))
        ]

    def backend(self, boot_time: timedelta | None = None, **overrides: Any) -> NomadCluster:
        settings: dict[str, Any] = {
            "kind": "nomad_cluster",
            "asg": GROUP,
            "aws_endpoint_url": self.aws.url,
            "address": self.nomad.url,
            "drain_deadline": "10m",
            "timeout": "2s",
            "retries": 1,
        }
        settings.update(overrides)
        env = {**AWS_ENV, "NOMAD_TOKEN": DOUBLE_ACL_TOKEN}
        return NomadCluster(
            NomadClusterBackend(**settings),
            env=env,
            state_path=self.state_path,
            clock=self.clock,
            sleep=self.sleeps.append,
            boot_time=boot_time,
        )

    def desired(self) -> int:
        return int(self.aws.group(GROUP)["DesiredCapacity"])

    def instances(self) -> set[str]:
        return set(self.aws.instance_ids(GROUP))

    def writes(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.nomad.requests if r.method != "GET"]


@pytest.fixture
def cluster(aws: AwsWorld, nomad_api: NomadApiDouble, tmp_path: Path) -> Cluster:
    return Cluster(aws, nomad_api, tmp_path)


def eligible(node: FakeNode) -> bool:
    return node.eligibility == "eligible" and node.drain_strategy is None


# ---- reading and scaling out --------------------------------------------------------


def test_read_counts_ready_nodes_that_are_in_service_instances(cluster: Cluster) -> None:
    nodes = cluster.arrange([1, 0, 2, 0])
    nodes[1].status = "down"
    nodes[2].eligibility = "ineligible"
    cluster.nomad.add_node("i-0123456789abcdef0")  # not an instance of this group
    cluster.nomad.add_node(None)  # no instance attribute
    assert cluster.backend().read() == FleetState(desired=4, ready=2, pending=2)


def test_a_node_whose_instance_aws_marked_unhealthy_is_not_ready(cluster: Cluster) -> None:
    """Against moto serving the documented Auto Scaling query API: SetInstanceHealth marks
    an instance Unhealthy (a failed EC2 status or ELB health check), which AWS lists as
    InService until it replaces it, and for good while ReplaceUnhealthy is suspended; its
    Nomad client still heartbeats, so the node reads ready. Before, it counted ready (the
    aws_asg backend already did not): the signals sized on a node that served nothing.
    Now it reads as pending."""
    cluster.arrange([1, 1, 1])
    cluster.aws.autoscaling.suspend_processes(
        AutoScalingGroupName=GROUP, ScalingProcesses=["ReplaceUnhealthy"]
    )
    sick = sorted(cluster.instances())[0]
    cluster.aws.autoscaling.set_instance_health(InstanceId=sick, HealthStatus="Unhealthy")
    assert cluster.backend().read() == FleetState(desired=3, ready=2, pending=1)


def test_pool_filters_limit_which_nodes_count(cluster: Cluster) -> None:
    nodes = cluster.arrange([0, 0, 0])
    nodes[0].node_pool = "cpu"
    nodes[1].datacenter = "dc2"
    assert cluster.backend(node_pool="default", datacenter="dc1").read().ready == 1
    assert cluster.backend(node_class="gpu").read().ready == 3


def test_scale_out_raises_desired_capacity_only(cluster: Cluster) -> None:
    cluster.arrange([1, 1])
    backend = cluster.backend()
    backend.scale(4, "morning peak")
    assert cluster.desired() == 4
    assert cluster.writes() == []
    assert backend.read().desired == 4


def test_scale_out_is_clamped_to_max_size_and_says_so(cluster: Cluster) -> None:
    cluster.arrange([1, 1])
    backend = cluster.backend()
    note = backend.scale(20, "campaign")
    assert cluster.desired() == 8
    assert note is not None and "clamped to 8" in note


def test_scale_out_with_the_groups_launch_suspended_is_told_not_written(
    cluster: Cluster,
) -> None:
    """Against moto serving the documented Auto Scaling query API: the group's Launch
    process suspended (by hand, or by AWS after a day of failed launches). A raised
    DesiredCapacity launches nothing; before, it was written and the nodes waited for
    unseen. Now it is not written, and the note names the process."""
    cluster.arrange([1, 1])
    cluster.aws.autoscaling.suspend_processes(
        AutoScalingGroupName=GROUP, ScalingProcesses=["Launch"]
    )
    note = cluster.backend().scale(4, "morning peak")
    assert note is not None and "2 nodes not launched" in note
    assert "Launch process is suspended" in note
    assert cluster.desired() == 2


@pytest.mark.parametrize("measure", ["weights", "vcpu"])
def test_a_group_that_counts_capacity_units_is_refused_and_held(
    cluster: Cluster, measure: str
) -> None:
    """Against moto: a group whose DesiredCapacity is not a count of instances (a mixed
    instances policy weighing its type 4 units: 8 units are 2 nodes; or a
    DesiredCapacityType of vcpu, which moto leaves out of its answer and is edited in).
    Before, nomad_cluster read 8 nodes wanted and 2 ready (6 pending), wrote node counts
    as units, and a one-node scale-in terminated 4 units. Now every call is refused with
    the group named and why, and nothing is written."""
    weight = 4 if measure == "weights" else None
    ids = cluster.aws.create_group(GROUP, desired=8 if weight else 2, max_size=16, weight=weight)
    for n, instance in enumerate(ids):
        cluster.nomad.add_node(instance, running=0, name=f"gpu-{n}")
    backend = cluster.backend()
    if measure == "vcpu":
        faults = AwsFaults(backend.group.client)
        in_vcpus = "<DesiredCapacityType>vcpu</DesiredCapacityType><MinSize>"
        for _ in range(3):
            faults.edit_next(
                "DescribeAutoScalingGroups", lambda xml: xml.replace("<MinSize>", in_vcpus)
            )
    desired = cluster.desired()
    for call in (backend.check, backend.read, lambda: backend.scale(1, "night")):
        with pytest.raises(BackendError) as refused:
            call()
        assert f"Auto Scaling group {GROUP!r}" in str(refused.value)
        assert "capacity units" in str(refused.value)
    assert cluster.desired() == desired and cluster.writes() == []
    assert all(eligible(node) for node in cluster.nomad.nodes.values())


def test_the_groups_failed_launches_are_the_nodes_not_coming_up(cluster: Cluster) -> None:
    """Against moto serving the documented Auto Scaling query API, its empty activity list
    edited to the failures AWS records while GPU capacity is short, and the Nomad double
    with no node for the two instances asked for. Before, the read said 2 pending, for
    ever, and nothing why. Now it carries AWS's cause, as aws_asg's read does."""
    cluster.arrange([1, 1, 1])
    cluster.aws.autoscaling.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=5)
    backend = cluster.backend(boot_time=timedelta(minutes=10))
    failures = [activity(14, "Failed", NO_CAPACITY), activity(36, "Failed", NO_CAPACITY)]
    AwsFaults(backend.group.client).edit_next(
        "DescribeScalingActivities", with_activities(failures)
    )
    fleet = backend.read()
    assert (fleet.desired, fleet.ready, fleet.pending) == (5, 3, 2)
    assert fleet.stuck is not None and fleet.stuck.startswith("2 instance launches failed")
    assert "sufficient p4d.24xlarge capacity" in fleet.stuck


# ---- scaling in ---------------------------------------------------------------------


def test_scale_in_drains_empty_then_least_busy_and_terminates_exactly_them(
    cluster: Cluster,
) -> None:
    nodes = cluster.arrange([3, 0, 1, 2])
    before = cluster.instances()
    backend = cluster.backend()
    backend.scale(2, "evening")
    chosen = {nodes[1].id, nodes[2].id}
    drains = [r for r in cluster.nomad.requests if r.path.endswith("/drain")]
    assert {r.path for r in drains} == {f"/v1/node/{i}/drain" for i in chosen}
    assert drains[0].body["DrainSpec"] == {"Deadline": 600 * 10**9, "IgnoreSystemJobs": True}
    eligibility = cluster.nomad.requests_to("POST", f"/v1/node/{nodes[1].id}/eligibility")
    assert eligibility[0].body["Eligibility"] == "ineligible"
    # The double drains at once: both were terminated on this same call.
    assert cluster.instances() == before - {nodes[1].instance_id, nodes[2].instance_id}
    assert cluster.desired() == 2
    assert backend.read() == FleetState(desired=2, ready=2, pending=0)
    assert not cluster.state_path.exists()
    assert all(DRAIN_META_KEY not in n.meta for n in nodes)


def test_a_drain_in_progress_blocks_nothing_and_progresses_on_later_calls(
    cluster: Cluster,
) -> None:
    nodes = cluster.arrange([0, 2, 1, 3], drain_seconds=None)  # drains end on demand
    backend = cluster.backend()
    backend.scale(2, "evening")
    assert cluster.desired() == 4  # nothing terminated yet
    assert backend.read() == FleetState(desired=2, ready=2, pending=0)
    assert nodes[0].meta[DRAIN_META_KEY] == GROUP
    writes = len(cluster.writes())
    backend.scale(2, "evening")  # the same decision again: no new writes anywhere
    assert len(cluster.writes()) == writes

    cluster.nomad.finish_drain(nodes[0].id)
    assert backend.read().desired == 2
    assert cluster.desired() == 3
    assert nodes[0].instance_id not in cluster.instances()
    cluster.nomad.finish_drain(nodes[2].id)
    backend.read()
    assert cluster.desired() == 2
    assert cluster.instances() == {nodes[1].instance_id, nodes[3].instance_id}


def test_busy_past_the_deadline_is_given_back_not_terminated(cluster: Cluster) -> None:
    nodes = cluster.arrange([4, 5], drain_seconds=None)
    backend = cluster.backend()
    backend.scale(1, "night")
    assert not eligible(nodes[0])
    cluster.clock.advance(timedelta(minutes=11))
    with pytest.raises(BackendError, match="past the drain deadline; not terminated") as caught:
        backend.read()
    assert "eligibility restored on gpu-0" in str(caught.value)
    assert eligible(nodes[0])
    assert cluster.desired() == 2 and len(cluster.instances()) == 2
    assert backend.read() == FleetState(desired=2, ready=2, pending=0)


def test_busy_past_the_deadline_is_terminated_when_the_pool_allows(cluster: Cluster) -> None:
    nodes = cluster.arrange([4, 5], drain_seconds=None)
    backend = cluster.backend(terminate_busy_after_deadline=True)
    backend.scale(1, "night")
    cluster.clock.advance(timedelta(minutes=5))
    backend.read()
    assert cluster.desired() == 2  # before the deadline: still waiting
    cluster.clock.advance(timedelta(minutes=6))
    assert backend.read().desired == 1
    assert cluster.instances() == {nodes[1].instance_id}


def test_a_failed_termination_gives_every_node_back(cluster: Cluster) -> None:
    nodes = cluster.arrange([0, 0, 3])
    backend = cluster.backend()
    faults = AwsFaults(backend.group.client)
    faults.fail_next(
        "TerminateInstanceInAutoScalingGroup", 1, code="ValidationError", message="no such instance"
    )
    with pytest.raises(BackendError, match=r"ValidationError.*restored on gpu-0, gpu-1"):
        backend.scale(1, "night")
    assert all(eligible(n) for n in nodes)
    assert cluster.desired() == 3 and len(cluster.instances()) == 3
    assert not cluster.state_path.exists()


def test_a_failed_drain_gives_the_nodes_back(cluster: Cluster) -> None:
    nodes = cluster.arrange([0, 1, 2])
    cluster.nomad.fail_next(1, status=403, path="/drain")
    with pytest.raises(BackendError, match=r"draining node gpu-0.*eligibility restored"):
        cluster.backend().scale(1, "night")
    assert all(eligible(n) for n in nodes)
    assert cluster.desired() == 3


def test_scale_out_during_a_drain_takes_draining_nodes_back_first(cluster: Cluster) -> None:
    nodes = cluster.arrange([0, 1, 2], drain_seconds=None)
    backend = cluster.backend()
    backend.scale(1, "night")
    backend.scale(3, "surprise traffic")
    assert all(eligible(n) for n in nodes)
    assert cluster.desired() == 3  # no new instance launched: the warm nodes came back
    assert backend.read() == FleetState(desired=3, ready=3, pending=0)


def test_a_node_whose_give_back_failed_is_not_counted_as_leaving(cluster: Cluster) -> None:
    """A scale-out took two draining nodes back and one give-back failed: that node stays
    (its give-back is retried, it is never terminated), but it was still counted as
    leaving, so the scale-out launched an instance for it too: one more than asked once
    its give-back went through."""
    nodes = cluster.arrange([0, 1, 2], drain_seconds=None)
    backend = cluster.backend()
    backend.scale(1, "night")
    assert not eligible(nodes[0]) and not eligible(nodes[1])
    cluster.nomad.fail_next(2, status=503, path="/drain")  # one node's give-back, twice
    backend.scale(3, "surprise traffic")
    assert cluster.desired() == 3 and len(cluster.instances()) == 3  # none launched
    assert backend.read() == FleetState(desired=3, ready=3, pending=0)  # given back now
    assert all(eligible(n) for n in nodes)
    assert not cluster.state_path.exists()


# ---- surviving a restart ------------------------------------------------------------


def test_a_restart_mid_drain_resumes_the_scale_in(cluster: Cluster) -> None:
    nodes = cluster.arrange([0, 2, 1], drain_seconds=None)
    cluster.backend().scale(1, "night")
    assert cluster.state_path.exists()
    cluster.nomad.finish_drain(nodes[0].id)
    cluster.nomad.finish_drain(nodes[2].id)
    restarted = cluster.backend()
    assert restarted.read().desired == 1
    assert cluster.instances() == {nodes[1].instance_id}
    assert not cluster.state_path.exists()


def test_a_save_killed_before_its_rename_leaves_nothing_after_the_restart(
    cluster: Cluster,
) -> None:
    """kill -9 (or a power cut) mid-save leaves the save's temporary file beside the record,
    which is whole; nothing removed it, one more for each such kill. The first use after
    the restart does, and resumes the scale-in from the record."""
    nodes = cluster.arrange([0, 2, 1], drain_seconds=None)
    cluster.backend().scale(1, "night")
    leftover = cluster.state_path.with_name(f".{cluster.state_path.name}.k3j2h1.tmp")
    leftover.write_text('{"group": "gpu-nomad-clients", "nod')
    cluster.nomad.finish_drain(nodes[0].id)
    restarted = cluster.backend()
    assert restarted.read().desired == 1  # the scale-in resumed: node 2 still leaving
    assert cluster.desired() == 2  # node 0 terminated as its drain finished
    assert not leftover.exists()
    assert sorted(p.name for p in cluster.state_path.parent.iterdir()) == [cluster.state_path.name]


def test_an_unusable_record_gives_tagged_nodes_back(cluster: Cluster) -> None:
    nodes = cluster.arrange([0, 2, 1], drain_seconds=None)
    cluster.backend().scale(1, "night")
    assert not eligible(nodes[0]) and not eligible(nodes[2])
    cluster.state_path.write_text("{ half a record", encoding="utf-8")
    restarted = cluster.backend()
    assert restarted.read() == FleetState(desired=3, ready=3, pending=0)
    assert all(eligible(n) for n in nodes)
    assert all(DRAIN_META_KEY not in n.meta for n in nodes)
    assert not cluster.state_path.exists()


def test_a_record_that_is_a_fifo_is_unusable_not_waited_on(cluster: Cluster) -> None:
    """A FIFO where the record belongs held every read (under the tick lock) for a writer
    that never came; it is an unusable record now, and the pool reads and scales."""
    nodes = cluster.arrange([0, 2, 1], drain_seconds=None)
    os.mkfifo(cluster.state_path)
    backend = cluster.backend()
    answers: list[FleetState] = []
    reading = threading.Thread(target=lambda: answers.append(backend.read()), daemon=True)
    reading.start()
    reading.join(timeout=20)
    if reading.is_alive():  # let the blocked read go before failing
        os.close(os.open(cluster.state_path, os.O_WRONLY | os.O_NONBLOCK))
    assert answers == [FleetState(desired=3, ready=3, pending=0)]
    backend.scale(2, "evening")
    assert sum(not eligible(n) for n in nodes) == 1
    assert cluster.state_path.is_file()


def test_a_scale_in_whose_record_cannot_be_written_touches_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The backend's state folder is a file (or the disk is full): the scale-in does not
    start, and the pool reads and scales out as before. Before, the record of nodes never
    drained stayed in memory: the next reads failed on saving it (OSError, a 'tick'
    failure) and a scale-out was refused until each phantom node was forgotten."""
    nodes = cluster.arrange([0, 2, 1, 3], drain_seconds=None)
    (tmp_path / "state").write_text("a file where the folder should be")
    cluster.state_path = tmp_path / "state" / "gpu.backend.json"
    backend = cluster.backend()
    with pytest.raises(BackendError, match=r"not scaling in: scale-in record .*gpu.backend.json"):
        backend.scale(2, "evening")
    assert all(eligible(n) for n in nodes) and cluster.writes() == []
    assert backend.read() == FleetState(desired=4, ready=4, pending=0)
    backend.scale(5, "morning")
    assert cluster.desired() == 5


def test_a_record_that_cannot_be_saved_mid_scale_in_does_not_stop_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The folder breaks while nodes drain: they are still terminated as they finish, and
    reads go on (each save that fails is logged)."""
    nodes = cluster.arrange([0, 2, 1], drain_seconds=None)
    cluster.state_path = tmp_path / "state" / "gpu.backend.json"
    backend = cluster.backend()
    backend.scale(1, "night")
    cluster.state_path.unlink()
    cluster.state_path.parent.rmdir()
    cluster.state_path.parent.write_text("a file where the folder should be")
    cluster.nomad.finish_drain(nodes[0].id)
    assert backend.read() == FleetState(desired=1, ready=1, pending=0)
    assert cluster.desired() == 2
    cluster.nomad.finish_drain(nodes[2].id)
    assert backend.read().desired == 1
    assert cluster.instances() == {nodes[1].instance_id}


# ---- secrets ------------------------------------------------------------------------


def test_tokens_and_keys_never_reach_logs_or_errors(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.arrange([0, 1])
    cluster.nomad.acl_token = "another-token"  # ours is refused from now on
    backend = cluster.backend()
    with (
        caplog.at_level(logging.WARNING),
        caplog.at_level(logging.DEBUG, logger="backends"),
        pytest.raises(BackendError) as caught,
    ):
        backend.scale(1, "night")
    assert "NOMAD_TOKEN" in str(caught.value)
    text = caplog.text + "".join(traceback.format_exception(caught.value)) + repr(backend)
    assert DOUBLE_ACL_TOKEN not in text
    assert DUMMY_SECRET not in text


def test_protected_instances_are_never_chosen(cluster: Cluster) -> None:
    nodes = cluster.arrange([0, 0, 5])
    cluster.aws.protect(GROUP, [nodes[0].instance_id, nodes[1].instance_id])
    backend = cluster.backend()
    note = backend.scale(1, "night")
    assert cluster.instances() == {nodes[0].instance_id, nodes[1].instance_id}
    assert note is not None and "found 1 that can go" in note


def a_give_back_failed(cluster: Cluster) -> tuple[list[FakeNode], NomadCluster]:
    """Two nodes, one drained for a scale-in past its deadline, whose give-back then failed
    on both attempts: the nodes and the backend, which still owes the give-back."""
    nodes = cluster.arrange([4, 5], drain_seconds=None)
    backend = cluster.backend()
    backend.scale(1, "night")
    cluster.clock.advance(timedelta(minutes=11))
    cluster.nomad.fail_next(2, status=503, path="/drain")  # both attempts of the give-back
    with pytest.raises(BackendError, match="could not yet restore gpu-0"):
        backend.read()
    return nodes, backend


def test_a_failed_give_back_is_retried_on_the_next_call(cluster: Cluster) -> None:
    nodes, backend = a_give_back_failed(cluster)
    assert not eligible(nodes[0])
    assert backend.read() == FleetState(desired=2, ready=2, pending=0)
    assert eligible(nodes[0])
    assert not cluster.state_path.exists()


def test_a_node_that_left_nomad_while_its_give_back_waited_is_not_retried_forever(
    cluster: Cluster,
) -> None:
    """Nomad answers a drain update for a node it no longer knows (purged, or collected
    once its instance went) with HTTP 500 "node not found", not a 404: the give-back
    took that for a passing fault and failed on every call after, the node never there
    to take it. A node that left has nothing to give back."""
    nodes, backend = a_give_back_failed(cluster)
    with cluster.nomad.lock:
        del cluster.nomad.nodes[nodes[0].id]  # `nomad node purge`, or the GC
    assert backend.read() == FleetState(desired=2, ready=1, pending=1)
    assert not cluster.state_path.exists()
    assert backend.read() == FleetState(desired=2, ready=1, pending=1)


def test_a_draining_node_whose_instance_aws_replaced_is_no_change_by_hand(
    cluster: Cluster,
) -> None:
    """Against moto serving the documented Auto Scaling query API: while a chosen node
    drains, AWS replaces its instance (a failed ELB health check once its work is gone, a
    Spot rebalance, MaxInstanceLifetime, an instance refresh): terminated without lowering
    DesiredCapacity, and a new one launched. Before, the node was quietly forgotten and the
    next read said 3 where the scale-in had said 2, which the tick took for a change by
    hand (alerted, and held at 3 for the cooldown). Now the read fails as a count the
    backend's own scale-in changed, saying so, and the next read is no change by hand."""
    nodes = cluster.arrange([0, 1, 2], drain_seconds=None)
    backend = cluster.backend()
    backend.scale(2, "evening")
    assert backend.read().desired == 2
    cluster.aws.autoscaling.terminate_instance_in_auto_scaling_group(
        InstanceId=nodes[0].instance_id, ShouldDecrementDesiredCapacity=False
    )
    with pytest.raises(CountChangedError, match=r"gpu-0.*replaced by AWS.*not removed"):
        backend.read()
    assert backend.read().desired == 3
    assert not cluster.state_path.exists() or nodes[0].id not in cluster.state_path.read_text()
