"""TaskManagers killed with SIGKILL while vehicles stream: after recovery the stored samples and events equal the
ground truth, with no gap and no duplicate."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from fleetsense.cloud.query import blocks, sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.runtime import send_outbox

from fleetsense import wire
from fleetsense.stack import jobs
from fleetsense.stack.flink import Flink
from fleetsense.stack.layout import StackConfig

from .helpers import expected_keys, provision_vehicle, unique_vehicle
from .test_analytics_pipeline import assert_events_match, record_scripted_drive, wait_for_events


def wait_job_running(stack: StackConfig, job_id: str, timeout_s: float = 120.0) -> None:
    jobs.cluster(stack).wait_running(job_id, timeout_s=timeout_s)


def running_job(stack: StackConfig) -> str:
    job = jobs.cluster(stack).running(jobs.INGEST_JOB_NAME)
    assert job is not None, "the ingest job is not running"
    return job.job_id


def test_killing_taskmanagers_mid_stream_loses_and_duplicates_nothing(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    drives = []
    for seed in (21, 22):
        config = provision_vehicle(operator_client, stack, unique_vehicle("kill"), tmp_path)
        # Slow replay (8 batches/s), so the stream is still flowing while TaskManagers die.
        config = dataclasses.replace(config, outbox=dataclasses.replace(config.outbox, replay_rate_per_s=8.0))
        drives.append(record_scripted_drive(config, seed=seed))
    left: list[int] = []
    senders = [threading.Thread(target=lambda d=d: left.append(send_outbox(d.config, timeout_s=240))) for d in drives]
    for sender in senders:
        sender.start()
    flink = Flink(stack)
    job_id = running_job(stack)
    restarts_before = jobs.cluster(stack).restarts(job_id)
    try:
        for _ in range(2):
            time.sleep(6)
            # Every TaskManager: which one runs the job's tasks is Flink's choice, and a kill that misses them
            # would test nothing.
            for victim in flink.taskmanager_pids():
                os.kill(victim, signal.SIGKILL)
            time.sleep(4)
            flink.start()  # a new TaskManager replaces the dead one, as a supervisor would
            wait_job_running(stack, job_id)
    finally:
        for sender in senders:
            sender.join()
        flink.start()
    assert left == [0, 0]
    wait_job_running(stack, job_id)
    assert jobs.cluster(stack).restarts(job_id) >= restarts_before + 2  # each kill really failed the job
    for drive in drives:
        vid = drive.config.vehicle_id
        assert_events_match(wait_for_events(cql, drive, timeout_s=120), drive.expected_events)
        assert sample_keys(cql, KEYSPACE, vid) == expected_keys(drive.batches, wire.Kind.IMU)
        seqs = sorted(row.seq for row in blocks(cql, KEYSPACE, vid))
        assert seqs == list(range(drive.batches[0].seq, drive.batches[-1].seq + 1))  # contiguous, once each


def test_an_upgrade_through_a_savepoint_mid_stream_loses_and_duplicates_nothing(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    config = provision_vehicle(operator_client, stack, unique_vehicle("upgrade"), tmp_path)
    config = dataclasses.replace(config, outbox=dataclasses.replace(config.outbox, replay_rate_per_s=8.0))
    drive = record_scripted_drive(config, seed=23)
    left: list[int] = []
    sender = threading.Thread(target=lambda: left.append(send_outbox(drive.config, timeout_s=240)))
    sender.start()
    time.sleep(8)
    old, savepoint, new = jobs.upgrade_ingest(stack, {"gap_wait_ms": "12000"})
    sender.join()
    assert left == [0] and old != new and savepoint
    assert_events_match(wait_for_events(cql, drive, timeout_s=120), drive.expected_events)
    assert sample_keys(cql, KEYSPACE, drive.config.vehicle_id) == expected_keys(drive.batches, wire.Kind.IMU)
