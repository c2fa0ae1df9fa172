"""The vehicle model as the chips see it: gravity through the mounting, manoeuvres matching their ground truth,
vibration only while moving, pressure from altitude, cabin temperature, determinism."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest
from fleetsense.sim.drive_script import DriveScript, Hill, Terrain
from fleetsense.sim.ground_truth import GroundTruthRecord
from fleetsense.sim.mounting import Mounting, MountingError
from fleetsense.sim.physics import EnvironmentPhysics, ImuPhysics
from fleetsense.sim.vehicle import (
    CabinClimate,
    RoadVibration,
    SensorErrors,
    Vehicle,
    pressure_at_altitude_pa,
)

from fleetsense.quantities import STANDARD_GRAVITY_M_S2

G = STANDARD_GRAVITY_M_S2
NO_VIBRATION = RoadVibration(vertical_g_at_reference=0.0)


def scripted_drive() -> DriveScript:
    """3 harsh brakes, 2 harsh accelerations, 2 sharp corners, 1 stop and a bump, at times the builder knows."""
    return (
        DriveScript.builder()
        .cruise(20.0, speed_m_s=12.0)
        .harsh_brake(peak_g=0.6)
        .stop(10.0)
        .harsh_acceleration(peak_g=0.5, duration_s=2.0)
        .cruise(10.0, speed_m_s=12.0)
        .sharp_corner("left", peak_g=0.55)
        .cruise(10.0)
        .harsh_brake(peak_g=0.7, to_speed_m_s=5.0)
        .cruise(5.0, speed_m_s=15.0)
        .sharp_corner("right", peak_g=0.65, duration_s=2.5)
        .harsh_acceleration(peak_g=0.55, to_speed_m_s=25.0)
        .bump(peak_g=1.2)
        .cruise(10.0)
        .harsh_brake(peak_g=0.8, duration_s=1.5)
        .cruise(5.0)
        .build()
    )


def ideal(script: DriveScript, mounting: Mounting | None = None) -> Vehicle:
    """No noise, bias or vibration: what is left is exactly what the ground truth describes."""
    return Vehicle(script, mounting=mounting, sensor_errors=SensorErrors.ideal(), vibration=NO_VIBRATION)


def peak_times_s(record: GroundTruthRecord) -> list[float]:
    """Where the analytic shapes peak (plateau middle, or a bump's sine quarter-points), so sampling cannot miss it."""
    if record.axis == "vertical":
        return [record.start_s + record.duration_s / 4, record.start_s + 3 * record.duration_s / 4]
    return [record.start_s + record.duration_s / 2]


def axis_value_m_s2(vehicle: Vehicle, record: GroundTruthRecord, t_s: float) -> float:
    """The axis a record is about, from the sensor reading turned back into the vehicle frame, gravity removed."""
    fx, fy, fz = vehicle.mounting.to_vehicle(vehicle.imu_at(t_s).specific_force_m_s2)
    return {"longitudinal": fx, "lateral": fy, "vertical": fz - G}[record.axis]


def test_the_model_implements_both_physics_protocols() -> None:
    vehicle = Vehicle(scripted_drive())
    imu: ImuPhysics = vehicle
    environment: EnvironmentPhysics = vehicle
    assert imu.imu_at(0.0) and environment.environment_at(0.0)


def test_scripted_events_are_in_the_ground_truth_with_known_counts() -> None:
    kinds = [r.kind for r in scripted_drive().ground_truth()]
    assert kinds.count("harsh_brake") == 3 and kinds.count("harsh_acceleration") == 2
    assert kinds.count("harsh_corner_left") == 1 and kinds.count("harsh_corner_right") == 1
    assert kinds.count("stop") == 1 and kinds.count("bump") == 1


@pytest.mark.parametrize("mounting", [Mounting.identity(), Mounting.random(11)], ids=["identity", "random"])
def test_peak_g_is_the_maximum_of_the_noise_free_signal_over_the_interval(mounting: Mounting) -> None:
    vehicle = ideal(scripted_drive(), mounting=mounting)
    for record in vehicle.ground_truth:
        if record.axis == "none":
            continue
        step_s = record.duration_s / 2000
        times_s = [record.start_s + i * step_s for i in range(2000)] + peak_times_s(record)
        largest_m_s2 = max(abs(axis_value_m_s2(vehicle, record, t_s)) for t_s in times_s)
        assert largest_m_s2 == pytest.approx(record.peak_g * G, rel=1e-9), record
    requested = [0.6, 0.5, 0.55, 0.7, 0.65, 0.55, 1.2, 0.8]
    events = [r for r in vehicle.ground_truth if r.is_event and r.kind != "stop"]
    assert [r.peak_g for r in events] == pytest.approx(requested)


def test_manoeuvres_have_no_acceleration_outside_their_interval() -> None:
    vehicle = ideal(scripted_drive())
    for record in vehicle.ground_truth:
        if record.kind in ("cruise", "stop"):
            inside_s = [record.start_s + record.duration_s * i / 50 for i in range(50)]
            assert all(vehicle.imu_at(t_s).specific_force_m_s2 == (0.0, 0.0, G) for t_s in inside_s)


def test_peak_g_matches_the_signal_for_every_record_of_a_random_drive() -> None:
    vehicle = Vehicle(DriveScript.random(4, 3600.0))
    field = {"longitudinal": "longitudinal_m_s2", "lateral": "lateral_m_s2", "vertical": "vertical_m_s2"}
    for record in vehicle.ground_truth:
        times_s = [record.start_s + record.duration_s * i / 200 for i in range(200)] + peak_times_s(record)
        for axis, name in field.items():
            largest_m_s2 = max(abs(getattr(vehicle.motion_at(t_s), name)) for t_s in times_s)
            expected_m_s2 = record.peak_g * G if axis == record.axis else 0.0  # one manoeuvre, one axis
            assert largest_m_s2 == pytest.approx(expected_m_s2, rel=1e-9, abs=1e-12), record


@pytest.mark.parametrize(
    ("yaw_deg", "pitch_deg", "roll_deg", "expected_up"),
    [
        (0.0, 0.0, 0.0, (0.0, 0.0, 1.0)),
        (0.0, -90.0, 0.0, (1.0, 0.0, 0.0)),  # sensor x axis pointing at the roof
        (0.0, 0.0, 180.0, (0.0, 0.0, -1.0)),  # upside down under the dash
        (0.0, 0.0, 90.0, (0.0, 1.0, 0.0)),
        (90.0, 0.0, 0.0, (0.0, 0.0, 1.0)),  # yaw alone leaves gravity alone
    ],
)
def test_gravity_at_rest_lands_on_the_rotated_up_axis(
    yaw_deg: float, pitch_deg: float, roll_deg: float, expected_up: tuple[float, float, float]
) -> None:
    vehicle = ideal(
        DriveScript.builder().stop(30.0).build(),
        mounting=Mounting.from_yaw_pitch_roll_deg(yaw_deg, pitch_deg, roll_deg),
    )
    reading = vehicle.imu_at(12.5)
    assert reading.specific_force_m_s2 == pytest.approx(tuple(G * c for c in expected_up), abs=1e-12)
    assert reading.angular_rate_rad_s == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_gravity_magnitude_and_direction_with_random_mountings_noise_and_bias(seed: int) -> None:
    mounting = Mounting.random(seed)
    errors = SensorErrors.typical_mpu6050(seed)
    vehicle = Vehicle(DriveScript.builder().stop(60.0).build(), seed=seed, mounting=mounting, sensor_errors=errors)
    readings = [vehicle.imu_at(i * 0.01).specific_force_m_s2 for i in range(2000)]
    mean = [statistics.fmean(r[i] for r in readings) - errors.accel_bias_m_s2[i] for i in range(3)]
    assert math.dist(mean, (0.0, 0.0, 0.0)) == pytest.approx(G, abs=0.005)
    assert mean == pytest.approx([G * c for c in mounting.sensor_up], abs=0.005)
    assert mounting.sensor_up != pytest.approx((0.0, 0.0, 1.0), abs=0.05)  # the frames really differ
    assert statistics.stdev(r[0] for r in readings) == pytest.approx(errors.accel_noise_m_s2, rel=0.1)


def test_forward_acceleration_follows_the_mounting_yaw() -> None:
    """Sensor x pointing left (yaw 90): forward is the sensor's -y."""
    script = DriveScript.builder().harsh_acceleration(peak_g=0.5, duration_s=2.0).build()
    reading = ideal(script, mounting=Mounting.from_yaw_pitch_roll_deg(90.0, 0.0, 0.0)).imu_at(1.0)
    assert reading.specific_force_m_s2 == pytest.approx((0.0, -0.5 * G, G), abs=1e-9)


def test_lateral_acceleration_is_speed_times_yaw_rate_in_any_mounting() -> None:
    mounting = Mounting.random(3)
    vehicle = ideal(scripted_drive(), mounting=mounting)
    corners = vehicle.ground_truth.of_kind("harsh_corner_left", "harsh_corner_right")
    for record in corners:
        sign = 1.0 if record.kind == "harsh_corner_left" else -1.0  # y and yaw both positive to the left
        for i in range(1, 40):
            t_s = record.start_s + record.duration_s * i / 40
            reading = vehicle.imu_at(t_s)
            lateral_m_s2 = mounting.to_vehicle(reading.specific_force_m_s2)[1]
            yaw_rad_s = mounting.to_vehicle(reading.angular_rate_rad_s)[2]
            assert lateral_m_s2 == pytest.approx(vehicle.motion_at(t_s).speed_m_s * yaw_rad_s, abs=1e-9)
            assert sign * lateral_m_s2 > 0 and sign * yaw_rad_s > 0


@pytest.mark.parametrize("seed", range(3))
def test_speed_never_goes_negative_and_never_jumps(seed: int) -> None:
    vehicle = Vehicle(DriveScript.random(seed, 2 * 3600.0))
    speeds_m_s = [vehicle.motion_at(i * 0.1).speed_m_s for i in range(72_000)]
    assert min(speeds_m_s) >= 0.0
    # 0.1 s at the hardest scripted braking (1.2 g) changes speed by at most 1.2 m/s
    assert max(abs(b - a) for a, b in itertools.pairwise(speeds_m_s)) < 1.2


def test_stops_have_zero_speed_and_no_vibration_even_on_a_hill() -> None:
    """Noise off, vibration on: while stopped every reading is identical, uphill or not."""
    vehicle = Vehicle(DriveScript.random(8, 3600.0), sensor_errors=SensorErrors.ideal(), mounting=Mounting.random(8))
    stops = vehicle.ground_truth.of_kind("stop")
    assert stops
    for stop in stops:
        times_s = [stop.start_s + stop.duration_s * i / 100 for i in range(100)]
        assert {vehicle.motion_at(t_s).speed_m_s for t_s in times_s} == {0.0}
        readings = [vehicle.imu_at(t_s) for t_s in times_s]
        assert len({(r.specific_force_m_s2, r.angular_rate_rad_s) for r in readings}) == 1
        assert len({vehicle.environment_at(t_s).pressure_pa for t_s in times_s}) == 1


def test_road_vibration_grows_with_speed_and_stays_within_its_bound() -> None:
    script = DriveScript.builder().cruise(20.0, speed_m_s=10.0).cruise(20.0, speed_m_s=20.0).build()
    vehicle = Vehicle(script, sensor_errors=SensorErrors.ideal())
    slow, fast = vehicle.ground_truth.of_kind("cruise")
    spread_m_s2 = []
    for record, speed_m_s in ((slow, 10.0), (fast, 20.0)):
        vertical_m_s2 = [vehicle.imu_at(record.start_s + i * 0.001).specific_force_m_s2[2] - G for i in range(10_000)]
        assert max(abs(v) for v in vertical_m_s2) <= vehicle.vibration.max_vertical_m_s2(speed_m_s) + 1e-12
        spread_m_s2.append(statistics.pstdev(vertical_m_s2))
    assert spread_m_s2[0] > 0.05
    assert spread_m_s2[1] / spread_m_s2[0] == pytest.approx(2.0, rel=0.1)


def test_same_seed_same_readings_and_different_seed_different_noise() -> None:
    times_s = [i * 0.37 for i in range(3000)]
    a, b, c = Vehicle.random(3, 900.0), Vehicle.random(3, 900.0), Vehicle.random(4, 900.0)
    assert [a.imu_at(t) for t in times_s] == [b.imu_at(t) for t in times_s]
    assert [a.environment_at(t) for t in times_s] == [b.environment_at(t) for t in times_s]
    assert [a.imu_at(t) for t in times_s[:10]] != [c.imu_at(t) for t in times_s[:10]]


def test_noise_free_signal_is_a_pure_function_of_time() -> None:
    times_s = [i * 0.01 for i in range(20_000)]
    shuffled_s = times_s[:]
    random.Random(0).shuffle(shuffled_s)
    vehicle = Vehicle(DriveScript.random(1, 600.0), sensor_errors=SensorErrors.ideal(), mounting=Mounting.random(1))
    in_order = {t: vehicle.imu_at(t) for t in times_s}
    assert all(vehicle.imu_at(t) == in_order[t] for t in shuffled_s)


def test_a_repeated_time_returns_the_same_noisy_reading_and_past_the_end_is_defined() -> None:
    vehicle = Vehicle.random(2, 120.0)
    assert vehicle.imu_at(5.0) is vehicle.imu_at(5.0)
    end_s = vehicle.script.duration_s
    assert vehicle.motion_at(end_s + 100.0).speed_m_s == vehicle.script.segments[-1].end_speed_m_s
    with pytest.raises(ValueError, match="starts at 0 s"):
        vehicle.imu_at(-1.0)


def test_pressure_falls_about_12_pa_per_metre_near_sea_level() -> None:
    assert pressure_at_altitude_pa(0.0) == 101_325.0
    assert (pressure_at_altitude_pa(0.0) - pressure_at_altitude_pa(10.0)) / 10.0 == pytest.approx(12.0, abs=0.2)
    assert pressure_at_altitude_pa(1000.0) == pytest.approx(89_875.0, abs=5.0)  # ISA table


def test_pressure_follows_the_road_over_hills() -> None:
    terrain = Terrain(base_altitude_m=100.0, hills=(Hill(amplitude_m=20.0, wavelength_m=2000.0),))
    vehicle = Vehicle(DriveScript.builder(terrain=terrain).cruise(200.0, speed_m_s=20.0).build())
    for t_s in (0.0, 30.0, 60.0, 90.0, 150.0):
        motion, environment = vehicle.motion_at(t_s), vehicle.environment_at(t_s)
        assert environment.pressure_pa == pytest.approx(pressure_at_altitude_pa(motion.altitude_m))
    climbing = [vehicle.environment_at(t_s).pressure_pa for t_s in (20.0, 25.0, 30.0)]  # first quarter-wave: uphill
    assert climbing[0] > climbing[1] > climbing[2]


def test_grade_tilts_gravity_forward_uphill() -> None:
    terrain = Terrain(hills=(Hill(amplitude_m=10.0, wavelength_m=2000.0),))
    vehicle = ideal(DriveScript.builder(terrain=terrain).stop(10.0).build())
    grade = vehicle.motion_at(1.0).grade
    assert grade == pytest.approx(10.0 * 2 * math.pi / 2000.0)
    fx, _, fz = vehicle.imu_at(1.0).specific_force_m_s2
    assert (fx, fz) == pytest.approx((G * grade, G * math.sqrt(1 - grade * grade)))


def test_cabin_heats_up_parked_and_cools_down_driving_within_bounds() -> None:
    script = DriveScript.builder().cruise(600.0, speed_m_s=15.0).stop(7200.0).cruise(1800.0, speed_m_s=15.0).build()
    cabin = CabinClimate(start_c=30.0)
    vehicle = Vehicle(script, cabin=cabin)
    stop = vehicle.ground_truth.of_kind("stop")[0]
    temperature_c = [vehicle.environment_at(t_s).temperature_c for t_s in range(0, int(script.duration_s), 10)]
    assert min(temperature_c) >= cabin.driving_target_c and max(temperature_c) <= cabin.parked_target_c
    parked_end_c = vehicle.environment_at(stop.end_s - 1.0).temperature_c
    assert parked_end_c > vehicle.environment_at(stop.start_s).temperature_c + 15.0
    assert vehicle.environment_at(script.duration_s - 1.0).temperature_c < parked_end_c - 15.0
    assert vehicle.imu_at(100.0).die_temperature_c == pytest.approx(vehicle.environment_at(100.0).temperature_c + 4.0)


def test_mountings_are_proper_rotations() -> None:
    for seed in range(20):
        for mounting in (Mounting.random(seed), Mounting.random(seed, max_tilt_deg=10.0)):
            v = (0.3, -1.2, 2.0)
            assert mounting.to_vehicle(mounting.to_sensor(v)) == pytest.approx(v)
            assert math.dist(mounting.to_sensor(v), (0, 0, 0)) == pytest.approx(math.dist(v, (0, 0, 0)))
    assert Mounting.random(1, max_tilt_deg=10.0).sensor_up[2] > math.cos(math.radians(15.0))
    with pytest.raises(MountingError, match="reflection"):
        Mounting(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)))
