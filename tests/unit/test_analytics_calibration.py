"""Mounting calibration against the simulator's ground-truth mounting: random rotations (upside down included),
with and without datasheet-typical sensor biases, with and without a rest before the first manoeuvre."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fleetsense.cloud.analytics import VehicleAnalyzer
from fleetsense.sim.drive_script import DriveScript
from fleetsense.sim.mounting import Mounting
from fleetsense.sim.vehicle import SensorErrors, Vehicle

from fleetsense.quantities import STANDARD_GRAVITY_M_S2
from tests.unit.test_analytics_drives import feed, record, rotation_error_deg, scripted_recording

SEEDS = [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("seed", SEEDS)
def test_an_unbiased_sensor_gives_the_mounting_to_a_fraction_of_a_degree(seed: int) -> None:
    recording = scripted_recording(seed, biased=False)
    summary = feed(recording).last.calibration
    assert summary.settled and summary.up_source == "rest" and summary.sign_source == "launch"
    assert summary.launch_and_yaw_agree is True
    assert rotation_error_deg(summary.vehicle_from_sensor, recording.vehicle.mounting) < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_a_biased_sensor_gives_the_mounting_within_a_few_degrees(seed: int) -> None:
    """An accelerometer bias at rest is indistinguishable from a tilt (both move where gravity appears), so up
    is off by the bias's angle, up to ~2.7 degrees for the simulator's biases; the frame still zeroes horizontal
    acceleration at rest, which is what event detection needs."""
    recording = scripted_recording(seed, biased=True)
    summary = feed(recording).last.calibration
    assert rotation_error_deg(summary.vehicle_from_sensor, recording.vehicle.mounting) < 3.0
    # What it does find exactly is where gravity plus bias appears.
    mounting, bias = recording.vehicle.mounting, np.asarray(recording.vehicle.sensor_errors.accel_bias_m_s2)
    apparent_up = np.asarray(mounting.sensor_up) * STANDARD_GRAVITY_M_S2 + bias
    up = np.asarray(summary.vehicle_from_sensor[6:9])
    angle_deg = math.degrees(math.acos(min(1.0, float(up @ apparent_up) / float(np.linalg.norm(apparent_up)))))
    assert angle_deg < 0.3
    assert summary.gravity_m_s2 == pytest.approx(float(np.linalg.norm(apparent_up)), abs=0.01)
    gyro_bias = recording.vehicle.sensor_errors.gyro_bias_rad_s
    assert summary.gyro_bias_rad_s == pytest.approx(gyro_bias, abs=0.002)


def test_the_rotation_is_a_proper_rotation_with_rows_forward_left_up() -> None:
    rotation = np.asarray(feed(scripted_recording(4)).last.calibration.vehicle_from_sensor).reshape(3, 3)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(np.cross(rotation[2], rotation[0]), rotation[1], atol=1e-9)  # left = up x forward


def test_nothing_is_reported_from_an_unknown_frame() -> None:
    collected = feed(scripted_recording(3))
    for output in collected.outputs:
        if not output.calibration.settled:
            assert not [e for e in output.events if e.kind != "bump"]
            assert output.calibration.vehicle_from_sensor == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        if not output.calibration.up_settled:
            assert all(row.rms_vertical_g is None and row.max_longitudinal_g is None for row in output.minutes)


def test_without_any_stop_up_comes_from_the_drive_mean_and_the_sign_from_the_turns() -> None:
    """A vehicle that never stands still: after 5 minutes the mean specific force stands in for gravity, and the
    yaw rate's correlation with lateral acceleration tells left from right; the harsh brake before that is kept."""
    builder = DriveScript.builder(start_speed_m_s=12.0).cruise(20.0)
    for turn in range(9):
        builder.corner("left" if turn % 2 else "right", peak_g=0.2).cruise(12.0).accelerate(16.0).cruise(6.0)
        builder.decelerate(12.0).cruise(4.0)
        if turn == 3:
            builder.harsh_brake(peak_g=0.6, to_speed_m_s=8.0).cruise(5.0)
    vehicle = Vehicle(builder.cruise(30.0).build(), seed=8, mounting=Mounting.random(8))
    assert vehicle.script.duration_s > 330.0
    collected = feed(record(vehicle))
    summary = collected.last.calibration
    assert summary.up_source == "drive_mean" and summary.sign_source == "yaw"
    assert rotation_error_deg(summary.vehicle_from_sensor, vehicle.mounting) < 2.0
    brakes = [e for e in collected.events if e.kind == "harsh_brake"]
    assert len(brakes) == 1 and brakes[0].recovered


def test_a_pi_that_moves_in_its_mount_is_recalibrated() -> None:
    script = DriveScript.builder().stop(12.0).accelerate(12.0).cruise(10.0).corner("left").cruise(5.0)
    drive = script.decelerate(0.0).stop(15.0).build()
    before = Vehicle(drive, seed=1, mounting=Mounting.random(1), sensor_errors=SensorErrors())
    after = Vehicle(drive, seed=2, mounting=Mounting.random(2), sensor_errors=SensorErrors())
    analyzer = VehicleAnalyzer()
    first = feed(record(before), analyzer)
    assert rotation_error_deg(first.last.calibration.vehicle_from_sensor, before.mounting) < 0.5
    second = feed(record(after), analyzer)  # same times again: treated as after a gap
    assert second.last.calibration.remounts == 1
    assert rotation_error_deg(second.last.calibration.vehicle_from_sensor, after.mounting) < 0.5
    # Between the remount and the next pull-away the frame is unknown again, and said so.
    assert any(not out.calibration.settled for out in second.outputs)
