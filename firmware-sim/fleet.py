"""Simulated fleet members for the edge agent's --simulate mode and the load generator: each vehicle id
gets its own reproducible drive, mounting and sensor errors."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from fleetsense.sim.physics import Environment, ImuReading
from fleetsense.sim.vehicle import Vehicle

DEFAULT_DRIVE_S = 24 * 3600.0  # the model keeps cruising after the script ends


def vehicle_seed(vehicle_id: str) -> int:
    return zlib.crc32(vehicle_id.encode())


@dataclass(frozen=True)
class ClockShifted:
    """A vehicle whose drive starts at `start_ns` on the chips' clock (the model's time starts at 0)."""

    vehicle: Vehicle
    start_ns: int

    def _t(self, t_s: float) -> float:
        return max(0.0, t_s - self.start_ns / 1e9)

    def imu_at(self, t_s: float) -> ImuReading:
        return self.vehicle.imu_at(self._t(t_s))

    def environment_at(self, t_s: float) -> Environment:
        return self.vehicle.environment_at(self._t(t_s))


def vehicle_physics(vehicle_id: str, *, start_ns: int, duration_s: float = DEFAULT_DRIVE_S) -> ClockShifted:
    return ClockShifted(Vehicle.random(vehicle_seed(vehicle_id), duration_s), start_ns)
