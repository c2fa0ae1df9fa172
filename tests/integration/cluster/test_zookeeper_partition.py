"""A ZooKeeper host cut off for a minute must not take Flink down for good (docs/faults.md, known failures: with one
ZooKeeper, after the heal jm1's process was gone, jm2 did not answer, no leader was elected, both TaskManagers had
exited and the job never came back).

Flink's daemons exit on fatal errors (a JobManager or TaskManager that loses its ZooKeeper session beyond the
session timeout) and expect a supervisor to start them again; the cluster gives them one
(fleetsense/cluster/supervisor.py). This module brings up the Flink side of the plan alone (the plan's ZooKeeper
count, two JobManagers, two TaskManagers, a probe job) on its own prefix and subnet, cuts the first ZooKeeper host
off for PARTITION_S, heals it, and asserts that a leader is elected and the job runs again from its last checkpoint
within a bounded time."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fleetsense.cluster import flink_ha, job, netns
from fleetsense.cluster.flink_ha import JobManagerNode, TaskManagerNode
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.cluster.zookeeper import ZooKeeperNode
from fleetsense.errors import FleetsenseError
from fleetsense.stack.layout import default_build_dir
from fleetsense.stack.process import pid_alive

from .conftest import cluster_data_dir

pytestmark = pytest.mark.cluster

PROBE_JOB = Path(__file__).with_name("probe_job.py")
FLINK_ROLES = (Role.ZOOKEEPER, Role.JOBMANAGER, Role.TASKMANAGER)
# As the fault scenario (FLEETSENSE_FAULT_PARTITION_S): ten times Flink's 6 s ZooKeeper session, so every session
# the cut-off node held expires; the daemons' fatal exits happen within the first seconds.
PARTITION_S = 60.0
# From the heal: a restarted JobManager starts in ~15-20 s on this machine (busy: up to ~40 s), wins the election,
# recovers the job from the HA storage, and the restarted TaskManagers register and take its slots.
RECOVERED_WITHIN_S = 180.0


def _data_dir() -> Path:
    cluster_dir = cluster_data_dir()
    return cluster_dir.with_name(f"{cluster_dir.name}-zk-partition")


def _services(plan: ClusterPlan) -> list[ZooKeeperNode | JobManagerNode | TaskManagerNode]:
    services: list[ZooKeeperNode | JobManagerNode | TaskManagerNode] = []
    services += [ZooKeeperNode(plan, host) for host in plan.hosts(Role.ZOOKEEPER)]
    services += [JobManagerNode(plan, host) for host in plan.hosts(Role.JOBMANAGER)]
    services += [TaskManagerNode(plan, host) for host in plan.hosts(Role.TASKMANAGER)]
    return services


@pytest.fixture(scope="module", params=[1, 3], ids=lambda n: f"{n}-zookeeper")
def zk_plan(request: pytest.FixtureRequest) -> Iterator[ClusterPlan]:
    """1 or 3 ZooKeeper hosts (a lone node, whose loss the supervisor must survive; an ensemble, which loses one
    member), jm1, jm2, tm1, tm2, on prefix `<test prefix>z` and subnet +111 (ft6z, 10.197.0.x at offset 600; 10.188
    was another cluster's): apart from the session cluster and from test_flink_ha.py's `<prefix>f` (+100)."""
    base = ClusterPlan.for_tests(_data_dir())
    plan = replace(
        base,
        prefix=f"{base.prefix}z",
        subnet=base.subnet + 111,
        counts={**{role: base.counts[role] for role in FLINK_ROLES}, Role.ZOOKEEPER: int(request.param)},
    )
    netns.remove_all(plan)
    shutil.rmtree(plan.data_dir, ignore_errors=True)  # old HA state would recover an old run's jobs
    try:
        netns.create_bridge(plan)
        for host in plan.hosts():
            netns.create_host(plan, host)
        started = time.monotonic()
        zookeepers, flink = (
            _services(plan)[: len(plan.hosts(Role.ZOOKEEPER))],
            _services(plan)[len(plan.hosts(Role.ZOOKEEPER)) :],
        )
        # ZooKeeper first (an ensemble serves once a majority runs: start every member, then wait on each), then
        # the Flink daemons side by side, as test_flink_ha.py.
        for group in (zookeepers, flink):
            for service in group:
                service.start_process()
            for service in group:
                service.start()
        print(f"\nthe Flink hosts ({', '.join(h.name for h in plan.hosts())}) up in {time.monotonic() - started:.1f} s")
    except FleetsenseError as exc:
        netns.remove_all(plan)
        pytest.fail(f"the Flink hosts did not come up:\n{exc.render()}", pytrace=False)
    yield plan
    pids = [pid for service in _services(plan) for pid in service.pids()]
    netns.remove_all(plan)
    assert not netns.leftovers(plan)
    assert not [pid for pid in pids if pid_alive(pid)], "processes outlived their hosts"


def _leader_or_none(plan: ClusterPlan) -> str | None:
    try:
        return flink_ha.leader(plan).name
    except FleetsenseError:
        return None


def _last_checkpoint(plan: ClusterPlan, job_id: str) -> int | None:
    try:
        return job.last_completed_checkpoint(plan, job_id)
    except (FleetsenseError, OSError, ValueError):
        return None


def test_flink_recovers_after_its_zookeeper_host_is_cut_off(zk_plan: ClusterPlan) -> None:
    jar = default_build_dir() / "fleetsense-flink-amqp.jar"  # any jar: `flink run` wants one beside --python
    job_id = job.flink(zk_plan).submit_python(PROBE_JOB, ["4"], jar=jar)
    job.wait_running(zk_plan, job_id)
    deadline = time.monotonic() + 60
    while (last_before := _last_checkpoint(zk_plan, job_id)) is None:
        assert time.monotonic() < deadline, "the probe job completed no checkpoint within 60 s"
        time.sleep(0.5)

    zk1 = zk_plan.hosts(Role.ZOOKEEPER)[0]
    netns.set_link(zk1, up=False)
    try:
        time.sleep(PARTITION_S)
    finally:
        netns.set_link(zk1, up=True)
    healed_at = time.monotonic()
    during = {s.status().host: f"{s.status().state}/{s.status().detail}" for s in _services(zk_plan)}
    print(f"\njust after the heal: {during}")

    leader = None
    while time.monotonic() - healed_at < RECOVERED_WITHIN_S:
        leader = _leader_or_none(zk_plan)
        if leader is not None and job.is_running(job.job_detail(zk_plan, job_id)):
            break
        time.sleep(1.0)
    recovered_s = time.monotonic() - healed_at
    after = {s.status().host: f"{s.status().state}/{s.status().detail}" for s in _services(zk_plan)}
    assert leader is not None, f"no JobManager leads {recovered_s:.0f} s after the heal: {after}"
    assert job.is_running(job.job_detail(zk_plan, job_id)), (
        f"the job is not running {recovered_s:.0f} s after the heal (leader {leader}): {after}"
    )
    print(
        f"\nZooKeeper cut off {PARTITION_S:.0f} s: leader {leader}, the job running {recovered_s:.1f} s after the heal"
    )

    restored = job.restored_checkpoint(zk_plan, job_id)
    if restored is not None:  # it restarted (with one ZooKeeper it must): from its last checkpoint, not from scratch
        assert not restored["is_savepoint"]
        assert int(restored["id"]) >= last_before
    deadline = time.monotonic() + 60
    while (last := _last_checkpoint(zk_plan, job_id)) is None or last <= last_before:
        assert time.monotonic() < deadline, f"no checkpoint after {last_before} within 60 s of the recovery"
        time.sleep(0.5)
    rss = {s.host.name: [round(flink_ha.jvm.rss_mb(pid)) for pid in s.pids()] for s in _services(zk_plan)}
    print(f"\nrestored from {restored['id'] if restored else '(no restart)'}, checkpointing again; RSS MiB: {rss}")
