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
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.lowpass import AlignedChunk
from fleetsense.cloud.analytics.state_versions import Piece, StateVersionError

from fleetsense.quantities import STANDARD_GRAVITY_M_S2

FloatArray = npt.NDArray[np.float64]


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


# Every vector and matrix of the calibration lives in one record of this structured dtype, so that its state pickles
# as one bytes blob (a pickled numpy array costs several microseconds and ~150 bytes each, and there are a dozen);
# the code reads and writes each field through its name (a view into the record). Sums are in the sensor frame.
# The order and shapes are the pickled layout (CALIBRATION's version): change them only with a migration.
VECTORS = np.dtype(
    [
        ("rest_sum_a", np.float64, (3,)),  # accelerometer summed over rest samples (as chunk mean x count)
        ("rest_sum_g", np.float64, (3,)),  # gyro summed over rest samples
        ("all_sum_a", np.float64, (3,)),
        ("all_sum_g", np.float64, (3,)),
        # Forward PCA over moving, non-turning samples: sum and sum of outer products (centred at solve time).
        ("fwd_sum_a", np.float64, (3,)),
        ("fwd_sum_aa", np.float64, (3, 3)),
        # Turn vote: sums over moving samples of a g^T dt and a dt; yaw rate (g - bias) . up is applied when solving.
        ("yaw_sum_ag", np.float64, (3, 3)),
        ("yaw_sum_a", np.float64, (3,)),
        ("launch_sum_a", np.float64, (3,)),  # pull-away vote: acceleration summed over the first seconds after rests
        ("gravity_ema", np.float64, (3,)),  # provisional gravity, valid once _ema_known
        # What _solve found, valid once _up_known / settled; the last two are derived from it and kept so that each
        # batch does not recompute them: the unit gravity direction the yaw rate is taken about, and the [2, 3]
        # matrix rotation[:2] / gravity (its transpose takes the specific force to longitudinal and lateral g).
        ("up", np.float64, (3,)),
        ("gyro_bias", np.float64, (3,)),
        ("rotation", np.float64, (3, 3)),  # rows forward, left, up in sensor axes
        ("yaw_axis", np.float64, (3,)),
        ("horizontal_g", np.float64, (2, 3)),
    ]
)
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


class CalibrationState(NamedTuple):
    """MountCalibration.state(): the vectors as VECTORS bytes, then the scalars and flags."""

    vectors: bytes
    remounts: int
    rest_n: int
    all_n: int
    fwd_n: int
    fwd_dt_s: float
    launch_n: int
    launch_armed: bool
    launch_until_us: int
    remount_votes: int
    since_solve: int
    gravity_m_s2: float
    up_source: str
    sign_source: str
    axis_ratio: float
    votes_agree: bool | None
    ema_known: bool
    up_known: bool
    settled: bool


CALIBRATION = Piece("mount calibration", CalibrationState, version=1)


def _vectors(blob: bytes | None = None) -> npt.NDArray[np.void]:
    """A zeroed VECTORS record, or a writable copy of one state() stored."""
    if blob is None:
        return np.zeros((), dtype=VECTORS)
    if len(blob) != VECTORS.itemsize:
        raise StateVersionError(f"the calibration's vectors are {len(blob)} bytes, expected {VECTORS.itemsize}")
    return np.frombuffer(bytearray(blob), dtype=VECTORS).reshape(())  # a writable copy, 4x cheaper than .copy()


class MountCalibration:
    """Running sums over the drive (sensor frame), solved into a rotation after each batch.

    `up`, `gyro_bias_rad_s`, `vehicle_from_sensor` and `horizontal_g` are views into the running state, valid until
    the next update: copy one to keep it."""

    def __init__(self, settings: CalibrationSettings | None = None) -> None:
        self.settings = settings or CalibrationSettings()
        self.remounts = 0
        self._clear()

    def _clear(self) -> None:
        self._f = _vectors()
        self._rest_n = self._all_n = self._fwd_n = self._launch_n = 0
        self._fwd_dt_s = 0.0
        self._launch_armed, self._launch_until_us = False, -1
        self._remount_votes = 0
        self._since_solve = 0
        self.gravity_m_s2 = STANDARD_GRAVITY_M_S2
        self.up_source, self.sign_source = "none", "none"
        self.axis_ratio = 0.0
        self.votes_agree: bool | None = None
        self._ema_known = self._up_known = self._settled = False

    def state(self) -> CalibrationState:
        # Positional (a keyword call costs a microsecond more, after every batch); the comments name the fields.
        return CalibrationState(
            self._f.tobytes(),  # vectors
            self.remounts,  # remounts
            self._rest_n,  # rest_n
            self._all_n,  # all_n
            self._fwd_n,  # fwd_n
            self._fwd_dt_s,  # fwd_dt_s
            self._launch_n,  # launch_n
            self._launch_armed,  # launch_armed
            self._launch_until_us,  # launch_until_us
            self._remount_votes,  # remount_votes
            self._since_solve,  # since_solve
            self.gravity_m_s2,  # gravity_m_s2
            self.up_source,  # up_source
            self.sign_source,  # sign_source
            self.axis_ratio,  # axis_ratio
            self.votes_agree,  # votes_agree
            self._ema_known,  # ema_known
            self._up_known,  # up_known
            self._settled,  # settled
        )

    @classmethod
    def restored(cls, settings: CalibrationSettings, state: CalibrationState) -> MountCalibration:
        calibration = cls.__new__(cls)  # skips __init__: the state sets everything it would
        calibration.settings = settings
        calibration._f = _vectors(state.vectors)
        calibration.remounts = state.remounts
        calibration._rest_n, calibration._all_n, calibration._fwd_n = state.rest_n, state.all_n, state.fwd_n
        calibration._fwd_dt_s, calibration._launch_n = state.fwd_dt_s, state.launch_n
        calibration._launch_armed, calibration._launch_until_us = state.launch_armed, state.launch_until_us
        calibration._remount_votes, calibration._since_solve = state.remount_votes, state.since_solve
        calibration.gravity_m_s2 = state.gravity_m_s2
        calibration.up_source, calibration.sign_source = state.up_source, state.sign_source
        calibration.axis_ratio, calibration.votes_agree = state.axis_ratio, state.votes_agree
        calibration._ema_known, calibration._up_known = state.ema_known, state.up_known
        calibration._settled = state.settled
        return calibration

    @property
    def settled(self) -> bool:
        return self._settled

    @property
    def up(self) -> FloatArray | None:
        """Unit "up" in sensor axes, once known."""
        return self._f["up"] if self._up_known else None

    @property
    def gyro_bias_rad_s(self) -> FloatArray:
        return self._f["gyro_bias"]

    @property
    def vehicle_from_sensor(self) -> FloatArray | None:
        """Rows forward, left, up in sensor axes, once settled."""
        return self._f["rotation"] if self._settled else None

    @property
    def horizontal_g(self) -> FloatArray | None:
        """[3, 2], once settled: specific force (m/s^2, sensor axes) @ this = (longitudinal g, lateral g)."""
        # The transpose of a C-ordered [2, 3], as rotation[:2].T / gravity would be: the same layout keeps the
        # matrix product's summation order, hence its bits.
        return self._f["horizontal_g"].T if self._settled else None

    @property
    def gravity_estimate_m_s2(self) -> FloatArray | None:
        """Best current guess of the specific force at rest, in sensor axes: settled up, else the slow average."""
        if self._up_known:
            return np.asarray(self._f["up"] * self.gravity_m_s2, dtype=np.float64)
        return self._f["gravity_ema"].copy() if self._ema_known else None

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
        sum_a = accel.sum(axis=0)
        mean_a = sum_a / n  # accel.mean(axis=0) bit for bit (numpy's mean is this sum and division), 3x cheaper
        remounted = rest and self._check_remount(mean_a)
        dt_s = period_us / 1e6
        sum_g = gyro.sum(axis=0)
        f = self._f
        self._all_n += n
        f["all_sum_a"] += mean_a * n
        f["all_sum_g"] += sum_g
        alpha = min(1.0, n * dt_s / self.settings.gravity_ema_tau_s)
        if self._ema_known:
            ema = f["gravity_ema"]
            ema += alpha * (mean_a - ema)
        else:
            f["gravity_ema"], self._ema_known = mean_a, True
        if rest:
            self._rest_n += n
            f["rest_sum_a"] += mean_a * n
            f["rest_sum_g"] += sum_g
            self._launch_armed, self._launch_until_us = True, -1
        else:
            self._add_motion(chunk, accel, gyro, sum_a, dt_s)
        self._since_solve += 1
        if not self._settled or self._since_solve >= self.settings.resolve_every_batches:
            self._since_solve = 0
            self._solve(dt_s)
        return remounted

    def _check_remount(self, mean_a: FloatArray) -> bool:
        if not self._up_known or self.up_source != "rest":
            return False
        cos_angle = float(mean_a @ self._f["up"]) / _norm(mean_a)
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

    def _add_motion(
        self, chunk: AlignedChunk, accel: FloatArray, gyro: FloatArray, sum_a: FloatArray, dt_s: float
    ) -> None:
        f = self._f
        f["yaw_sum_ag"] += (accel.T @ gyro) * dt_s
        f["yaw_sum_a"] += sum_a * dt_s
        if self._up_known or self._ema_known:  # always, as update() sets the average first
            if self._up_known:
                up = f["yaw_axis"]
            else:
                ema = f["gravity_ema"]
                up = ema / _norm(ema)
            bias = f["gyro_bias"] if self._rest_n else f["all_sum_g"] / self._all_n
            straight_mask = np.abs((gyro - bias) @ up) < self.settings.yaw_gate_rad_s
            count = int(np.count_nonzero(straight_mask))
            self._fwd_n += count
            self._fwd_dt_s += count * dt_s
            if count == accel.shape[0]:  # no turning at all (most batches): accel[mask] would be a copy of accel
                f["fwd_sum_a"] += sum_a
                f["fwd_sum_aa"] += accel.T @ accel
            else:
                straight = accel[straight_mask]
                f["fwd_sum_a"] += straight.sum(axis=0)
                f["fwd_sum_aa"] += straight.T @ straight
        if self._launch_armed:
            self._launch_armed = False
            self._launch_until_us = int(chunk.t_us[0]) + int(self.settings.launch_window_s * 1e6)
        if self._launch_until_us >= 0:
            launch = accel[chunk.t_us < self._launch_until_us]
            self._launch_n += launch.shape[0]
            f["launch_sum_a"] += launch.sum(axis=0)
            if launch.shape[0] < accel.shape[0]:
                self._launch_until_us = -1

    def _solve(self, dt_s: float) -> None:
        if self._solve_up(dt_s):
            self._solve_forward()
            self._derive()

    def _solve_up(self, dt_s: float) -> bool:
        s, f = self.settings, self._f
        if self._rest_n * dt_s >= s.min_rest_s:
            n, sum_a, sum_g, source = self._rest_n, f["rest_sum_a"], f["rest_sum_g"], "rest"
        elif self._all_n * dt_s >= s.drive_mean_min_s:
            n, sum_a, sum_g, source = self._all_n, f["all_sum_a"], f["all_sum_g"], "drive_mean"
        else:
            return False
        mean = sum_a / n
        f["up"], self.up_source, self._up_known = _unit(mean), source, True
        self.gravity_m_s2 = _norm(mean)
        f["gyro_bias"] = sum_g / n
        return True

    def _solve_forward(self) -> None:
        s, f = self.settings, self._f
        up = f["up"]
        if self._fwd_n < 2 or self._fwd_dt_s < s.min_forward_s:
            return
        # Principal axis of the centred horizontal covariance, in closed form on a 2-D basis of the horizontal plane.
        mean = f["fwd_sum_a"] / self._fwd_n
        cov = f["fwd_sum_aa"] / self._fwd_n - np.outer(mean, mean)
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
        launch_vote = float(f["launch_sum_a"] @ axis) / self._launch_n if self._launch_n >= 50 else 0.0
        # Sum of (yaw rate) x (acceleration along left-of-axis): positive when left-of-axis really is left.
        yaw_about_up = f["yaw_sum_ag"] @ up - f["yaw_sum_a"] * float(f["gyro_bias"] @ up)
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
        rotation = f["rotation"]
        rotation[0], rotation[1], rotation[2] = forward, _cross(up, forward), up
        self._settled = True

    def _derive(self) -> None:
        """The per-batch constants that follow from up, gravity and the rotation: the same arithmetic each batch
        would otherwise repeat, so the same bits."""
        f = self._f
        gravity = f["up"] * self.gravity_m_s2
        f["yaw_axis"] = gravity / _norm(gravity)
        if self._settled:
            f["horizontal_g"] = f["rotation"][:2] / self.gravity_m_s2

    def summary(self, dt_s: float) -> CalibrationSummary:
        f = self._f
        bias_x, bias_y, bias_z = f["gyro_bias"].tolist()
        return CalibrationSummary(
            settled=self._settled,
            up_settled=self._up_known,
            up_source=self.up_source,
            sign_source=self.sign_source,
            vehicle_from_sensor=tuple(f["rotation"].ravel().tolist()) if self._settled else _IDENTITY,
            gravity_m_s2=self.gravity_m_s2,
            gyro_bias_rad_s=(bias_x, bias_y, bias_z),
            rest_s=self._rest_n * dt_s,
            forward_axis_ratio=self.axis_ratio,
            launch_and_yaw_agree=self.votes_agree,
            remounts=self.remounts,
        )
