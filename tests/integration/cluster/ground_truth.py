"""The fault scenarios' fleet with ground truth: vehicles recording scripted drives whose events are known, replayed
live by fleetsense.cluster.fleet (on the fleet host, or here on the single-node stack) while a fault is injected,
then the verdict from Cassandra: seqs contiguous and each once, samples stored = sent, events = the reference,
nothing counted twice, and the time from the fault's end until the pipeline was current again.

The reference of a drive's events is the job's own analysis (cloud/vehicle_stream.py, played by
tests/unit/stream_sim.py) of the very batches the vehicle sends, in order and without a fault: what the pipeline
stores when nothing fails, to the millisecond. A fault may change nothing of it. The drive model's ground truth is
matched too, at the analysis' tolerances, and reported (ScenarioRecord.off_truth): where the analysis itself is off
(one seed's stop found 3.35 s after the model's, in a fault-free run as well) is the analysis' accuracy, not a loss.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetsense.cloud.query import blocks, sample_keys
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.edge.outbox import Outbox

from fleetsense import wire
from fleetsense.cluster.fleet import VehicleProgress, read_progress, recorded_config
from fleetsense.cluster.verdict import (
    RESULTS_FILE,
    Event,
    ScenarioRecord,
    VehicleVerdict,
    append_record,
    reference_tolerance_s,
    scenario_record,
    vehicle_verdict,
)
from fleetsense.device_config import load

from ..helpers import eventually, expected_keys, unique_vehicle
from ..test_analytics_pipeline import (
    ScriptedDrive,
    minute_rows,
    record_scripted_drive,
    stored_events,
)

# Given a vehicle id and the directory for its config, provision it (a broker user) and return its config file.
Provision = Callable[[str, Path], Path]
POLL_S = 0.5


def reference_events(drive: ScriptedDrive) -> list[Event]:
    """The job's analysis of the drive's recorded batches, delivered in order as they were sampled, no fault."""
    from tests.unit.stream_sim import Delivery, Simulation
    from tests.unit.stream_sim import Fleet as SimFleet

    box = Outbox(drive.config.state_dir / "outbox", max_bytes=drive.config.outbox.max_bytes)
    try:
        entries = box.pending(limit=100_000)
    finally:
        box.close()
    vid = drive.config.vehicle_id
    deliveries = []
    for order, (entry, batch) in enumerate(zip(entries, drive.batches, strict=True)):
        end_ms = (batch.start_time_us + batch.sample_period_us * len(batch.samples)) // 1000
        deliveries.append(Delivery(end_ms + 50, order, vid, entry.seq, entry.payload))  # the window closed, sent
    sent = {vid: {entry.seq: entry.payload for entry in entries}}
    run = Simulation(SimFleet(deliveries, sent, max(d.at_ms for d in deliveries))).run()
    return sorted((kind, start_ms / 1000) for (_, _, start_ms, kind) in run.db.named("event_by_vehicle"))


@dataclass(frozen=True)
class Fleet:
    vehicles_dir: Path  # <vehicle>.toml configs: the runner's --vehicles
    drives: list[ScriptedDrive]
    references: list[list[Event]]  # per drive: what the job stores without a fault (reference_events)

    @property
    def batches_sent(self) -> int:
        return sum(len(d.batches) for d in self.drives)

    @property
    def samples_sent(self) -> int:
        return sum(len(expected_keys(d.batches, wire.Kind.IMU)) for d in self.drives)

    @property
    def events_expected(self) -> int:
        return sum(len(r) for r in self.references)


def prepare_fleet(provision: Provision, out_dir: Path, *, count: int, prefix: str, seed: int) -> Fleet:
    """`count` vehicles, each with its scripted drive (seeded: its own mounting and sensor errors) recorded into
    `<state>/recorded/outbox`, ready to be replayed."""
    vehicles_dir = out_dir / "vehicles"
    vehicles_dir.mkdir(parents=True, exist_ok=True)
    drives = []
    for i in range(count):
        config = load(provision(unique_vehicle(prefix), vehicles_dir))
        drives.append(record_scripted_drive(recorded_config(config), seed=seed + i))
    return Fleet(vehicles_dir, drives, [reference_events(drive) for drive in drives])


class FleetRun:
    """The fleet runner as a process (on the fleet host when `exec_prefix` is `ip netns exec <ns>`)."""

    def __init__(
        self, fleet: Fleet, *, exec_prefix: Sequence[str] = (), speed: float = 1.0, timeout_s: float = 600.0
    ) -> None:
        self.fleet = fleet
        self.progress_file = fleet.vehicles_dir.parent / "progress.json"
        self.log_file = fleet.vehicles_dir.parent / "fleet.log"
        self.cmd = [
            *exec_prefix,
            sys.executable,
            "-m",
            "fleetsense.cluster.fleet",
            "--vehicles",
            str(fleet.vehicles_dir),
            "--progress",
            str(self.progress_file),
            "--speed",
            str(speed),
            "--timeout-s",
            str(timeout_s),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FleetRun:
        self.progress_file.unlink(missing_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        eventually(self.progress_file.exists, bool, timeout_s=60, interval_s=0.2)
        assert self.progress_file.exists(), f"the fleet runner did not start: {self.log_file.read_text()[-3000:]}"
        return self

    def progress(self) -> list[VehicleProgress]:
        return read_progress(self.progress_file)[1]

    def produced_marks(self) -> dict[str, int]:
        """Per vehicle, the last seq it has produced by now: the pipeline is current once all of these are stored."""
        return {v.vehicle_id: v.first_seq + v.produced - 1 for v in self.progress() if v.produced}

    def wait_produced(self, fraction: float, timeout_s: float = 120.0) -> None:
        """Until every vehicle has produced `fraction` of its drive: traffic is flowing everywhere."""
        eventually(self.progress, lambda vs: all(v.produced >= fraction * v.total for v in vs), timeout_s=timeout_s)

    def wait(self, timeout_s: float) -> list[VehicleProgress]:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
        vehicles = self.progress()
        short = [v for v in vehicles if v.acknowledged < v.total or v.error]
        assert not short, f"vehicles still holding batches (see {self.log_file}): {short}"
        return vehicles

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # our own child, by its pid
            self.proc.wait(10)


def stored_seqs(cql: Any, vehicle_id: str) -> list[int]:
    return sorted(row.seq for row in blocks(cql, KEYSPACE, vehicle_id))


def contiguous_until(seqs: Sequence[int], first: int) -> int:
    """The last seq of the unbroken run from `first` (first - 1 when `first` is missing)."""
    have = set(seqs)
    last = first - 1
    while last + 1 in have:
        last += 1
    return last


def time_until_current(
    cql: Any, fleet: Fleet, marks: dict[str, int], *, since_wall_s: float, timeout_s: float
) -> float | None:
    """Seconds from `since_wall_s` (the fault's end, or its injection) until every vehicle's blocks up to its mark
    (what it had produced at that moment) are stored without a gap; None if that did not happen within `timeout_s`.
    A read that fails (the fault is still on: a node cut off, a timeout) tells nothing yet: it is asked again."""
    first = {d.config.vehicle_id: d.batches[0].seq for d in fleet.drives}
    waiting = dict(marks)
    deadline = time.monotonic() + timeout_s
    while waiting and time.monotonic() < deadline:
        for vid, mark in list(waiting.items()):
            try:
                stored = stored_seqs(cql, vid)
            except Exception:  # the driver's errors (NoHostAvailable, ReadTimeout, ...) during the fault
                break
            if contiguous_until(stored, first[vid]) >= mark:
                del waiting[vid]
        if waiting:
            time.sleep(POLL_S)
    return None if waiting else time.time() - since_wall_s


class CatchUp:
    """time_until_current in a thread, measured while the fault is being injected (a partition lasts 60 s): from
    the injection until what every vehicle had produced at that moment is stored."""

    def __init__(self, cql: Any, fleet: Fleet, marks: dict[str, int], *, since_wall_s: float, timeout_s: float):
        self._result: list[float | None] = []
        self._thread = threading.Thread(
            target=lambda: self._result.append(
                time_until_current(cql, fleet, marks, since_wall_s=since_wall_s, timeout_s=timeout_s)
            ),
            daemon=True,
        )
        self._thread.start()

    def seconds(self, *, wait_s: float) -> float | None:
        self._thread.join(wait_s)
        return self._result[0] if self._result else None


def settled(cql: Any, drive: ScriptedDrive, reference: list[Event]) -> bool:
    """Everything of the drive is stored and analysed (or more: the verdict then counts it as duplicated)."""
    vid = drive.config.vehicle_id
    imu = len(expected_keys(drive.batches, wire.Kind.IMU))
    return (
        len(stored_seqs(cql, vid)) >= len(drive.batches)
        and len(stored_events(cql, drive)) >= len(reference)
        and sum(r.sample_count for r in minute_rows(cql, vid, drive)) >= imu
    )


def judge(cql: Any, fleet: Fleet, *, timeout_s: float = 180.0) -> list[VehicleVerdict]:
    """Wait until the fleet's data has settled (or `timeout_s`), then compare every vehicle with what it sent and
    with its reference events (and, reported, its ground truth)."""
    deadline = time.monotonic() + timeout_s
    for drive, reference in zip(fleet.drives, fleet.references, strict=True):
        left_s = max(1.0, deadline - time.monotonic())
        eventually(lambda d=drive, r=reference: settled(cql, d, r), bool, timeout_s=left_s)
    time.sleep(3)  # anything extra the job would still write shows up too
    verdicts = []
    for drive, reference in zip(fleet.drives, fleet.references, strict=True):
        vid = drive.config.vehicle_id
        verdicts.append(
            vehicle_verdict(
                vehicle_id=vid,
                sent_seqs=(drive.batches[0].seq, drive.batches[-1].seq),
                stored_seqs=stored_seqs(cql, vid),
                sent_samples=expected_keys(drive.batches, wire.Kind.IMU),
                stored_samples=sample_keys(cql, KEYSPACE, vid),
                minute_sample_count=sum(r.sample_count for r in minute_rows(cql, vid, drive)),
                found_events=stored_events(cql, drive),
                expected_events=reference,
                tolerance_s=reference_tolerance_s,
                truth_events=drive.expected_events,
            )
        )
    return verdicts


def record(
    data_dir: Path,
    fleet: Fleet,
    verdicts: Sequence[VehicleVerdict],
    *,
    scenario: str,
    fault: str,
    promise: str,
    recovery_s: float | None,
    started_monotonic: float,
    notes: str = "",
    fault_s: float | None = None,
    from_injection_s: float | None = None,
) -> ScenarioRecord:
    """The scenario's row, added to `<data_dir>/fault-results.json` (render it with `python -m
    fleetsense.cluster.verdict`)."""
    result = scenario_record(
        scenario=scenario,
        fault=fault,
        promise=promise,
        verdicts=verdicts,
        batches_sent=fleet.batches_sent,
        samples_sent=fleet.samples_sent,
        events_expected=fleet.events_expected,
        recovery_s=recovery_s,
        scenario_s=time.monotonic() - started_monotonic,
        notes=notes,
        fault_s=fault_s,
        from_injection_s=from_injection_s,
    )
    append_record(data_dir / RESULTS_FILE, result)
    return result
