"""The seam between the agent and whatever produces accelerometer samples (a driver or firmware-sim)."""

from __future__ import annotations

from typing import Protocol


class AccelSampler(Protocol):
    scale_m_s2_per_count: float

    def samples_for_window(self, start_time_us: int, count: int, period_us: int) -> list[tuple[int, int, int]]:
        """`count` samples (x, y, z raw counts) taken at start_time_us + i * period_us."""
        ...


def simulated_sampler(vehicle_id: str) -> AccelSampler:
    """firmware-sim's accelerometer, seeded by the vehicle id so each simulated van drives differently."""
    import zlib

    from fleetsense.sim.accelerometer import SimulatedAccelerometer

    return SimulatedAccelerometer(seed=zlib.crc32(vehicle_id.encode()))
