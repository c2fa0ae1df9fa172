"""Sensor drivers on the I2C bus seam (edge/sensors/bus.py), and what they share: declared bit fields, and one chip's
register I/O with the retry policy and the errors a user can act on."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from fleetsense.edge.sensors.bus import DeviceAbsentError, I2CBus, I2CTransferError, WrongChipError

T = TypeVar("T")


@dataclass(frozen=True)
class BitField:
    """`width` bits of `register` starting at bit `shift`: declared once in a register map, never hand-masked."""

    register: int
    shift: int
    width: int = 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def get(self, register_value: int) -> int:
        return (register_value & self.mask) >> self.shift

    def put(self, register_value: int, field_value: int) -> int:
        """`register_value` with this field replaced by `field_value`."""
        if not 0 <= field_value < (1 << self.width):
            raise ValueError(f"{field_value} does not fit in {self.width} bit(s)")
        return (register_value & ~self.mask & 0xFF) | (field_value << self.shift)

    def value(self, field_value: int = 1) -> int:
        """The register value with only this field set (for write-only or freshly composed registers)."""
        return self.put(0, field_value)


class RegisterDevice:
    """One chip at one address: every register access of a driver goes through here, so the retry policy
    (a few attempts with a short doubling backoff) and the error accounting live in one place."""

    def __init__(
        self,
        bus: I2CBus,
        address: int,
        chip: str,
        *,
        retries: int = 3,
        backoff_s: float = 0.002,
        sleep_s: Callable[[float], None] = time.sleep,
        on_error: Callable[[OSError], None] = lambda exc: None,
    ) -> None:
        self.bus = bus
        self.address = address
        self.chip = chip
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep_s = sleep_s
        self._on_error = on_error

    @property
    def where(self) -> str:
        return f"{self.chip} at 0x{self.address:02x} on I2C bus {self.bus.name}"

    def read(self, register: int, length: int) -> bytes:
        return self.retrying(
            f"reading {length} byte(s) from register 0x{register:02x}",
            lambda: self.bus.read_i2c_block_data(self.address, register, length),
        )

    def read_u8(self, register: int) -> int:
        return self.read(register, 1)[0]

    def write_u8(self, register: int, value: int) -> None:
        self.retrying(
            f"writing 0x{value:02x} to register 0x{register:02x}",
            lambda: self.bus.write_byte_data(self.address, register, value),
        )

    def read_once(self, register: int, length: int) -> bytes:
        """A read that must not be repeated (a FIFO pop: a failed burst may already have consumed bytes)."""
        try:
            return self.bus.write_then_read(self.address, bytes([register]), length)
        except OSError as exc:
            self._on_error(exc)
            raise self._transfer_error(f"reading {length} byte(s) from register 0x{register:02x}", 1, exc) from exc

    def retrying(self, what: str, operation: Callable[[], T]) -> T:
        attempts = self._retries + 1
        for attempt in range(attempts):
            try:
                return operation()
            except OSError as exc:
                self._on_error(exc)
                if attempt == attempts - 1:
                    raise self._transfer_error(what, attempts, exc) from exc
                self._sleep_s(self._backoff_s * (2**attempt))
        raise AssertionError("unreachable")

    def identify(self, register: int, expected: int, *, known: Mapping[int, str], alternatives: str) -> None:
        """Check that the chip we expect answers here: absent and wrong-chip errors say what to check."""
        try:
            value = self.read_u8(register)
        except I2CTransferError as exc:
            raise DeviceAbsentError(
                f"no {self.chip} answers at address 0x{self.address:02x} on I2C bus {self.bus.name} ({exc.cause})",
                hint=f"check the wiring (SDA, SCL, 3.3 V, GND) and the address ({alternatives}); "
                f"`i2cdetect -y <bus>` lists the addresses that answer; is I2C enabled (raspi-config)?",
            ) from exc
        if value != expected:
            what = f" (0x{value:02x} is the id of a {known[value]})" if value in known else ""
            raise WrongChipError(
                f"the device at 0x{self.address:02x} on I2C bus {self.bus.name} is not a {self.chip}: "
                f"its id register 0x{register:02x} read 0x{value:02x}, expected 0x{expected:02x}{what}",
                hint=f"check which chip is fitted and its address ({alternatives}); another device may share it",
            )

    def _transfer_error(self, what: str, attempts: int, exc: OSError) -> I2CTransferError:
        cause = exc.strerror or str(exc)
        return I2CTransferError(
            f"{self.where}: {what} failed after {attempts} attempt(s): {cause}",
            hint="check the wiring and the sensor's power; loose connectors in a vehicle cause intermittent errors",
            cause=cause,
        )
