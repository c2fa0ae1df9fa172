"""The fault scenarios' harness, proven on the single-node stack: a fleet replaying scripted drives through the real
edge link while every TaskManager is killed, then the verdict (nothing lost, nothing counted twice, events = ground
truth) and the time until the pipeline was current again; and a vehicle that never sent is judged as all lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from fleetsense.stack import jobs, manager
from fleetsense.stack.flink import Flink
from fleetsense.stack.layout import StackConfig

from . import conftest
from .cluster.ground_truth import FleetRun, judge, prepare_fleet, record, time_until_current

FLEET_SIZE = 12
SPEED = 4.0  # the 175 s drive in ~45 s: traffic flows before, during and after the kill


def last_failure_s(stack: StackConfig, job_id: str) -> float:
    """When the job last failed (UTC seconds, 0 never), from its exception history: the numRestarts metric is read
    from a cache that can be as old as 10 s."""
    entries = jobs.cluster(stack).exception_history(job_id).get("exceptionHistory", {}).get("entries", [])
    return max((entry["timestamp"] / 1000 for entry in entries), default=0.0)


def test_the_harness_judges_a_fleet_through_a_taskmanager_kill_and_measures_the_recovery(
    stack: StackConfig, operator_client: Any, ingest_job: str, cql: Any, tmp_path: Path
) -> None:
    started = time.monotonic()

    def provision(vehicle_id: str, out_dir: Path) -> Path:
        return manager.provision_vehicle(stack, operator_client, vehicle_id, out_dir=out_dir)

    fleet = prepare_fleet(provision, tmp_path / "fleet", count=FLEET_SIZE, prefix="gt", seed=40)
    never_sent = prepare_fleet(provision, tmp_path / "silent", count=1, prefix="gtq", seed=60)
    run = FleetRun(fleet, speed=SPEED, timeout_s=300).start()
    flink = Flink(stack)
    job = jobs.cluster(stack).running(jobs.INGEST_JOB_NAME)
    assert job is not None, "the ingest job is not running"
    try:
        run.wait_produced(0.3)
        killed, killed_at_s = flink.taskmanager_pids(), time.time()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        time.sleep(3)
        flink.start()  # a new TaskManager replaces the dead one, as a supervisor would
        fault_end_wall_s = time.time()
        marks = run.produced_marks()
        recovery_s = time_until_current(cql, fleet, marks, since_wall_s=fault_end_wall_s, timeout_s=240)
        run.wait(300)
    finally:
        run.stop()
    verdicts = judge(cql, fleet)
    result = record(
        conftest.test_data_dir(),
        fleet,
        verdicts,
        scenario="single node: kill -9 every TaskManager",
        fault=f"SIGKILL TaskManager pids {killed}, a new one started 3 s later",
        promise="exactly once from the acknowledged batch to the stored row",
        recovery_s=recovery_s,
        started_monotonic=started,
    )
    assert killed and marks and len(marks) == FLEET_SIZE
    assert recovery_s is not None, "the pipeline did not catch up with what the fleet had produced"
    assert result.passed, result
    assert result.lost == 0 and result.duplicated == 0
    assert last_failure_s(stack, job.job_id) >= killed_at_s  # the kill really failed the job

    # The verdict reads what is stored: a vehicle that recorded a drive but never sent it is judged all lost.
    [silent] = judge(cql, never_sent, timeout_s=2)
    drive = never_sent.drives[0]
    assert silent.lost_batches == len(drive.batches) and silent.missing_events == len(never_sent.references[0])
    assert silent.truth_missing == len(drive.expected_events) > 0
