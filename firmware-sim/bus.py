"""firmware-sim's I2C bus: a dict of address -> simulated chip behind the same seam as the real bus
(fleetsense.edge.sensors.bus.TransactionBus), carrying raw I2C messages, with fault injection for the error paths,
and the virtual clock that lets tests run chips and drivers in virtual time. `open_simulated_bus` is the "sim"
backend that fleetsense.edge.i2c finds through the fleetsense.i2c_buses entry point."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fleetsense.edge.sensors.bus import BusRequest, TransactionBus
from fleetsense.sim.chips import ClockNs, SimulatedChip
from fleetsense.sim.fleet import vehicle_physics
from fleetsense.sim.physics import AtRest, EnvironmentPhysics, ImuPhysics

from fleetsense.errors import ConfigError


@runtime_checkable
class VehiclePhysics(ImuPhysics, EnvironmentPhysics, Protocol):
    """What the default chip set needs: motion for the MPU-6050, air for the BMP280."""


class VirtualClock:
    """A monotonic clock that moves only when told to; `sleep` advances it, so code that waits runs instantly."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance(self, seconds: float = 0.0, *, ns: int = 0) -> int:
        self._now_ns += round(seconds * 1e9) + ns
        return self._now_ns

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


@dataclass
class Fault:
    """Make transfers to an address fail with `errno_code`: `times` transfers (None: until cleared), only those
    whose written bytes satisfy `when` (e.g. reads of one register) if given."""

    errno_code: int = errno.EIO
    times: int | None = 1
    when: Callable[[bytes], bool] | None = None


class SimulatedBus(TransactionBus):
    def __init__(self, devices: Mapping[int, SimulatedChip] | None = None, *, name: str = "sim") -> None:
        self.name = name
        self.devices: dict[int, SimulatedChip] = dict(devices or {})
        self.faults: dict[int, list[Fault]] = {}
        self.transfers = 0

    def inject_fault(self, address: int, fault: Fault | None = None) -> Fault:
        fault = fault or Fault()
        self.faults.setdefault(address, []).append(fault)
        return fault

    def clear_faults(self, address: int | None = None) -> None:
        if address is None:
            self.faults.clear()
        else:
            self.faults.pop(address, None)

    def transfer(self, address: int, write: bytes, read_length: int) -> bytes:
        self.transfers += 1
        self._raise_injected_fault(address, write)
        chip = self.devices.get(address)
        if chip is None:  # nobody pulls SDA low for the address byte: Linux reports EREMOTEIO
            raise OSError(errno.EREMOTEIO, f"{self.name} address 0x{address:02x}: no acknowledge (Remote I/O error)")
        chip.i2c_write(write)
        return chip.i2c_read(read_length) if read_length else b""

    def _raise_injected_fault(self, address: int, write: bytes) -> None:
        for fault in self.faults.get(address, []):
            if fault.when is not None and not fault.when(write):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults[address].remove(fault)
            code = fault.errno_code
            raise OSError(code, f"{self.name} address 0x{address:02x}: {os.strerror(code)} (injected)")


def simulated_bus(
    physics: VehiclePhysics | None = None,
    clock_ns: ClockNs | None = None,
    *,
    imu_address: int | None = 0x68,
    baro_address: int | None = 0x76,
) -> SimulatedBus:
    """The fleetsense board in simulation: an MPU-6050 and a BMP280 on one bus, sampling `physics`
    (a parked, level vehicle by default) on `clock_ns` (the real monotonic clock by default)."""
    from fleetsense.sim.chips.bmp280 import SimulatedBmp280
    from fleetsense.sim.chips.mpu6050 import SimulatedMpu6050

    physics = physics if physics is not None else AtRest()
    clock = clock_ns if clock_ns is not None else time.monotonic_ns
    devices: dict[int, SimulatedChip] = {}
    if imu_address is not None:
        devices[imu_address] = SimulatedMpu6050(physics, clock)
    if baro_address is not None:
        devices[baro_address] = SimulatedBmp280(physics, clock)
    return SimulatedBus(devices)


def open_simulated_bus(request: BusRequest) -> SimulatedBus:
    """The "sim" backend: the board's chips on `request.clock_ns`, sampling `request.physics` if given, else the
    drive of `request.vehicle_id` (starting now on that clock), else a parked vehicle."""
    if request.argument:
        raise ConfigError(
            f"unknown I2C bus 'sim:{request.argument}'", hint="the simulated bus takes no argument: write sim"
        )
    physics = request.physics
    if physics is None and request.vehicle_id is not None:
        physics = vehicle_physics(request.vehicle_id, start_ns=request.clock_ns())
    if physics is not None and not isinstance(physics, VehiclePhysics):
        raise TypeError(f"the simulated bus needs physics with imu_at and environment_at, got {type(physics).__name__}")
    return simulated_bus(physics, request.clock_ns, imu_address=request.imu_address, baro_address=request.baro_address)
