"""Flink's high availability on the cluster's hosts: ZooKeeper, a leading and a standby JobManager, TaskManagers on
their own hosts, each in its network namespace. A checkpointing probe job (tests/integration/cluster/probe_job.py)
stands in for the ingest job, so these tests need neither brokers nor Cassandra: the leader is killed (-9) and the
standby takes over with the job restored from its last checkpoint, a TaskManager's host dies and the job restarts on
the other, and the job is rescaled through a savepoint onto a TaskManager host added for it."""

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
PROBE_NAME = "fleetsense-ha-probe"
NEW_LEADER_WITHIN_S = 30.0  # measured ~7 s (the 6 s ZooKeeper session of the dead leader, then the election)
FLINK_ROLES = (Role.ZOOKEEPER, Role.JOBMANAGER, Role.TASKMANAGER)


def _data_dir() -> Path:
    # Beside the session cluster's (<test dir>-cluster), not inside the single-node stack's test dir, which its
    # fixture empties at start.
    cluster_dir = cluster_data_dir()
    return cluster_dir.with_name(f"{cluster_dir.name}-flink-ha")


def _services(plan: ClusterPlan) -> list[ZooKeeperNode | JobManagerNode | TaskManagerNode]:
    services: list[ZooKeeperNode | JobManagerNode | TaskManagerNode] = []
    services += [ZooKeeperNode(plan, host) for host in plan.hosts(Role.ZOOKEEPER)]
    services += [JobManagerNode(plan, host) for host in plan.hosts(Role.JOBMANAGER)]
    services += [TaskManagerNode(plan, host) for host in plan.hosts(Role.TASKMANAGER)]
    return services


@pytest.fixture(scope="module")
def flink_plan() -> Iterator[ClusterPlan]:
    """zk1, jm1, jm2, tm1, tm2 (no brokers, Cassandra or fleet): the Flink side of the plan alone, apart from the
    session's `cluster`."""
    base = ClusterPlan.for_tests(_data_dir())
    # Its own prefix and subnet ("ft6f", 10.186.0.x beside the session cluster's "ft6", 10.86.0.x): these tests
    # kill JobManagers and TaskManagers and fill the slots, which the session cluster's ingest job must not feel.
    plan = replace(
        base,
        prefix=f"{base.prefix}f",
        subnet=base.subnet + 100,
        counts={role: base.counts[role] for role in FLINK_ROLES},
    )
    netns.remove_all(plan)
    shutil.rmtree(plan.data_dir, ignore_errors=True)  # old HA state would recover an old run's jobs
    try:
        netns.create_bridge(plan)
        for host in plan.hosts():
            netns.create_host(plan, host)
        started = time.monotonic()
        services = _services(plan)
        zookeepers = len(plan.hosts(Role.ZOOKEEPER))
        # ZooKeeper first (an ensemble serves once a majority runs: start every member, then wait on each); the
        # Flink daemons then start side by side and find each other there.
        for group in (services[:zookeepers], services[zookeepers:]):
            for service in group:
                service.start_process()
            for service in group:
                service.start()
        print(f"\nzk + 2 JobManagers + 2 TaskManagers up in {time.monotonic() - started:.1f} s")
    except FleetsenseError as exc:
        netns.remove_all(plan)
        pytest.fail(f"the Flink hosts did not come up:\n{exc.render()}", pytrace=False)
    yield plan
    wider = replace(plan, counts={**plan.counts, Role.TASKMANAGER: plan.counts[Role.TASKMANAGER] + 1})
    pids = [pid for service in _services(wider) for pid in service.pids()]
    netns.remove_all(plan)
    assert not netns.leftovers(plan)
    assert not [pid for pid in pids if pid_alive(pid)], "processes outlived their hosts"


def _submit_probe(plan: ClusterPlan, parallelism: int, savepoint: str | None = None) -> str:
    jar = default_build_dir() / "fleetsense-flink-amqp.jar"  # any jar: `flink run` wants one beside --python
    return job.flink(plan).submit_python(PROBE_JOB, [str(parallelism)], jar=jar, savepoint=savepoint)


@pytest.fixture(scope="module")
def probe_job(flink_plan: ClusterPlan) -> str:
    job_id = _submit_probe(flink_plan, 4)
    job.wait_running(flink_plan, job_id)
    return job_id


def _wait_for_checkpoint(plan: ClusterPlan, job_id: str, after: int | None = None) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        last = job.last_completed_checkpoint(plan, job_id)
        if last is not None and (after is None or last > after):
            return last
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} completed no checkpoint (after {after}) within 60 s")


def test_the_cluster_has_one_leader_one_standby_and_every_taskmanager_registered(flink_plan: ClusterPlan) -> None:
    statuses = [service.status() for service in _services(flink_plan)]
    details = {status.host: status.detail for status in statuses}
    assert sorted(details[h.name] for h in flink_plan.hosts(Role.JOBMANAGER)) == ["leader", "standby"]
    assert all(details[h.name] == "registered" for h in flink_plan.hosts(Role.TASKMANAGER))
    assert details["zk1"] in ("standalone", "leader", "follower")  # one node, or a member of the ensemble
    assert all(status.state == "running" for status in statuses)


def test_the_standby_takes_over_when_the_leader_is_killed_and_the_job_resumes_from_its_last_checkpoint(
    flink_plan: ClusterPlan, probe_job: str
) -> None:
    old_leader = flink_ha.leader(flink_plan)
    last_before = _wait_for_checkpoint(flink_plan, probe_job)
    killed_at = time.monotonic()
    assert JobManagerNode(flink_plan, old_leader).kill()

    new_leader = None
    while time.monotonic() - killed_at < NEW_LEADER_WITHIN_S:
        try:
            new_leader = flink_ha.leader(flink_plan)
        except FleetsenseError:
            new_leader = None  # the dead leader's session still holds the election, or none is elected yet
        if new_leader is not None and new_leader != old_leader:
            break
        time.sleep(0.2)
    elected_s = time.monotonic() - killed_at
    assert new_leader is not None and new_leader != old_leader, f"no new leader {elected_s:.1f} s after the kill"

    job.wait_running(flink_plan, probe_job)
    running_s = time.monotonic() - killed_at
    print(f"\nJobManager failover: new leader in {elected_s:.1f} s, the job running again in {running_s:.1f} s")
    restored = job.restored_checkpoint(flink_plan, probe_job)
    assert restored is not None and not restored["is_savepoint"]
    assert int(restored["id"]) >= last_before
    _wait_for_checkpoint(flink_plan, probe_job, after=int(restored["id"]))  # and it checkpoints again

    JobManagerNode(flink_plan, old_leader).start()  # back as the standby
    assert JobManagerNode(flink_plan, old_leader).status().detail == "standby"


def test_the_job_restarts_on_the_other_taskmanager_when_a_taskmanager_host_dies(
    flink_plan: ClusterPlan, probe_job: str
) -> None:
    job.wait_running(flink_plan, probe_job)
    restarts_before = job.restarts(flink_plan, probe_job)
    running_on = _task_hosts(flink_plan, probe_job)
    assert len(running_on) == 2, f"the job's slots should be spread over both TaskManagers, not {running_on}"
    victim, survivor = (flink_plan.by_name(name) for name in sorted(running_on))
    killed_at = time.monotonic()
    assert netns.kill_all(victim)  # the host's power: its TaskManager and the Python workers under it

    deadline = time.monotonic() + 60
    while job.restarts(flink_plan, probe_job) <= restarts_before:
        assert time.monotonic() < deadline, "the job did not restart after its TaskManager's host died"
        time.sleep(0.5)
    # The first restarts may still place tasks on the dead TaskManager (the JobManager notices its loss by the
    # broken connections or, at the latest, the 10 s heartbeat timeout): wait for the job to run on the survivor.
    while not (
        job.is_running(job.job_detail(flink_plan, probe_job)) and _task_hosts(flink_plan, probe_job) == {survivor.name}
    ):
        assert time.monotonic() < deadline, f"the job is not running on {survivor.name} alone within 60 s"
        time.sleep(0.5)
    print(f"\nTaskManager host lost: the job running on the other in {time.monotonic() - killed_at:.1f} s")

    TaskManagerNode(flink_plan, victim).start()


def _task_hosts(plan: ClusterPlan, job_id: str) -> set[str]:
    """The hosts (TaskManager resource ids) running the job's subtasks."""
    import requests

    url = flink_ha.rest_url(plan)
    found = set()
    for vertex in job.flink(plan).job_detail(job_id)["vertices"]:
        detail = requests.get(f"{url}/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers", timeout=5).json()
        for taskmanager in detail.get("taskmanagers", []):
            if taskmanager.get("status") == "RUNNING":
                found.add(str(taskmanager.get("taskmanager-id", "")))
    return found


def test_the_job_rescales_through_a_savepoint_onto_an_added_taskmanager_host(
    flink_plan: ClusterPlan, probe_job: str
) -> None:
    wider = flink_ha.add_taskmanager(flink_plan)
    tm3 = wider.host(Role.TASKMANAGER, 3)
    assert job.total_slots(wider) == 3 * flink_ha.SLOTS_PER_TASKMANAGER

    job.wait_running(wider, probe_job)
    _wait_for_checkpoint(wider, probe_job)
    started = time.monotonic()
    rescaled = job.rescale_job(wider, probe_job, lambda savepoint: _submit_probe(wider, 10, savepoint))
    print(f"\nrescaled 4 -> 10 through a savepoint in {time.monotonic() - started:.1f} s")

    assert job.flink(wider).job_detail(probe_job)["state"] == "FINISHED"  # stop-with-savepoint ends the old run
    assert job.parallelism(wider, rescaled.new_job_id) == 10
    restored = job.restored_checkpoint(wider, rescaled.new_job_id)
    assert restored is not None and restored["is_savepoint"]
    assert restored["external_path"].rstrip("/").endswith(Path(rescaled.savepoint).name)
    assert tm3.name in _task_hosts(wider, rescaled.new_job_id)
