"""What a simulated chip measures: the physics at a moment, in the sensor's own frame and SI units.

The vehicle model (firmware-sim/vehicle.py) implements these; the register-level chips
(firmware-sim/chips/) turn them into register contents. Times are seconds on the simulation's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fleetsense.quantities import STANDARD_GRAVITY_M_S2

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class ImuReading:
    specific_force_m_s2: Vec3  # what an accelerometer measures: +1 g "up" at rest
    angular_rate_rad_s: Vec3
    die_temperature_c: float = 30.0


@dataclass(frozen=True)
class Environment:
    pressure_pa: float
    temperature_c: float


class ImuPhysics(Protocol):
    def imu_at(self, t_s: float) -> ImuReading: ...


class EnvironmentPhysics(Protocol):
    def environment_at(self, t_s: float) -> Environment: ...


@dataclass(frozen=True)
class AtRest:
    """A parked vehicle with the sensor mounted level: gravity on +z, nothing turning, sea-level air."""

    pressure_pa: float = 101_325.0
    temperature_c: float = 21.0

    def imu_at(self, t_s: float) -> ImuReading:
        return ImuReading((0.0, 0.0, STANDARD_GRAVITY_M_S2), (0.0, 0.0, 0.0))

    def environment_at(self, t_s: float) -> Environment:
        return Environment(self.pressure_pa, self.temperature_c)
