"""The one seam between sensor drivers and an I2C bus: a small protocol named after the kernel SMBus API, a real
backend over smbus2, a busio-compatible adapter for unmodified Adafruit drivers, and the backend chosen by a spec
string (like gpiozero's pin factory): "smbus:1" is /dev/i2c-1, "sim" is firmware-sim's register-level chips.

Every backend implements one method, `transfer` (write, then read after a repeated start): all I/O passes
there, so the register operations below are shared and tests replace a single place.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from fleetsense.errors import ConfigError, FleetsenseError

ENV_VAR = "FLEETSENSE_I2C_BUS"
DEFAULT_BUS_SPEC = "smbus:1"  # the Raspberry Pi's user I2C bus on GPIO2/GPIO3

ReadableBuffer = bytes | bytearray | memoryview
WriteableBuffer = bytearray | memoryview


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


class SMBusLike(Protocol):
    """The part of smbus2.SMBus we use (a fake stands in for it in tests)."""

    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...

    def write_quick(self, i2c_addr: int) -> None: ...

    def close(self) -> None: ...


def _open_smbus(number: int) -> SMBusLike:
    from smbus2 import SMBus

    return SMBus(number)


class SMBusBackend(TransactionBus):
    """/dev/i2c-N through smbus2: combined write/read transfers with i2c_rdwr (no 32-byte SMBus block limit,
    which a 1 KiB FIFO drain needs); a zero-length write, how busio probes an address, is an SMBus quick write."""

    def __init__(self, number: int, *, open_smbus: Callable[[int], SMBusLike] = _open_smbus) -> None:
        self.number = number
        self.name = f"smbus:{number}"
        path = f"/dev/i2c-{number}"
        try:
            self._smbus = open_smbus(number)
        except FileNotFoundError as exc:
            raise BusNotFoundError(
                f"I2C bus {number} not found: {path} does not exist",
                hint="enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on in config.txt) and "
                f"reboot; `ls /dev/i2c-*` lists the buses; without hardware set {ENV_VAR}=sim",
            ) from exc
        except PermissionError as exc:
            raise I2CError(
                f"no permission to open I2C bus {number} ({path})",
                hint="add the service user to the i2c group (sudo adduser <user> i2c) and log in again",
            ) from exc
        except OSError as exc:
            raise I2CError(f"cannot open I2C bus {number} ({path}): {exc.strerror}") from exc

    def transfer(self, address: int, write: bytes, read_length: int) -> bytes:
        from smbus2 import i2c_msg

        try:
            if not write and read_length == 0:
                self._smbus.write_quick(address)
                return b""
            messages = [i2c_msg.write(address, write)] if write else []
            reply: Any = i2c_msg.read(address, read_length) if read_length else None  # smbus2's stub mistypes it
            self._smbus.i2c_rdwr(*messages, *([reply] if reply is not None else []))
        except OSError as exc:
            # Keep the errno (drivers tell NACK from glitch by it) but say which bus and address.
            raise OSError(exc.errno, f"{self.name} address 0x{address:02x}: {exc.strerror or exc}") from exc
        return bytes(reply) if reply is not None else b""

    def close(self) -> None:
        self._smbus.close()


class BusioI2C:
    """CircuitPython's busio.I2C (the five methods adafruit_bus_device uses) over an I2CBus, so an unmodified
    Adafruit driver shares our bus, its retries aside. Buffers are sliced as buffer[start:end]; OSError passes
    through unchanged because adafruit_bus_device probes for a device by catching it."""

    def __init__(self, bus: I2CBus) -> None:
        self.bus = bus
        self._lock = threading.Lock()

    def try_lock(self) -> bool:
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        if self._lock.locked():
            self._lock.release()

    def writeto(self, address: int, buffer: ReadableBuffer, *, start: int = 0, end: int | None = None) -> None:
        self._require_lock()
        self.bus.write(address, bytes(memoryview(buffer)[start:end]))

    def readfrom_into(self, address: int, buffer: WriteableBuffer, *, start: int = 0, end: int | None = None) -> None:
        self._require_lock()
        view = memoryview(buffer)[start:end]
        view[:] = self.bus.read(address, len(view))

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out: ReadableBuffer,
        buffer_in: WriteableBuffer,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
        stop: bool = False,
    ) -> None:
        self._require_lock()
        out = bytes(memoryview(buffer_out)[out_start:out_end])  # copied first: Adafruit reuses one buffer for both
        view = memoryview(buffer_in)[in_start:in_end]
        view[:] = self.bus.write_then_read(address, out, len(view))

    def scan(self) -> list[int]:
        """The 7-bit addresses that acknowledge a zero-length write, like i2cdetect."""
        self._require_lock()
        found = []
        for address in range(0x08, 0x78):
            try:
                self.bus.write(address, b"")
            except OSError:
                continue
            found.append(address)
        return found

    def deinit(self) -> None:
        self.unlock()

    def __enter__(self) -> BusioI2C:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deinit()

    def _require_lock(self) -> None:
        if not self._lock.locked():
            raise RuntimeError("Function requires lock")  # busio's own message


@dataclass(frozen=True)
class BusSpec:
    kind: str  # "smbus" or "sim"
    number: int | None = None

    def __str__(self) -> str:
        return f"smbus:{self.number}" if self.kind == "smbus" else self.kind


def default_bus_spec() -> str:
    return os.environ.get(ENV_VAR) or DEFAULT_BUS_SPEC


def parse_bus_spec(spec: str) -> BusSpec:
    text = spec.strip().lower()
    if text == "sim":
        return BusSpec("sim")
    kind, _, number = text.partition(":")
    if kind == "smbus" and number.isdigit():
        return BusSpec("smbus", int(number))
    raise ConfigError(
        f"unknown I2C bus {spec!r}",
        hint=f"use smbus:<N> for /dev/i2c-<N> (smbus:1 on a Raspberry Pi) or sim for the simulated chips, "
        f"in the config or in {ENV_VAR}",
    )


def open_bus(spec: str | None = None) -> TransactionBus:
    """The bus named by `spec`, else by FLEETSENSE_I2C_BUS, else smbus:1. "sim" gives firmware-sim's bus with
    an MPU-6050 and a BMP280 at rest on the real monotonic clock (edge/hardware_factory.py chooses physics)."""
    parsed = parse_bus_spec(spec if spec is not None else default_bus_spec())
    if parsed.kind == "sim":
        from fleetsense.sim.bus import simulated_bus

        return simulated_bus()
    assert parsed.number is not None
    return SMBusBackend(parsed.number)
