"""How the Pi sits in the vehicle: the rotation between the vehicle frame (x forward, y left, z up) and the sensor's.

Nobody mounts the Pi square to the car, so the sensor never reads gravity on +z alone; the edge or cloud has to
estimate this rotation, and the simulator picks it (from angles, or at random from a seed) to test that.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from fleetsense.sim.physics import Vec3

Matrix3 = tuple[Vec3, Vec3, Vec3]  # row-major


class MountingError(ValueError):
    """A matrix that is not a proper rotation: the message says which check failed."""


def _matmul(a: Matrix3, b: Matrix3) -> Matrix3:
    rows = [tuple(sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)) for i in range(3)]
    return (
        (rows[0][0], rows[0][1], rows[0][2]),
        (rows[1][0], rows[1][1], rows[1][2]),
        (rows[2][0], rows[2][1], rows[2][2]),
    )


@dataclass(frozen=True)
class Mounting:
    """`vehicle_from_sensor` maps sensor coordinates to vehicle coordinates; its columns are the sensor's axes
    as seen in the vehicle."""

    vehicle_from_sensor: Matrix3

    def __post_init__(self) -> None:
        m = self.vehicle_from_sensor
        for i in range(3):
            for j in range(3):
                dot = sum(m[k][i] * m[k][j] for k in range(3))
                if abs(dot - (1.0 if i == j else 0.0)) > 1e-9:
                    raise MountingError(f"mounting matrix is not orthonormal (columns {i},{j} dot {dot:.6g})")
        det = (
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        )
        if det < 0:
            raise MountingError("mounting matrix is a reflection (determinant -1); swap two axes to make it a rotation")

    @classmethod
    def identity(cls) -> Mounting:
        return cls(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))

    @classmethod
    def from_yaw_pitch_roll_deg(cls, yaw_deg: float, pitch_deg: float, roll_deg: float) -> Mounting:
        """The sensor's attitude in the vehicle as intrinsic z-y'-x'' (aerospace) angles: yaw about the vehicle's
        up axis, then pitch about the new y (positive tips the sensor's x axis down), then roll about the new x."""
        y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
        rz: Matrix3 = ((math.cos(y), -math.sin(y), 0.0), (math.sin(y), math.cos(y), 0.0), (0.0, 0.0, 1.0))
        ry: Matrix3 = ((math.cos(p), 0.0, math.sin(p)), (0.0, 1.0, 0.0), (-math.sin(p), 0.0, math.cos(p)))
        rx: Matrix3 = ((1.0, 0.0, 0.0), (0.0, math.cos(r), -math.sin(r)), (0.0, math.sin(r), math.cos(r)))
        return cls(_matmul(_matmul(rz, ry), rx))

    @classmethod
    def random(cls, seed: int, *, max_tilt_deg: float | None = None) -> Mounting:
        """Uniform over all rotations (a Pi velcroed anywhere), or, with max_tilt_deg, any heading but pitch and
        roll within ±max_tilt_deg (a dash or under-seat mount that is roughly level)."""
        rng = random.Random(f"fleetsense-mounting:{seed}")
        if max_tilt_deg is not None:
            return cls.from_yaw_pitch_roll_deg(
                rng.uniform(-180.0, 180.0),
                rng.uniform(-max_tilt_deg, max_tilt_deg),
                rng.uniform(-max_tilt_deg, max_tilt_deg),
            )
        # Shoemake's uniform random unit quaternion; Euler angles drawn uniformly would crowd the poles.
        u1, u2, u3 = rng.random(), rng.random(), rng.random()
        x = math.sqrt(1 - u1) * math.sin(2 * math.pi * u2)
        y = math.sqrt(1 - u1) * math.cos(2 * math.pi * u2)
        z = math.sqrt(u1) * math.sin(2 * math.pi * u3)
        w = math.sqrt(u1) * math.cos(2 * math.pi * u3)
        return cls(
            (
                (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
                (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
                (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)),
            )
        )

    def to_sensor(self, vehicle_vec: Vec3) -> Vec3:
        m, (a, b, c) = self.vehicle_from_sensor, vehicle_vec
        return (
            m[0][0] * a + m[1][0] * b + m[2][0] * c,
            m[0][1] * a + m[1][1] * b + m[2][1] * c,
            m[0][2] * a + m[1][2] * b + m[2][2] * c,
        )

    def to_vehicle(self, sensor_vec: Vec3) -> Vec3:
        m, (a, b, c) = self.vehicle_from_sensor, sensor_vec
        return (
            m[0][0] * a + m[0][1] * b + m[0][2] * c,
            m[1][0] * a + m[1][1] * b + m[1][2] * c,
            m[2][0] * a + m[2][1] * b + m[2][2] * c,
        )

    @property
    def sensor_up(self) -> Vec3:
        """The vehicle's up axis in sensor coordinates: where a parked sensor sees gravity's reaction."""
        return self.to_sensor((0.0, 0.0, 1.0))
