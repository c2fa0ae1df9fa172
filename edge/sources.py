"""The seam between the agent and its sensors: what a sensor source hands the agent, whatever the backend
(a driver on a real I2C bus, or the same driver on firmware-sim's simulated bus)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # transient I2C errors exhausted their retries; the agent keeps running
    ABSENT = "absent"


@dataclass(frozen=True, kw_only=True)
class SampleBlock:
    """Contiguous samples: sample i was taken at first_time_ns + i * period_ns on the monotonic clock."""

    first_time_ns: int
    period_ns: int
    counts: tuple[tuple[int, ...], ...]  # [sample][channel], raw int16 counts as the chip produced them


@dataclass
class SourceStatus:
    health: Health = Health.OK
    last_error: str | None = None
    fifo_overflows: int = 0
    samples_lost: int = 0  # estimated samples lost to overflows
    io_errors: int = 0


class ImuSource(Protocol):
    """Accelerometer + gyro, six channels (ax, ay, az, gx, gy, gz) in the sensor's frame."""

    scales: tuple[float, float, float, float, float, float]  # m/s² per count (x3), rad/s per count (x3)
    period_ns: int
    status: SourceStatus

    def start(self, now_ns: int) -> None:
        """Configure the chip and start sampling at `now_ns` (monotonic)."""

    def drain(self, now_ns: int) -> list[SampleBlock]:
        """Every sample since the previous drain. More than one block only after a gap (e.g. an overflow)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class EnvironmentSample:
    time_ns: int  # monotonic
    pressure_pa: float
    temperature_c: float


class EnvironmentSource(Protocol):
    """Barometric pressure and temperature, read on demand by the agent at its own rate."""

    status: SourceStatus

    def start(self, now_ns: int) -> None: ...

    def read(self, now_ns: int) -> EnvironmentSample | None:
        """The newest measurement, or None when the sensor is degraded."""
        ...

    def close(self) -> None: ...


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class Sensors:
    imu: ImuSource
    environment: EnvironmentSource | None = None
    closers: list[Closeable] = field(default_factory=list)  # e.g. the bus the sources share

    def close(self) -> None:
        """Close the sources, then what they share (the bus)."""
        self.imu.close()
        if self.environment is not None:
            self.environment.close()
        for closer in self.closers:
            closer.close()
