"""Simulated drives for the analytics tests: the firmware-sim vehicle sampled at 100 Hz, cut into 1 s batches and
fed to a VehicleAnalyzer, with the ground truth to compare against. Generation is cached per drive, so the test
modules that share a drive pay for it once. The checks here are about the drives themselves."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics import (
    DRIVING_EVENT_KINDS,
    AnalysisOutput,
    DrivingEvent,
    MinuteAggregate,
    Stop,
    Trip,
    VehicleAnalyzer,
)
from fleetsense.sim.drive_script import DriveScript
from fleetsense.sim.ground_truth import GroundTruthRecord
from fleetsense.sim.mounting import Mounting
from fleetsense.sim.scenarios import harsh_events_drive
from fleetsense.sim.vehicle import SensorErrors, Vehicle

EPOCH_US = 1_700_000_000_000_000  # the drive's t = 0 in UTC microseconds (2023-11-14T22:13:20Z)
RATE_HZ = 100
PERIOD_US = 1_000_000 // RATE_HZ
# The ground-truth kinds the cloud must report as driving events (stops come separately), under the same keys.
DRIVING_TRUTH_KINDS = frozenset(DRIVING_EVENT_KINDS)


def scripted_drive() -> DriveScript:
    return harsh_events_drive()


@dataclass(frozen=True)
class Recording:
    """A drive sampled at 100 Hz: times (UTC us), accelerometer and gyro in sensor axes, and the vehicle."""

    vehicle: Vehicle
    t_us: npt.NDArray[np.int64]
    accel_m_s2: npt.NDArray[np.float64]
    gyro_rad_s: npt.NDArray[np.float64]


def record(vehicle: Vehicle, duration_s: float | None = None) -> Recording:
    count = int((duration_s if duration_s is not None else vehicle.script.duration_s) * RATE_HZ)
    accel, gyro = np.empty((count, 3)), np.empty((count, 3))
    imu_at = vehicle.imu_at
    for i in range(count):
        reading = imu_at(i / RATE_HZ)
        accel[i], gyro[i] = reading.specific_force_m_s2, reading.angular_rate_rad_s
    return Recording(vehicle, EPOCH_US + np.arange(count, dtype=np.int64) * PERIOD_US, accel, gyro)


@functools.cache
def scripted_recording(seed: int, *, biased: bool = True) -> Recording:
    """The scripted drive with seed's random mounting and (by default) datasheet-typical sensor biases."""
    errors = SensorErrors.typical_mpu6050(seed) if biased else SensorErrors()
    return record(Vehicle(scripted_drive(), seed=seed, mounting=Mounting.random(seed), sensor_errors=errors))


@functools.cache
def random_recording(seed: int, duration_s: float) -> Recording:
    """A fleet member's random drive (hills, random events, random mounting, typical biases)."""
    return record(Vehicle.random(seed, duration_s), duration_s)


@dataclass
class Collected:
    events: list[DrivingEvent] = field(default_factory=list)
    trips: list[Trip] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    minutes: dict[int, MinuteAggregate] = field(default_factory=dict)  # last row written per minute (the upsert)
    outputs: list[AnalysisOutput] = field(default_factory=list)

    def add(self, output: AnalysisOutput) -> None:
        self.events += output.events
        self.trips += output.trips
        self.stops += output.stops
        self.minutes.update({row.minute_start_us: row for row in output.minutes})
        self.outputs.append(output)

    @property
    def last(self) -> AnalysisOutput:
        return self.outputs[-1]


def feed(
    recording: Recording,
    analyzer: VehicleAnalyzer | None = None,
    *,
    batch_samples: int = RATE_HZ,
    skip_batches: Iterable[int] = (),
    start: int = 0,
    stop: int | None = None,
    flush: bool = True,
) -> Collected:
    """Feed samples [start, stop) in batches; skipped batches are lost, and the next one carries gap_before."""
    analyzer = analyzer or VehicleAnalyzer()
    collected, skipped, gap = Collected(), set(skip_batches), False
    end = recording.t_us.size if stop is None else stop
    for number, first in enumerate(range(start, end, batch_samples)):
        if number in skipped:
            gap = True
            continue
        part = slice(first, min(first + batch_samples, end))
        collected.add(
            analyzer.on_imu(
                recording.t_us[part], recording.accel_m_s2[part], recording.gyro_rad_s[part], gap_before=gap
            )
        )
        gap = False
    if flush:
        collected.add(analyzer.flush())
    return collected


def seconds(t_us: int) -> float:
    return (t_us - EPOCH_US) / 1e6


def reportable(records: Iterable[GroundTruthRecord], until_s: float = math.inf) -> list[GroundTruthRecord]:
    """Ground-truth records the cloud must report, with back-to-back bumps (one longer pothole) merged."""
    kept: list[GroundTruthRecord] = []
    for r in records:
        if r.kind not in DRIVING_TRUTH_KINDS or r.start_s >= until_s:
            continue
        if r.kind == "bump" and kept and kept[-1].kind == "bump" and abs(kept[-1].end_s - r.start_s) < 1e-6:
            continue
        kept.append(r)
    return kept


def unmatched(
    events: list[DrivingEvent], truth: list[GroundTruthRecord], tolerance_s: float = 0.5
) -> tuple[list[GroundTruthRecord], list[DrivingEvent]]:
    """(missed truth records, events matching no record): one event per record, same kind, start within tolerance."""
    free = list(events)
    missed = []
    for r in truth:
        match = next(
            (e for e in free if e.kind == r.kind and abs(seconds(e.start_us) - r.start_s) <= tolerance_s),
            None,
        )
        if match is None:
            missed.append(r)
        else:
            free.remove(match)
    return missed, free


def rotation_error_deg(estimated: tuple[float, ...], mounting: Mounting) -> float:
    """The angle of the rotation taking the true vehicle_from_sensor to the estimated one."""
    r = np.asarray(estimated).reshape(3, 3) @ np.asarray(mounting.vehicle_from_sensor).T
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(np.trace(r)) - 1.0) / 2.0))))


def test_the_scripted_drive_has_what_the_event_tests_assume() -> None:
    truth = scripted_drive().ground_truth()
    kinds = [r.kind for r in truth]
    assert kinds.count("harsh_brake") == 3 and kinds.count("harsh_acceleration") == 2
    assert kinds.count("harsh_corner_left") == 1 and kinds.count("harsh_corner_right") == 1
    assert kinds.count("stop") == 1 and kinds.count("bump") == 1
    ordinary = [r for r in truth if r.kind in ("accelerate", "decelerate", "corner_left", "corner_right")]
    assert {r.kind for r in ordinary} == {"accelerate", "decelerate", "corner_left", "corner_right"}
    assert max(r.peak_g for r in ordinary) >= 0.24  # ordinary driving near the simulator's limits, not idling


def test_a_recording_is_the_vehicle_model_sampled_at_100_hz() -> None:
    recording = scripted_recording(1)
    assert recording.t_us.size == int(recording.vehicle.script.duration_s * RATE_HZ)
    assert set(np.diff(recording.t_us).tolist()) == {PERIOD_US}
    magnitude_m_s2 = np.linalg.norm(recording.accel_m_s2, axis=1)
    assert 9.3 < float(np.median(magnitude_m_s2)) < 10.3  # gravity, through a random mounting and biases
