"""The seam between sensor drivers and an I2C bus: what a driver may do with a bus (a small protocol named after
the kernel SMBus API), the register operations every backend shares, the errors a user can act on, and what a
backend factory is given. Backends: edge/i2c.py's smbus2 one (and its registry), firmware-sim's simulated board.

Every backend implements one method, `transfer` (write, then read after a repeated start): all I/O passes
there, so the register operations below are shared and tests replace a single place.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from fleetsense.errors import FleetsenseError


class I2CError(FleetsenseError):
    """An I2C bus or device problem a user can fix (wiring, configuration, permissions)."""


class BusNotFoundError(I2CError):
    pass


class DeviceAbsentError(I2CError):
    pass


class WrongChipError(I2CError):
    pass


class I2CTransferError(I2CError):
    """A transfer kept failing after its retries; `cause` is the last OS error text."""

    def __init__(self, message: str, *, hint: str | None = None, cause: str = "") -> None:
        super().__init__(message, hint=hint)
        self.cause = cause


class I2CBus(Protocol):
    """What a driver may do with a bus. Failures raise OSError (NACK: errno EREMOTEIO/ENXIO, glitches: EIO)."""

    @property
    def name(self) -> str: ...

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> bytes: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: bytes) -> None: ...

    def write(self, address: int, data: bytes) -> None: ...

    def write_then_read(self, address: int, data: bytes, length: int) -> bytes: ...

    def read(self, address: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class TransactionBus(ABC):
    """The register operations as raw transactions; a backend supplies `transfer` and `name`."""

    name: str

    @abstractmethod
    def transfer(self, address: int, write: bytes, read_length: int) -> bytes:
        """Write `write` (may be empty), then read `read_length` bytes after a repeated start (0: no read)."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self.transfer(i2c_addr, bytes([register]), 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self.transfer(i2c_addr, bytes([register, value]), 0)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> bytes:
        return self.transfer(i2c_addr, bytes([register]), length)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: bytes) -> None:
        self.transfer(i2c_addr, bytes([register]) + bytes(data), 0)

    def write(self, address: int, data: bytes) -> None:
        self.transfer(address, bytes(data), 0)

    def write_then_read(self, address: int, data: bytes, length: int) -> bytes:
        return self.transfer(address, bytes(data), length)

    def read(self, address: int, length: int) -> bytes:
        return self.transfer(address, b"", length)

    def close(self) -> None:  # noqa: B027 (a backend with nothing to release need not override it)
        pass

    def __enter__(self) -> TransactionBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, kw_only=True)
class BusRequest:
    """What a backend factory is given: the argument of the bus spec ("1" in "smbus:1") and what a simulated
    board needs to be the vehicle unit (a real bus ignores the rest)."""

    argument: str = ""
    clock_ns: Callable[[], int] = field(default=time.monotonic_ns)  # the chips' clock (a virtual one in tests)
    imu_address: int | None = 0x68  # None: no MPU-6050 on the board
    baro_address: int | None = 0x76  # None: no BMP280 on the board
    vehicle_id: str | None = None  # a simulated board drives this vehicle's own drive (parked without one)
    physics: object | None = None  # a simulated board's motion and air, in the simulator's own type: opaque here


class BusFactory(Protocol):
    """A backend, registered as an entry point in the group fleetsense.i2c_buses under the name specs use."""

    def __call__(self, request: BusRequest) -> TransactionBus: ...
