"""The vehicle model: a drive script turned into what the Pi's chips measure, in the sensor's own frame.

Implements ImuPhysics and EnvironmentPhysics (physics.py). Everything but the sensor noise is a pure function of
time (closed forms from the script, road vibration as fixed sines), so any t can be asked in any order. The noise
is drawn in call order from one generator per vehicle: a seed and a sequence of query times give the same readings
on every run, and a repeated query of the same t returns the same reading.
"""

from __future__ import annotations

import functools
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from statistics import NormalDist

from fleetsense.sim.drive_script import DriveScript, Segment
from fleetsense.sim.ground_truth import GroundTruthLog
from fleetsense.sim.mounting import Mounting
from fleetsense.sim.physics import Environment, ImuReading, Vec3

from fleetsense.quantities import STANDARD_GRAVITY_M_S2

SEA_LEVEL_PRESSURE_PA = 101_325.0


def pressure_at_altitude_pa(altitude_m: float, sea_level_pa: float = SEA_LEVEL_PRESSURE_PA) -> float:
    """The international standard atmosphere's barometric formula (troposphere): about -12 Pa/m near sea level."""
    return sea_level_pa * math.pow(1.0 - 2.25577e-5 * altitude_m, 5.25588)


@functools.cache
def _standard_normal_table() -> tuple[float, ...]:
    """The 2**16 quantiles of N(0, 1), shared by every vehicle: a noise draw is a table entry picked by 16 random
    bits, four times cheaper than random.gauss. The tails stop at 4.3 sigma, which a sensor's noise never misses."""
    quantile = NormalDist().inv_cdf
    size = 1 << 16
    return tuple(quantile((i + 0.5) / size) for i in range(size))


@dataclass(frozen=True, kw_only=True)
class SensorErrors:
    """White noise per sample and a constant bias per axis, in the sensor frame."""

    accel_noise_m_s2: float = 0.03  # MPU-6050: 400 ug/sqrt(Hz) over a ~44 Hz low-pass bandwidth
    gyro_noise_rad_s: float = 0.001  # MPU-6050: 0.005 deg/s/sqrt(Hz), rounded up
    accel_bias_m_s2: Vec3 = (0.0, 0.0, 0.0)
    gyro_bias_rad_s: Vec3 = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.accel_noise_m_s2 < 0.0 or self.gyro_noise_rad_s < 0.0:
            raise ValueError("noise sigmas are standard deviations: pass 0 for no noise, never a negative value")

    @classmethod
    def ideal(cls) -> SensorErrors:
        return cls(accel_noise_m_s2=0.0, gyro_noise_rad_s=0.0)

    @classmethod
    def typical_mpu6050(cls, seed: int) -> SensorErrors:
        """Biases drawn within half the datasheet's uncalibrated tolerance (zero-g +-50 mg x/y, +-80 mg z;
        zero-rate +-20 deg/s), which the edge has to calibrate away."""
        rng = random.Random(f"fleetsense-bias:{seed}")
        g, dps = STANDARD_GRAVITY_M_S2, math.radians(1.0)
        return cls(
            accel_bias_m_s2=(
                rng.uniform(-0.025, 0.025) * g,
                rng.uniform(-0.025, 0.025) * g,
                rng.uniform(-0.04, 0.04) * g,
            ),
            gyro_bias_rad_s=(rng.uniform(-10, 10) * dps, rng.uniform(-10, 10) * dps, rng.uniform(-10, 10) * dps),
        )


@dataclass(frozen=True, kw_only=True)
class RoadVibration:
    """Sines at fixed frequencies whose amplitude grows linearly with speed and is zero when stopped."""

    vertical_g_at_reference: float = 0.04  # sum of the amplitudes, so the most it can add at reference speed
    reference_speed_m_s: float = 20.0
    horizontal_fraction: float = 0.3
    frequencies_hz: tuple[float, float, float] = (1.6, 11.0, 27.0)  # body bounce, wheel hop, tyre and road texture
    weights: tuple[float, float, float] = (0.3, 0.45, 0.25)

    def max_vertical_m_s2(self, speed_m_s: float) -> float:
        return self.vertical_g_at_reference * STANDARD_GRAVITY_M_S2 * speed_m_s / self.reference_speed_m_s


@dataclass(frozen=True, kw_only=True)
class CabinClimate:
    """First-order drift towards a target: a car parked in the sun heats up, driving (air con) cools it down."""

    start_c: float = 22.0
    parked_target_c: float = 45.0
    driving_target_c: float = 21.0
    parked_time_constant_s: float = 1800.0
    driving_time_constant_s: float = 420.0


@dataclass(frozen=True)
class VehicleMotion:
    """Noise-free state in the vehicle frame. The accelerations are the manoeuvre's alone, as in the ground truth:
    no gravity, grade, hill crests or vibration."""

    speed_m_s: float
    longitudinal_m_s2: float
    lateral_m_s2: float
    vertical_m_s2: float
    yaw_rate_rad_s: float
    distance_m: float
    altitude_m: float
    grade: float


class Vehicle:
    """One simulated vehicle with its Pi: the physics the chips sample, and the ground truth to score against.

    The accelerometer reads (dv/dt, v * yaw rate, g) plus bump, road grade and hill crests, plus road vibration,
    rotated by the mounting, plus bias and noise; the gyro reads (0, pitch rate over hills, yaw rate) likewise.
    Chips on different threads may share one: the only shared state (segment index, last reading) is re-checked
    or swapped whole.
    """

    def __init__(
        self,
        script: DriveScript,
        *,
        seed: int = 0,
        mounting: Mounting | None = None,
        sensor_errors: SensorErrors | None = None,
        vibration: RoadVibration | None = None,
        cabin: CabinClimate | None = None,
        sea_level_pressure_pa: float = SEA_LEVEL_PRESSURE_PA,
        die_self_heating_c: float = 4.0,
    ) -> None:
        self.script = script
        self.mounting = mounting or Mounting.identity()
        self.sensor_errors = sensor_errors or SensorErrors()
        self.vibration = vibration or RoadVibration()
        self.cabin = cabin or CabinClimate()
        self.sea_level_pressure_pa = sea_level_pressure_pa
        self.die_self_heating_c = die_self_heating_c
        last = script.segments[-1]
        # After the script the vehicle holds its last speed, so a chip may sample past the end without surprises.
        tail = Segment(
            kind="stop" if last.end_speed_m_s == 0.0 else "cruise", axis="none", start_s=last.end_s,
            duration_s=math.inf, start_speed_m_s=last.end_speed_m_s, end_speed_m_s=last.end_speed_m_s,
            start_distance_m=last.distance_m(last.duration_s),
        )  # fmt: skip
        self._segments = (*script.segments, tail)
        self._starts_s = [s.start_s for s in self._segments]
        self._index = 0
        self._cabin_start_c, self._cabin_target_c, self._cabin_tau_s = self._cabin_schedule()
        self._random_bits = random.Random(f"fleetsense-imu-noise:{seed}").getrandbits
        self._normal = _standard_normal_table()
        phase_rng = random.Random(f"fleetsense-vibration:{seed}")
        self._vibration = tuple(
            (2 * math.pi * f_hz, weight, phase_rng.uniform(0.0, 2 * math.pi))
            for f_hz, weight in zip(self.vibration.frequencies_hz, self.vibration.weights, strict=True)
        )
        # The hot path reads these flattened copies rather than walking the config objects 100-1000 times a second.
        self._sensor_from_vehicle = tuple(self.mounting.vehicle_from_sensor[j][i] for i in range(3) for j in range(3))
        self._accel_bias_m_s2, self._gyro_bias_rad_s = (
            self.sensor_errors.accel_bias_m_s2,
            self.sensor_errors.gyro_bias_rad_s,
        )
        self._accel_noise_m_s2 = self.sensor_errors.accel_noise_m_s2
        self._gyro_noise_rad_s = self.sensor_errors.gyro_noise_rad_s
        self._hills = tuple((2 * math.pi / h.wavelength_m, h.phase_rad, h.amplitude_m) for h in script.terrain.hills)
        self._cached: tuple[float, ImuReading] = (math.nan, ImuReading((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))

    @classmethod
    def random(cls, seed: int, duration_s: float) -> Vehicle:
        """A fleet member: random drive, random mounting, datasheet-typical biases, all from one seed."""
        return cls(
            DriveScript.random(seed, duration_s),
            seed=seed,
            mounting=Mounting.random(seed),
            sensor_errors=SensorErrors.typical_mpu6050(seed),
        )

    @property
    def ground_truth(self) -> GroundTruthLog:
        return self.script.ground_truth()

    def imu_at(self, t_s: float) -> ImuReading:
        cached_t_s, cached_reading = self._cached
        if t_s == cached_t_s:
            return cached_reading  # two reads of one sample (accel then gyro registers) must agree
        index = self._index
        segment = self._segments[index]
        tau_s = t_s - segment.start_s
        if not 0.0 <= tau_s < segment.duration_s:  # sampling forward in time mostly stays in the same segment
            index = self._index_at(t_s)
            segment = self._segments[index]
            tau_s = t_s - segment.start_s
        speed_m_s, fx, fy, fz = segment.kinematics(tau_s)
        yaw_rad_s = fy / speed_m_s if fy else 0.0  # a_lat = v * yaw rate; corners never run below 5 m/s
        pitch_rad_s = 0.0
        if self._hills:
            grade, path_curvature_per_m = self._grade_and_curvature(segment.distance_m(tau_s))
            fx += STANDARD_GRAVITY_M_S2 * grade  # uphill, gravity's reaction leans forward
            fz += STANDARD_GRAVITY_M_S2 * math.sqrt(1.0 - grade * grade) + speed_m_s * speed_m_s * path_curvature_per_m
            pitch_rad_s = -speed_m_s * path_curvature_per_m  # nose-up is a negative rotation about y (left)
        else:
            fz += STANDARD_GRAVITY_M_S2
        if speed_m_s > 0.0:
            fx, fy, fz = self._add_vibration(t_s, speed_m_s, fx, fy, fz)
        m00, m01, m02, m10, m11, m12, m20, m21, m22 = self._sensor_from_vehicle
        bx, by, bz = self._accel_bias_m_s2
        ax, ay, az = (
            m00 * fx + m01 * fy + m02 * fz + bx,
            m10 * fx + m11 * fy + m12 * fz + by,
            m20 * fx + m21 * fy + m22 * fz + bz,
        )
        bx, by, bz = self._gyro_bias_rad_s
        gx, gy, gz = (
            m01 * pitch_rad_s + m02 * yaw_rad_s + bx,
            m11 * pitch_rad_s + m12 * yaw_rad_s + by,
            m21 * pitch_rad_s + m22 * yaw_rad_s + bz,
        )
        normal, bits = self._normal, self._random_bits
        if sigma := self._accel_noise_m_s2:
            ax, ay, az = ax + sigma * normal[bits(16)], ay + sigma * normal[bits(16)], az + sigma * normal[bits(16)]
        if sigma := self._gyro_noise_rad_s:
            gx, gy, gz = gx + sigma * normal[bits(16)], gy + sigma * normal[bits(16)], gz + sigma * normal[bits(16)]
        accel, gyro = (ax, ay, az), (gx, gy, gz)
        reading = ImuReading(accel, gyro, self._cabin_c(index, tau_s) + self.die_self_heating_c)
        self._cached = (t_s, reading)
        return reading

    def environment_at(self, t_s: float) -> Environment:
        index = self._index_at(t_s)
        segment = self._segments[index]
        tau_s = t_s - segment.start_s
        altitude_m = self.script.terrain.profile(segment.distance_m(tau_s))[0]
        return Environment(pressure_at_altitude_pa(altitude_m, self.sea_level_pressure_pa), self._cabin_c(index, tau_s))

    def motion_at(self, t_s: float) -> VehicleMotion:
        segment = self._segments[self._index_at(t_s)]
        tau_s = t_s - segment.start_s
        speed_m_s, longitudinal_m_s2, lateral_m_s2, vertical_m_s2 = segment.kinematics(tau_s)
        distance_m = segment.distance_m(tau_s)
        altitude_m, grade, _ = self.script.terrain.profile(distance_m)
        yaw_rad_s = lateral_m_s2 / speed_m_s if lateral_m_s2 else 0.0
        return VehicleMotion(
            speed_m_s, longitudinal_m_s2, lateral_m_s2, vertical_m_s2, yaw_rad_s, distance_m, altitude_m, grade
        )

    def _index_at(self, t_s: float) -> int:
        index = self._index
        segment = self._segments[index]
        if segment.start_s <= t_s < segment.start_s + segment.duration_s:
            return index  # the common case: a chip sampling forward in time stays in the segment it was in
        if t_s < 0.0:
            raise ValueError(f"t_s={t_s}: the drive starts at 0 s; ask for a time at or after that")
        self._index = bisect_right(self._starts_s, t_s) - 1
        return self._index

    def _grade_and_curvature(self, distance_m: float) -> tuple[float, float]:
        """The road's grade (sine of its pitch) and the path's vertical curvature (1/m, negative over a crest)."""
        grade, curvature_per_m = 0.0, 0.0
        for k_per_m, phase_rad, amplitude_m in self._hills:
            phase = k_per_m * distance_m + phase_rad
            grade += amplitude_m * k_per_m * math.cos(phase)
            curvature_per_m -= amplitude_m * k_per_m * k_per_m * math.sin(phase)
        return grade, curvature_per_m / math.sqrt(1.0 - grade * grade)

    def _add_vibration(self, t_s: float, speed_m_s: float, fx: float, fy: float, fz: float) -> Vec3:
        scale_m_s2 = self.vibration.max_vertical_m_s2(speed_m_s)
        (w0, a0, p0), (w1, a1, p1), (w2, a2, p2) = self._vibration
        s0 = a0 * math.sin(w0 * t_s + p0)
        s1 = a1 * math.sin(w1 * t_s + p1)
        s2 = a2 * math.sin(w2 * t_s + p2)
        horizontal_m_s2 = scale_m_s2 * self.vibration.horizontal_fraction
        return fx + horizontal_m_s2 * s1, fy + horizontal_m_s2 * s2, fz + scale_m_s2 * (s0 + s1 + s2)

    def _cabin_schedule(self) -> tuple[list[float], list[float], list[float]]:
        cabin = self.cabin
        start_c, starts_c, targets_c, taus_s = cabin.start_c, [], [], []
        for segment in self._segments:
            parked = segment.kind == "stop"
            target_c = cabin.parked_target_c if parked else cabin.driving_target_c
            tau_s = cabin.parked_time_constant_s if parked else cabin.driving_time_constant_s
            starts_c.append(start_c)
            targets_c.append(target_c)
            taus_s.append(tau_s)
            start_c = target_c + (start_c - target_c) * math.exp(-segment.duration_s / tau_s)
        return starts_c, targets_c, taus_s

    def _cabin_c(self, index: int, tau_s: float) -> float:
        target_c = self._cabin_target_c[index]
        return target_c + (self._cabin_start_c[index] - target_c) * math.exp(-tau_s / self._cabin_tau_s[index])
