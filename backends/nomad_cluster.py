"""Nomad client nodes in an AWS Auto Scaling group, scaled out and safely in.

Scale out raises the group's desired capacity. Scale in never lowers it blindly
(AWS would pick the instances): it picks nodes (empty first, then least busy),
marks them ineligible, drains them through the Nomad API with a deadline, and
only once a node is drained terminates exactly its instance, decrementing the
desired capacity. A drain takes minutes, so nothing here waits for one: the
scale-in in progress is a record (persisted to `state_path`, atomically:
backends.nomad_cluster_record) that every read() and scale() advances a step
(backends.nomad_drain decides the step).

Whatever goes wrong, no node is left ineligible by us: a failed drain or
termination gives the nodes back (drain cancelled, eligible) before the error
is raised; a node busy past its deadline is given back unless the pool allows
terminating it; and each drained node carries the node meta key
`gpu-autoscaler-drain`, so a lost or unreadable record can still be repaired.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from backends.aws_asg import AutoScalingGroup, AwsAsgBackend, OnAGroup, auto_scaling_group
from backends.aws_asg_group import GroupSnapshot, suspended_note
from backends.base import Backend, BackendError, CountChangedError, FleetState, require_count
from backends.nomad_cluster_record import RecordFile
from backends.nomad_connection import NomadAccess, nomad_connection
from backends.nomad_drain import (
    Candidate,
    DrainingNode,
    NodeProgress,
    Step,
    active_allocations,
    choose_nodes_to_remove,
    instance_id_of,
    next_step,
    node_progress,
    node_serves,
)
from backends.nomad_node_api import NomadNodeApi, PoolNodes
from backends.settings import Fleet
from common.clock import Clock, SystemClock
from common.durations import Duration
from common.settings import Name
from common.transport import plain_http_finding


class NomadClusterBackend(NomadAccess):
    """Nomad client nodes in an AWS Auto Scaling group: scale out by raising the group's
    desired capacity; scale in by draining chosen nodes, then terminating exactly them."""

    kind: Literal["nomad_cluster"]
    asg: Name = Field(description="Auto Scaling group the Nomad clients run in")
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

    def fleet(self) -> Fleet:
        """The group whose desired capacity it writes: its node filters only choose
        which of the group's nodes are drained."""
        return auto_scaling_group(self.asg, self.aws_region, self.aws_endpoint_url)

    def plain_findings(self, where: str, env: Mapping[str, str]) -> list[str]:
        return super().plain_findings(where, env) + plain_http_finding(
            self.aws_endpoint_url, f"{where}: aws_endpoint_url"
        )

    def connect(
        self,
        clock: Clock,
        env: Mapping[str, str],
        state_path: Path | None,
        boot_time: timedelta | None = None,
    ) -> Backend:
        return NomadCluster(self, env=env, state_path=state_path, clock=clock, boot_time=boot_time)


log = logging.getLogger(__name__)


class NomadCluster(OnAGroup):
    """A Nomad node pool whose clients are the instances of one Auto Scaling group."""

    name = "nomad_cluster"
    acts_on_read = True  # read() advances a scale-in: a drained node's instance terminated

    def __init__(
        self,
        config: NomadClusterBackend,
        env: Mapping[str, str] = os.environ,
        *,
        state_path: Path | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        boot_time: timedelta | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.connection = nomad_connection(config, env)
        self.group = AutoScalingGroup(
            AwsAsgBackend(
                kind="aws_asg",
                group=config.asg,
                region=config.aws_region,
                endpoint_url=config.aws_endpoint_url,
                timeout=config.timeout,
                retries=config.retries,
                verify_tls=config.verify_tls,
                allow_insecure=config.allow_insecure,
            ),
            env=env,
            sleep=sleep,
            clock=self.clock,
            boot_time=boot_time,  # its failed launches are this pool's nodes not coming
        )
        self._notes: list[str] = []
        """What this scale() call could not do as asked (clamped, partly done)."""
        self.nomad = NomadNodeApi(self.connection, retries=config.retries, sleep=sleep)
        self.target = f"Nomad nodes of Auto Scaling group {config.asg!r}"
        self.record = RecordFile(state_path, config.asg, self.target, self._repair_tagged_nodes)
        self.nodes = PoolNodes(
            self.nomad,
            node_pool=config.node_pool,
            node_class=config.node_class,
            datacenter=config.datacenter,
            drain_mark=config.asg,
            target=self.target,
        )

    def __repr__(self) -> str:
        return f"NomadCluster({self.target} at {self.connection.address})"

    # ---- the Backend interface ---------------------------------------------------------

    def check(self) -> None:
        """Both ends reachable: the group exists and Nomad lists nodes with our token."""
        self._describe()
        self.nodes.listed()

    def read(self) -> FleetState:
        self._advance()
        snapshot = self._describe()
        leaving = len(self.record.loaded().leaving)
        desired = max(snapshot.desired - leaving, 0)
        serving = {i.instance_id for i in snapshot.instances if i.serves}  # healthy InService
        ready = sum(
            1
            for stub in self.nodes.listed()
            if node_serves(stub) and self.nodes.instance_id(stub["ID"]) in serving
        )
        pending = max(desired - ready, 0)
        stuck = self.group.launches.stuck(pending)
        return FleetState(desired=desired, ready=ready, pending=pending, stuck=stuck)

    def scale(self, desired: int, reason: str) -> str | None:
        require_count(desired)
        self._notes = []
        self._advance()
        snapshot = self._describe()
        record = self.record.loaded()
        current = snapshot.desired - len(record.leaving)
        target = self._clamped(desired, snapshot)
        if target == current:
            log.debug("%s already at %d; nothing to write", self.target, target)
            return "; ".join(self._notes) or None
        log.info("%s: %d -> %d (%s)", self.target, current, target, reason)
        if target > current:
            self._scale_out(target, snapshot)
        else:
            self._start_scale_in(current - target, snapshot, reason)
            self._advance()  # empty nodes drain at once: terminate them on this call
        return "; ".join(self._notes) or None

    def _describe(self) -> GroupSnapshot:
        """The group, refused where its DesiredCapacity is in capacity units: every count
        here (desired, ready, a drained node's decrement) is one node per instance."""
        snapshot = self.group.describe()
        if snapshot.units is not None:
            raise BackendError(
                f"Auto Scaling group {self.config.asg!r} counts its DesiredCapacity in "
                f"capacity units ({snapshot.units}), nomad_cluster in nodes: not scaled; "
                "use a group without weights, or kind aws_asg"
            )
        return snapshot

    # ---- scaling out -------------------------------------------------------------------

    def _clamped(self, desired: int, snapshot: GroupSnapshot) -> int:
        target = min(max(desired, snapshot.min_size), snapshot.max_size)
        if target != desired:
            self._note(
                f"asked for {desired}, clamped to {target}: the group allows "
                f"{snapshot.min_size}..{snapshot.max_size}"
            )
        return target

    def _scale_out(self, target: int, snapshot: GroupSnapshot) -> None:
        """Take back nodes still draining first (warm, model loaded); launch the rest."""
        record = self.record.loaded()
        more = target - (snapshot.desired - len(record.leaving))
        taken_back = sorted(record.leaving, key=lambda n: n.started_at, reverse=True)[:more]
        if taken_back:
            self._give_back(taken_back, why="capacity is needed again")
        leaving = len(self.record.loaded().leaving)  # nodes not taken back still leave
        wanted = target + leaving
        if wanted > snapshot.max_size:  # leaving nodes still hold room in the group
            self._note(
                f"{leaving} nodes still draining fill the group's MaxSize {snapshot.max_size}; "
                f"launching up to it"
            )
            wanted = snapshot.max_size
        if wanted > snapshot.desired and "Launch" in snapshot.suspended:
            self._note(
                f"{wanted - snapshot.desired} nodes not launched: {suspended_note('Launch')}"
            )
        elif wanted > snapshot.desired:
            self.group.set_desired(wanted)

    # ---- scaling in --------------------------------------------------------------------

    def _start_scale_in(self, fewer: int, snapshot: GroupSnapshot, reason: str) -> None:
        chosen = choose_nodes_to_remove(self._candidates(snapshot), fewer)
        if len(chosen) < fewer:
            self._note(
                f"asked to remove {fewer} nodes, found {len(chosen)} that can go "
                "(ready, eligible, unprotected, mapped to an in-service instance)"
            )
        if not chosen:
            return
        now = self.clock.now()
        deadline = now + self.config.drain_deadline
        entries = [
            DrainingNode(c.node_id, c.instance_id, c.name, started_at=now, deadline=deadline)
            for c in chosen
        ]
        # Saved before any node is touched: a crash leaves a trace.
        self.record.save(self.record.loaded().with_nodes(entries), first=True)
        try:
            # All ineligible before any drains, so work drained off one node is not
            # placed on another about to go (as `nomad node drain` advises).
            for entry in entries:
                self.nodes.tag(entry.node_id)
                self.nomad.mark_ineligible(entry.node_id, entry.name)
            for entry in entries:
                self.nomad.drain(
                    entry.node_id,
                    entry.name,
                    deadline_s=self.config.drain_deadline.total_seconds(),
                    ignore_system_jobs=self.config.ignore_system_jobs,
                    reason=reason,
                )
        except BackendError as error:
            restored = self._give_back(entries, why="the drain could not be started")
            raise BackendError(f"{error}; {restored}") from None
        names = ", ".join(f"{e.name} ({e.instance_id})" for e in entries)
        log.info("%s: draining %s until %s", self.target, names, deadline.isoformat())

    def _candidates(self, snapshot: GroupSnapshot) -> list[Candidate]:
        removable = {i.instance_id for i in snapshot.instances if i.in_service and not i.protected}
        leaving = {n.node_id for n in self.record.loaded().nodes}
        candidates = []
        for stub in self.nodes.listed():
            node_id = stub["ID"]
            instance_id = self.nodes.instance_id(node_id)
            if node_id in leaving or not node_serves(stub) or instance_id not in removable:
                continue
            busy = active_allocations(self.nomad.allocations(node_id), count_system=False)
            candidates.append(Candidate(node_id, str(stub.get("Name", "")), instance_id, busy))
        return candidates

    # ---- advancing a scale-in in progress ----------------------------------------------

    def _advance(self) -> None:
        """One step for every draining node; raise (after giving nodes back) on failure."""
        record = self.record.loaded()
        if not record.nodes:
            return
        snapshot = self._describe()
        in_group = {i.instance_id for i in snapshot.instances if not i.leaving}
        now = self.clock.now()
        problems: list[str] = []
        for entry in list(record.nodes):
            step, why = next_step(
                entry,
                self._progress(entry, in_group),
                now,
                self.config.terminate_busy_after_deadline,
            )
            label = f"node {entry.name} (instance {entry.instance_id})"
            if step is Step.WAIT:
                log.debug("%s: %s: %s", self.target, label, why)
            elif step is Step.FORGET:
                log.warning("%s: %s: %s; no longer ours to remove", self.target, label, why)
                self.nodes.untag(entry.node_id)
                self.record.save(self.record.loaded().without([entry.node_id]))
                if entry.instance_id not in in_group:  # AWS replaces it: the count is up by it
                    problems.append(f"{label}: {why}; not removed by this scale-in")
            elif step is Step.RESTORE:
                given_back = self._give_back([entry], why=why)
                still_ours = any(n.node_id == entry.node_id for n in self.record.loaded().nodes)
                if still_ours or not entry.restoring:  # a late success was reported before
                    problems.append(f"{label}: {why}; {given_back}")
            else:
                try:
                    self._terminate(entry, why)
                except BackendError as error:  # every node was given back: stop here
                    problems.append(str(error))
                    break
        if problems:  # nodes given back, or replaced by AWS: the group's count is up by them
            raise CountChangedError(f"scale-in of {self.target}: " + " | ".join(problems))

    def _progress(self, entry: DrainingNode, in_group: set[str]) -> NodeProgress:
        node = None if entry.restoring else self.nomad.node(entry.node_id)
        allocations = self.nomad.allocations(entry.node_id) if node is not None else []
        system, here = not self.config.ignore_system_jobs, entry.instance_id in in_group
        try:
            return node_progress(node, allocations, count_system=system, instance_in_group=here)
        except ValueError as error:  # held: not terminated, not given back, not forgotten
            why = f"{self.target}: node {entry.name}: {error}; left as it is"
            raise BackendError(why) from None

    def _terminate(self, entry: DrainingNode, why: str) -> None:
        try:
            self.group.terminate(entry.instance_id)
        except BackendError as error:
            others = list(self.record.loaded().nodes)
            restored = self._give_back(others, why="a termination failed")
            raise BackendError(f"{error}; {restored}") from None
        log.info(
            "%s: terminated %s (instance %s): %s", self.target, entry.name, entry.instance_id, why
        )
        self.nodes.untag(entry.node_id)
        self.record.save(self.record.loaded().without([entry.node_id]))

    def _give_back(self, entries: list[DrainingNode], *, why: str) -> str:
        """Cancel the drains and make the nodes eligible; a sentence saying how it went."""
        given, failed = [], []
        for entry in entries:
            try:
                self.nomad.give_back(entry.node_id, entry.name)
            except BackendError as error:
                failed.append(entry)
                log.error("%s: %s (will retry)", self.target, error)
                continue
            given.append(entry)
            self.nodes.untag(entry.node_id)
        record = self.record.loaded().without(e.node_id for e in entries)
        self.record.save(record.with_nodes(_restoring(e) for e in failed))
        log.warning("%s: gave back %d nodes (%s)", self.target, len(given), why)
        text = "eligibility restored on " + (", ".join(e.name for e in given) or "no node")
        if failed:
            text += "; could not yet restore " + ", ".join(e.name for e in failed)
        return text

    # ---- the record --------------------------------------------------------------------

    def _repair_tagged_nodes(self) -> None:
        """Give back every node carrying our drain tag: the record that knew them is lost."""
        now = self.clock.now()
        tagged = [
            DrainingNode(node_id, instance_id_of(node) or "", str(node.get("Name")), now, now)
            for node_id, node in self.nodes.marked()
        ]
        if tagged:
            self._give_back(tagged, why="the scale-in record was unusable")

    def _note(self, text: str) -> None:
        log.warning("%s: %s", self.target, text)
        self._notes.append(text)


def _restoring(entry: DrainingNode) -> DrainingNode:
    return DrainingNode(
        entry.node_id, entry.instance_id, entry.name, entry.started_at, entry.deadline, True
    )
