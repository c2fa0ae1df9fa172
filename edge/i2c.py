"""The I2C backends and the one place a bus is chosen (like gpiozero's pin factory, gpiozero/devices.py): a spec
string "<backend>[:<argument>]" from the config, else FLEETSENSE_I2C_BUS, else smbus:1, names a backend registered
as an entry point of the group fleetsense.i2c_buses. This package registers "smbus" (smbus:1 is /dev/i2c-1, over
smbus2, below) and "sim" (firmware-sim's register-level board), so edge never imports the simulator.

Also here: a busio-compatible adapter, so unmodified Adafruit drivers share our bus. The seam itself (the bus
protocol, the shared register operations, the errors) is edge/sensors/bus.py.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from importlib import metadata
from types import TracebackType
from typing import Any, Protocol

from fleetsense.edge.sensors.bus import BusFactory, BusNotFoundError, BusRequest, I2CBus, I2CError, TransactionBus

from fleetsense.errors import ConfigError

ENV_VAR = "FLEETSENSE_I2C_BUS"
DEFAULT_BUS_SPEC = "smbus:1"  # the Raspberry Pi's user I2C bus on GPIO2/GPIO3
BACKEND_GROUP = "fleetsense.i2c_buses"  # entry points: backend name -> BusFactory
SPEC_HINT = (
    f"use smbus:<N> for /dev/i2c-<N> (smbus:1 on a Raspberry Pi) or sim for the simulated chips, in the config's "
    f"[sensors] bus or in {ENV_VAR}"
)

ReadableBuffer = bytes | bytearray | memoryview
WriteableBuffer = bytearray | memoryview


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


# ---------------------------------------------------------------------------------------------------------
# Choosing the backend


def bus_spec(configured: str | None = None) -> str:
    """The bus in force: the one configured (a config's [sensors] bus, a caller's choice), else $FLEETSENSE_I2C_BUS,
    else smbus:1. Never a silent fall-back to the simulator: a Pi whose bus is missing must say so."""
    return (configured or "").strip() or os.environ.get(ENV_VAR, "").strip() or DEFAULT_BUS_SPEC


def registered_backends() -> dict[str, metadata.EntryPoint]:
    """The installed backends by name (an editable install registers them too: `pip install -e .`)."""
    return {entry_point.name: entry_point for entry_point in metadata.entry_points(group=BACKEND_GROUP)}


def backend(name: str, registered: Mapping[str, metadata.EntryPoint] | None = None) -> BusFactory:
    """The factory registered as `name`, with an error that says what to do when there is none or when its
    package is not installed (the simulator on a Pi's install, smbus2 on a cloud host)."""
    backends = registered_backends() if registered is None else registered
    entry_point = backends.get(name)
    if entry_point is None:
        installed = ", ".join(sorted(backends)) or "none (is fleetsense installed? `pip install -e .` registers them)"
        raise ConfigError(
            f"unknown I2C bus backend {name!r}", hint=f"{SPEC_HINT}; backends installed here: {installed}"
        )
    try:
        factory: BusFactory = entry_point.load()
    except ImportError as exc:
        raise I2CError(
            f"the I2C bus backend {name!r} is registered ({entry_point.value}) but cannot be imported: {exc}",
            hint="its package is not installed in this environment: install it, or choose another bus "
            f"({', '.join(sorted(backends))}) in the config or in {ENV_VAR}",
        ) from exc
    return factory


def open_bus(spec: str | None = None, request: BusRequest | None = None) -> TransactionBus:
    """The bus `spec` names (default: `bus_spec()`), opened by its backend. `request` carries what a simulated
    board needs (clock, chip addresses, the vehicle or its physics); "sim" alone is a parked vehicle's board on the
    real monotonic clock."""
    name, _, argument = bus_spec(spec).lower().partition(":")
    return backend(name)(replace(request or BusRequest(), argument=argument))


def open_smbus_bus(request: BusRequest) -> SMBusBackend:
    """The "smbus" backend: smbus:<N> is /dev/i2c-<N>."""
    if not request.argument.isdigit():
        raise ConfigError(f"unknown I2C bus 'smbus:{request.argument}': no bus number", hint=SPEC_HINT)
    if importlib.util.find_spec("smbus2") is None:
        raise I2CError(
            "the smbus I2C backend needs the smbus2 package, which is not installed here",
            hint="install the edge extra: pip install 'fleetsense[edge]'",
        )
    return SMBusBackend(int(request.argument))
