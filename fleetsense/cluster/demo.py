"""`fleetsense cluster demo`: the demo's scripted drive, through the cluster, beside its ground truth.

Each vehicle is provisioned on the cluster's brokers (its own broker user, every broker as an endpoint), its scripted
drive (`harsh_events_drive`: 3 harsh brakes, 2 harsh accelerations, 2 sharp corners, a stop and a bump, with its own
mounting and sensor errors) recorded first by the real edge agent on simulated chips in virtual time, then replayed
live from the fleet host by the fleet runner (fleetsense.cluster.fleet): the real outbox and link publish to the
brokers in the namespaces, the ingest job on the cluster's Flink analyses, the ring stores. What the job stored is read
back and printed beside what really happened, with the fault scenarios' verdict (fleetsense.cluster.verdict).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsense.cluster import cassandra_ring, job, netns
from fleetsense.cluster.endpoints import provision_vehicle
from fleetsense.cluster.fleet import read_progress, recorded_config
from fleetsense.cluster.plan import ClusterPlan, Role
from fleetsense.cluster.verdict import Event, event_tolerance_s, match_events
from fleetsense.errors import FleetsenseError

Say = Callable[[str], None]
SETTLE_TIMEOUT_S = 120.0  # after the last batch was acknowledged, until every expected event is stored
LATE_EVENTS_S = 3.0  # then a little longer: anything extra the job would still write shows up too


@dataclass(frozen=True)
class DemoDrive:
    vehicle_id: str
    start_wall_s: float  # the drive's first sample
    end_wall_s: float
    expected: list[Event]  # (kind, start wall s), from the vehicle model's ground truth


@dataclass(frozen=True)
class DemoResult:
    vehicle_id: str
    expected: list[Event]
    found: list[Event]
    missing: int
    extra: int

    @property
    def exact(self) -> bool:
        return self.missing == 0 and self.extra == 0


def record_scripted(config_path: Path, *, seed: int) -> DemoDrive:
    """Record the scripted drive into the vehicle's `recorded/` outbox, ending now, for the fleet runner to replay."""
    from fleetsense.device_config import load
    from fleetsense.load.virtual_drive import record_drive
    from fleetsense.sim.mounting import Mounting
    from fleetsense.sim.scenarios import harsh_events_drive
    from fleetsense.sim.vehicle import SensorErrors, Vehicle

    config = recorded_config(load(config_path))
    script = harsh_events_drive()
    errors = SensorErrors.typical_mpu6050(seed)
    vehicle = Vehicle(script, seed=seed, mounting=Mounting.random(seed), sensor_errors=errors)
    seconds = script.duration_s + 5.0
    start_wall_ns = time.time_ns() - int(seconds * 1e9)
    record_drive(config, seconds=seconds, start_wall_ns=start_wall_ns, vehicle=vehicle)
    start_s = start_wall_ns / 1e9
    expected = sorted((r.kind, start_s + r.start_s) for r in vehicle.ground_truth.events())
    return DemoDrive(config.vehicle_id, start_s, start_s + seconds, expected)


def stored_events(session: Any, drive: DemoDrive) -> list[Event]:
    from fleetsense.cloud.query import active_keyspaces, events_between
    from fleetsense.cloud.schema import KEYSPACE

    window = int(drive.start_wall_s * 1e6), int((drive.end_wall_s + 600) * 1e6)
    rows = events_between(session, active_keyspaces(session, KEYSPACE), drive.vehicle_id, *window)
    return sorted((row.kind, row.start_time.timestamp()) for row in rows)


def replay(plan: ClusterPlan, vehicles_dir: Path, *, speed: float, say: Say) -> None:
    """The fleet runner on the fleet host, until every vehicle's drive is acknowledged; progress every 10 s."""
    progress_file = vehicles_dir.parent / "progress.json"
    log_file = vehicles_dir.parent / "fleet.log"
    cmd = [
        *netns.exec_prefix(plan.hosts(Role.FLEET)[0]),
        sys.executable,
        "-m",
        "fleetsense.cluster.fleet",
        "--vehicles",
        str(vehicles_dir),
        "--progress",
        str(progress_file),
        "--speed",
        str(speed),
    ]
    with open(log_file, "ab") as log:
        runner = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        while runner.poll() is None:
            time.sleep(10)
            if progress_file.exists():
                vehicles = read_progress(progress_file)[1]
                acked, total = sum(v.acknowledged for v in vehicles), sum(v.total for v in vehicles)
                say(f"  {time.strftime('%H:%M:%S')}  {acked} of {total} batches acknowledged by the brokers")
    finally:
        if runner.poll() is None:
            runner.terminate()
    if runner.wait() != 0:
        raise FleetsenseError(f"the fleet runner on {plan.hosts(Role.FLEET)[0].name} failed", log_path=str(log_file))


def settle(session: Any, drives: list[DemoDrive]) -> list[DemoResult]:
    """Wait until every vehicle has at least its expected events stored (or the timeout), then compare."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    for drive in drives:
        while len(stored_events(session, drive)) < len(drive.expected) and time.monotonic() < deadline:
            time.sleep(2)
    time.sleep(LATE_EVENTS_S)
    results = []
    for drive in drives:
        found = stored_events(session, drive)
        missing, extra = match_events(found, drive.expected, event_tolerance_s)
        results.append(DemoResult(drive.vehicle_id, drive.expected, found, missing, extra))
    return results


def side_by_side(result: DemoResult, origin_s: float) -> list[str]:
    """Ground truth beside what the job detected, in seconds from the drive's start."""
    lines = [f"  {'GROUND TRUTH':<34} DETECTED BY THE JOB ON THE CLUSTER"]
    truth = sorted(result.expected, key=lambda e: e[1])
    found = sorted(result.found, key=lambda e: e[1])
    for index in range(max(len(truth), len(found))):
        left = f"{truth[index][1] - origin_s:6.1f} s  {truth[index][0]}" if index < len(truth) else ""
        right = f"{found[index][1] - origin_s:6.1f} s  {found[index][0]}" if index < len(found) else ""
        lines.append(f"  {left:<34} {right}")
    return lines


def run_cluster_demo(plan: ClusterPlan, *, vehicles: int, speed: float, say: Say = print) -> list[DemoResult]:
    """The scripted drive of `vehicles` vans through a running cluster; every van's events against its ground truth."""
    job_id = job.running_job(plan)  # refuses, saying so, when the cluster or its job is not up
    run_dir = plan.data_dir / "demo" / time.strftime("%Y%m%dT%H%M%S")
    vehicles_dir = run_dir / "vehicles"
    vehicles_dir.mkdir(parents=True, exist_ok=True)
    brokers = len(plan.hosts(Role.BROKER))
    say(f"[1/3] {vehicles} vans provisioned on the {brokers} brokers; their scripted drives recorded")
    stamp = time.strftime("%H%M%S")
    drives = [
        record_scripted(provision_vehicle(plan, f"demo-{stamp}-{i + 1}", out_dir=vehicles_dir), seed=7 + i)
        for i in range(vehicles)
    ]
    say(f"[2/3] the vans drive from {plan.hosts(Role.FLEET)[0].name} at {speed:g}x real time; job {job_id} analyses")
    replay(plan, vehicles_dir, speed=speed, say=say)
    say("[3/3] what the job stored, read back from the ring")
    with cassandra_ring.node_session(cassandra_ring.answering_node(plan)) as session:
        results = settle(session, drives)
    for drive, result in zip(drives, results, strict=True):
        verdict = "= ground truth" if result.exact else f"{result.missing} missing, {result.extra} extra"
        say(f"\n{result.vehicle_id}: {len(result.found)} events stored, {len(result.expected)} driven: {verdict}")
        for line in side_by_side(result, drive.start_wall_s):
            say(line)
    return results
