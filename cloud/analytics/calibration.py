"""Mounting calibration: the rotation from the sensor's frame to the vehicle's (x forward, y left, z up), learned
from the drive itself and kept as running sums, so the state stays a few hundred numbers however long the drive.

- Up: the mean specific force while the vehicle stands still (an accelerometer at rest reads +1 g up).
- Forward: the principal axis of horizontal acceleration while moving and not turning (a vehicle accelerates and
  brakes along its length; turning samples are left out because a corner's lateral acceleration would compete).
- Forward's sign: acceleration in the first seconds after standing still is forward (vehicles pull away forwards
  far more than they reverse). Where no pull-away has been seen yet, the yaw rate decides: in a corner the lateral
  acceleration is speed x yaw rate, so it points left exactly when the vehicle turns left.
- Left = up x forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.lowpass import AlignedChunk

FloatArray = npt.NDArray[np.float64]
STANDARD_GRAVITY_M_S2 = 9.80665


@dataclass(frozen=True, kw_only=True)
class CalibrationSettings:
    min_rest_s: float = 2.0  # standing still this long gives "down" to well under a degree (noise 0.03 m/s^2)
    # Quiet data counts as rest only this long after the last activity: a gentle pull-away or final deceleration
    # below ~4 m/s is as quiet as a parked vehicle (vibration under the noise) but is not gravity alone.
    rest_guard_s: float = 8.0
    drive_mean_min_s: float = 300.0  # never at rest: the mean specific force over this much driving stands in
    gravity_ema_tau_s: float = 30.0  # provisional gravity while nothing has settled (pre-calibration candidates)
    yaw_gate_rad_s: float = 0.03  # turning faster than this (a 0.05 g corner at 16 m/s) leaves the forward PCA
    min_forward_s: float = 5.0  # moving, non-turning time the forward axis needs
    min_forward_energy_m2_s3: float = 10.0  # integral of the squared acceleration along it (1.5 m/s^2 for 4.4 s)
    min_axis_ratio: float = 4.0  # variance along forward / variance across it: below this the axis is a guess
    launch_window_s: float = 3.0  # how long after standing still the acceleration votes for "forward"
    min_launch_m_s2: float = 0.2  # mean acceleration along the axis over all pull-aways, for that vote to count
    min_yaw_evidence_m_rad_s2: float = 0.2  # integral of yaw rate x lateral acceleration for the turn vote
    remount_angle_deg: float = 15.0  # gravity this far from "up" at rest, for remount_rest_batches: Pi was moved
    remount_rest_batches: int = 3
    resolve_every_batches: int = 10  # once settled the sums barely move: re-solve now and then, not every batch


@dataclass(frozen=True, kw_only=True)
class CalibrationSummary:
    """What the job stores per vehicle: whether the frame is known, the rotation, and the evidence behind it."""

    settled: bool  # forward, left and up known: driving events are reported
    up_settled: bool  # up known: bumps and vertical aggregates are reported
    up_source: str  # "rest", "drive_mean" or "none"
    sign_source: str  # what decided forward's sign: "launch", "yaw" or "none"
    vehicle_from_sensor: tuple[float, ...]  # row-major 3x3; rows are forward, left, up in sensor axes
    gravity_m_s2: float  # |specific force| at rest as this sensor reads it (includes its bias)
    gyro_bias_rad_s: tuple[float, float, float]
    rest_s: float
    forward_axis_ratio: float
    launch_and_yaw_agree: bool | None  # None until both votes have enough evidence
    remounts: int


# 3-vector helpers on floats: np.cross and np.linalg.norm cost ~10-30 us each on tiny arrays, this ~1 us.
def _norm(v: FloatArray) -> float:
    return math.sqrt(float(v @ v))


def _unit(v: FloatArray) -> FloatArray:
    return np.asarray(v / _norm(v), dtype=np.float64)


def _cross(a: FloatArray, b: FloatArray) -> FloatArray:
    a0, a1, a2 = a.tolist()
    b0, b1, b2 = b.tolist()
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def _horizontal_basis(up: FloatArray) -> tuple[FloatArray, FloatArray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = _unit(_cross(up, helper))
    return e1, _cross(up, e1)


class MountCalibration:
    """Running sums over the drive (sensor frame), solved into a rotation after each batch."""

    def __init__(self, settings: CalibrationSettings | None = None) -> None:
        self.settings = settings or CalibrationSettings()
        self.remounts = 0
        self._clear()

    def _clear(self) -> None:
        zeros3 = np.zeros(3)
        self._rest_n, self._rest_sum_a, self._rest_sum_g = 0, zeros3.copy(), zeros3.copy()
        self._all_n, self._all_sum_a, self._all_sum_g = 0, zeros3.copy(), zeros3.copy()
        self._gravity_ema: FloatArray | None = None
        # Forward PCA over moving, non-turning samples: count, sum and sum of outer products (centred at solve time).
        self._fwd_n, self._fwd_sum_a, self._fwd_sum_aa = 0, zeros3.copy(), np.zeros((3, 3))
        self._fwd_dt_s = 0.0
        # Turn vote: sums over moving samples of a g^T dt and a dt; yaw rate (g - bias) . up is applied when solving.
        self._yaw_sum_ag, self._yaw_sum_a = np.zeros((3, 3)), zeros3.copy()
        # Pull-away vote: acceleration summed over the first seconds after each rest.
        self._launch_n, self._launch_sum_a = 0, zeros3.copy()
        self._launch_armed, self._launch_until_us = False, -1
        self._remount_votes = 0
        self._since_solve = 0
        self.up: FloatArray | None = None
        self.gravity_m_s2 = STANDARD_GRAVITY_M_S2
        self.gyro_bias_rad_s = zeros3.copy()
        self.vehicle_from_sensor: FloatArray | None = None  # rows forward, left, up once settled
        self.up_source, self.sign_source = "none", "none"
        self.axis_ratio = 0.0
        self.votes_agree: bool | None = None

    @property
    def settled(self) -> bool:
        return self.vehicle_from_sensor is not None

    @property
    def gravity_estimate_m_s2(self) -> FloatArray | None:
        """Best current guess of the specific force at rest, in sensor axes: settled up, else the slow average."""
        if self.up is not None:
            return np.asarray(self.up * self.gravity_m_s2, dtype=np.float64)
        return self._gravity_ema

    def forget_launch(self) -> None:
        """After a data gap nobody knows what the vehicle did: the next motion is not a pull-away."""
        self._launch_armed, self._launch_until_us = False, -1

    def update(self, chunk: AlignedChunk, *, rest: bool, period_us: int) -> bool:
        """Add one aligned chunk; `rest` says the whole chunk stood still. Returns True if the mounting was reset
        (the Pi moved in its mount), so the caller can restart what depends on the frame."""
        n = len(chunk)
        if n == 0:
            return False
        accel, gyro = chunk.filtered, chunk.raw[:, 3:6]
        mean_a = accel.mean(axis=0)
        remounted = rest and self._check_remount(mean_a)
        dt_s = period_us / 1e6
        sum_g = gyro.sum(axis=0)
        self._all_n += n
        self._all_sum_a += mean_a * n
        self._all_sum_g += sum_g
        alpha = min(1.0, n * dt_s / self.settings.gravity_ema_tau_s)
        self._gravity_ema = (
            mean_a if self._gravity_ema is None else self._gravity_ema + alpha * (mean_a - self._gravity_ema)
        )
        if rest:
            self._rest_n += n
            self._rest_sum_a += mean_a * n
            self._rest_sum_g += sum_g
            self._launch_armed, self._launch_until_us = True, -1
        else:
            self._add_motion(chunk, accel, gyro, dt_s)
        self._since_solve += 1
        if not self.settled or self._since_solve >= self.settings.resolve_every_batches:
            self._since_solve = 0
            self._solve(dt_s)
        return remounted

    def _check_remount(self, mean_a: FloatArray) -> bool:
        if self.up is None or self.up_source != "rest":
            return False
        cos_angle = float(mean_a @ self.up) / _norm(mean_a)
        if cos_angle > math.cos(math.radians(self.settings.remount_angle_deg)):
            self._remount_votes = 0
            return False
        self._remount_votes += 1
        if self._remount_votes < self.settings.remount_rest_batches:
            return False
        remounts = self.remounts + 1
        self._clear()
        self.remounts = remounts
        return True

    def _add_motion(self, chunk: AlignedChunk, accel: FloatArray, gyro: FloatArray, dt_s: float) -> None:
        self._yaw_sum_ag += (accel.T @ gyro) * dt_s
        self._yaw_sum_a += accel.sum(axis=0) * dt_s
        gravity = self.gravity_estimate_m_s2
        if gravity is not None:
            up = gravity / _norm(gravity)
            bias = self.gyro_bias_rad_s if self._rest_n else self._all_sum_g / self._all_n
            yaw_rad_s = (gyro - bias) @ up
            straight = accel[np.abs(yaw_rad_s) < self.settings.yaw_gate_rad_s]
            self._fwd_n += straight.shape[0]
            self._fwd_dt_s += straight.shape[0] * dt_s
            self._fwd_sum_a += straight.sum(axis=0)
            self._fwd_sum_aa += straight.T @ straight
        if self._launch_armed:
            self._launch_armed = False
            self._launch_until_us = int(chunk.t_us[0]) + int(self.settings.launch_window_s * 1e6)
        if self._launch_until_us >= 0:
            launch = accel[chunk.t_us < self._launch_until_us]
            self._launch_n += launch.shape[0]
            self._launch_sum_a += launch.sum(axis=0)
            if launch.shape[0] < accel.shape[0]:
                self._launch_until_us = -1

    def _solve(self, dt_s: float) -> None:
        s = self.settings
        if self._rest_n * dt_s >= s.min_rest_s:
            mean_rest = self._rest_sum_a / self._rest_n
            self.up, self.up_source = _unit(mean_rest), "rest"
            self.gravity_m_s2 = _norm(mean_rest)
            self.gyro_bias_rad_s = self._rest_sum_g / self._rest_n
        elif self._all_n * dt_s >= s.drive_mean_min_s:
            mean_all = self._all_sum_a / self._all_n
            self.up, self.up_source = _unit(mean_all), "drive_mean"
            self.gravity_m_s2 = _norm(mean_all)
            self.gyro_bias_rad_s = self._all_sum_g / self._all_n
        else:
            return
        up = self.up
        if self._fwd_n < 2 or self._fwd_dt_s < s.min_forward_s:
            return
        # Principal axis of the centred horizontal covariance, in closed form on a 2-D basis of the horizontal plane.
        mean = self._fwd_sum_a / self._fwd_n
        cov = self._fwd_sum_aa / self._fwd_n - np.outer(mean, mean)
        e1, e2 = _horizontal_basis(up)
        c11, c22, c12 = float(e1 @ cov @ e1), float(e2 @ cov @ e2), float(e1 @ cov @ e2)
        theta = 0.5 * math.atan2(2.0 * c12, c11 - c22)
        axis = math.cos(theta) * e1 + math.sin(theta) * e2
        spread = math.hypot(0.5 * (c11 - c22), c12)
        major, minor = 0.5 * (c11 + c22) + spread, max(0.5 * (c11 + c22) - spread, 1e-12)
        self.axis_ratio = major / minor
        if major * self._fwd_dt_s < s.min_forward_energy_m2_s3 or self.axis_ratio < s.min_axis_ratio:
            return
        left_of_axis = _cross(up, axis)
        launch_vote = float(self._launch_sum_a @ axis) / self._launch_n if self._launch_n >= 50 else 0.0
        # Sum of (yaw rate) x (acceleration along left-of-axis): positive when left-of-axis really is left.
        yaw_about_up = self._yaw_sum_ag @ up - self._yaw_sum_a * float(self.gyro_bias_rad_s @ up)
        yaw_vote = float(left_of_axis @ yaw_about_up)
        launch_ok = abs(launch_vote) >= s.min_launch_m_s2
        yaw_ok = abs(yaw_vote) >= s.min_yaw_evidence_m_rad_s2
        self.votes_agree = (launch_vote > 0) == (yaw_vote > 0) if launch_ok and yaw_ok else None
        if launch_ok:
            sign, self.sign_source = math.copysign(1.0, launch_vote), "launch"
        elif yaw_ok:
            sign, self.sign_source = math.copysign(1.0, yaw_vote), "yaw"
        else:
            return
        forward = sign * axis
        self.vehicle_from_sensor = np.vstack((forward, _cross(up, forward), up))

    def summary(self, dt_s: float) -> CalibrationSummary:
        rotation = self.vehicle_from_sensor if self.vehicle_from_sensor is not None else np.eye(3)
        return CalibrationSummary(
            settled=self.settled,
            up_settled=self.up is not None,
            up_source=self.up_source,
            sign_source=self.sign_source,
            vehicle_from_sensor=tuple(float(v) for v in rotation.ravel()),
            gravity_m_s2=self.gravity_m_s2,
            gyro_bias_rad_s=(
                float(self.gyro_bias_rad_s[0]),
                float(self.gyro_bias_rad_s[1]),
                float(self.gyro_bias_rad_s[2]),
            ),
            rest_s=self._rest_n * dt_s,
            forward_axis_ratio=self.axis_ratio,
            launch_and_yaw_agree=self.votes_agree,
            remounts=self.remounts,
        )
