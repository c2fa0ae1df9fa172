"""The ingest job on the whole cluster (the session's `cluster`: 3 brokers, 3 Cassandra nodes, ZooKeeper, a leading
and a standby JobManager, 2 TaskManagers): submitted with every broker and every Cassandra node as its contact
points, it stores a vehicle's scripted drive exactly, and again across a kill -9 of the leading JobManager; and
`fleetsense cluster demo` drives the scripted drive from the fleet host with the same events as its ground truth."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetsense.cloud.cassandra_session import connect
from fleetsense.cloud.query import blocks, sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.runtime import send_outbox

from fleetsense import wire
from fleetsense.cluster import flink_ha, job, jvm
from fleetsense.cluster.endpoints import provision_vehicle
from fleetsense.cluster.flink_ha import JobManagerNode, TaskManagerNode
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.cluster.zookeeper import ZooKeeperNode
from fleetsense.device_config import EdgeConfig, load
from tests.integration.helpers import eventually, expected_keys, unique_vehicle
from tests.integration.test_analytics_pipeline import assert_events_match, record_scripted_drive, wait_for_events


@pytest.fixture(scope="module")
def ring(cluster: ClusterPlan) -> Iterator[Any]:
    contact = (job.contact_points(cluster, Role.CASSANDRA), job.CQL_PORT)
    with connect(contact, keyspace=KEYSPACE) as session:
        yield session


def _vehicle(plan: ClusterPlan, tmp_path: Path, prefix: str, seed: int) -> Any:
    config: EdgeConfig = load(provision_vehicle(plan, unique_vehicle(prefix), out_dir=tmp_path))
    return record_scripted_drive(config, seed=seed)


def _assert_stored_exactly(ring: Any, drive: Any) -> None:
    vehicle_id = drive.config.vehicle_id
    wanted = expected_keys(drive.batches, wire.Kind.IMU)
    eventually(lambda: sample_keys(ring, KEYSPACE, vehicle_id), lambda keys: keys == wanted, timeout_s=180)
    assert_events_match(wait_for_events(ring, drive, timeout_s=120), drive.expected_events)
    seqs = sorted(row.seq for row in blocks(ring, KEYSPACE, vehicle_id))
    assert seqs == list(range(drive.batches[0].seq, drive.batches[-1].seq + 1))  # contiguous, once each


def test_the_ingest_job_connects_to_every_broker_and_cassandra_node(cluster: ClusterPlan) -> None:
    job_id = job.running_job(cluster)
    settings = job.submitted_settings(cluster)
    assert settings["amqp_host"].split(",") == [h.address for h in cluster.hosts(Role.BROKER)]
    assert settings["cassandra_host"].split(",") == [h.address for h in cluster.hosts(Role.CASSANDRA)]
    assert settings["cassandra_local_dc"] == "dc1"
    job.wait_running(cluster, job_id)


def test_a_drive_through_the_cluster_is_stored_exactly(cluster: ClusterPlan, ring: Any, tmp_path: Path) -> None:
    drive = _vehicle(cluster, tmp_path, "cj", seed=51)
    assert send_outbox(drive.config, timeout_s=180) == 0
    _assert_stored_exactly(ring, drive)


def test_the_cluster_demo_drives_from_the_fleet_host_and_finds_the_ground_truths_events(cluster: ClusterPlan) -> None:
    command = ["-m", "fleetsense.cli", "cluster", "--for-tests", "--data-dir", str(cluster.data_dir), "demo"]
    done = subprocess.run(
        [sys.executable, *command, "--vehicles", "2", "--speed", "4"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert done.stdout.count("driven: = ground truth") == 2, done.stdout
    assert "2 of 2 vans: the events stored on the cluster equal the ground truth" in done.stdout
    assert f"drive from {cluster.hosts(Role.FLEET)[0].name}" in done.stdout


def test_a_drive_survives_the_leading_jobmanagers_kill(cluster: ClusterPlan, ring: Any, tmp_path: Path) -> None:
    job_id = job.running_job(cluster)
    drive = _vehicle(cluster, tmp_path, "cjha", seed=52)
    left: list[int] = []
    sender = threading.Thread(target=lambda: left.append(send_outbox(drive.config, timeout_s=240)))
    sender.start()
    try:
        time.sleep(3)
        last_before = job.last_completed_checkpoint(cluster, job_id)
        leader = flink_ha.leader(cluster)
        killed_at = time.monotonic()
        assert JobManagerNode(cluster, leader).kill()
        job.wait_running(cluster, job_id)
        print(f"\ningest job running again {time.monotonic() - killed_at:.1f} s after the leader's kill")
        assert flink_ha.leader(cluster) != leader
        restored = job.restored_checkpoint(cluster, job_id)
        assert restored is not None and last_before is not None and int(restored["id"]) >= last_before
    finally:
        sender.join()
        JobManagerNode(cluster, leader).start()  # back, as the standby
    assert left == [0]
    _assert_stored_exactly(ring, drive)


def test_the_job_rescales_through_a_savepoint_onto_an_added_taskmanager_and_stores_exactly(
    cluster: ClusterPlan, ring: Any, tmp_path: Path
) -> None:
    wider = flink_ha.add_taskmanager(cluster)
    old_id = job.running_job(wider)
    new_parallelism = 6  # more than the 4 slots of one TaskManager, at most the 16 shards
    started = time.monotonic()
    rescaled = job.rescale(wider, new_parallelism)
    print(f"\ningest job rescaled 4 -> {new_parallelism} through a savepoint in {time.monotonic() - started:.1f} s")
    assert rescaled.old_job_id == old_id and rescaled.new_job_id != old_id
    assert job.parallelism(wider, rescaled.new_job_id) == new_parallelism
    restored = job.restored_checkpoint(wider, rescaled.new_job_id)
    assert restored is not None and restored["is_savepoint"]
    assert job.submitted_settings(wider)["parallelism"] == new_parallelism

    drive = _vehicle(wider, tmp_path, "cjrs", seed=53)
    assert send_outbox(drive.config, timeout_s=180) == 0
    _assert_stored_exactly(ring, drive)
    for service in [
        *(ZooKeeperNode(wider, h) for h in wider.hosts(Role.ZOOKEEPER)),
        *(JobManagerNode(wider, h) for h in wider.hosts(Role.JOBMANAGER)),
        *(TaskManagerNode(wider, h) for h in wider.hosts(Role.TASKMANAGER)),
    ]:
        sizes = ", ".join(f"{jvm.rss_mb(pid):.0f}" for pid in service.pids())
        print(f"RSS {service.host.name} {service.name}: {sizes} MiB (each process of the service)")
