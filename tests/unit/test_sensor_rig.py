"""The rig the driver tests run on, by backend (like gpiozero's pin factories): "sim" is firmware-sim's
register-level chips in virtual time and always runs; with FLEETSENSE_I2C_BUS=smbus:<N> the same tests also run
against the real chips on that bus (hardware-in-the-loop, hardware/hil/README.md), otherwise that
parametrisation is skipped with the reason. FLEETSENSE_I2C_BUS=sim rehearses the hardware run without a Pi: the
simulated board on the real clock, checked with the hardware assertions. Plus the tests of the rig's own pieces."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import adafruit_mpu6050
import pytest
from fleetsense.edge.i2c import ENV_VAR, open_bus
from fleetsense.edge.sensors.bmp280 import Bmp280Config, Bmp280Source
from fleetsense.edge.sensors.bus import I2CBus
from fleetsense.edge.sensors.mpu6050 import Mpu6050Config, Mpu6050Source
from fleetsense.sim.bus import SimulatedBus, VirtualClock
from fleetsense.sim.chips.bmp280 import SimulatedBmp280
from fleetsense.sim.chips.mpu6050 import SimulatedMpu6050
from fleetsense.sim.physics import AtRest, Environment, ImuReading

from fleetsense.quantities import STANDARD_GRAVITY_M_S2

HIL_PREFIX = "hil:"  # backend "hil:<spec>": the bus FLEETSENSE_I2C_BUS names, on the real clock


def _hardware_backend() -> Any:
    spec = os.environ.get(ENV_VAR, "")
    if spec.startswith("smbus:") or spec == "sim":
        return pytest.param(HIL_PREFIX + spec, id="hil-" + spec.replace(":", ""))
    reason = f"hardware-in-the-loop: set {ENV_VAR}=smbus:1 on a Pi wired as in hardware/README.md"
    return pytest.param(HIL_PREFIX + "smbus:1", id="hil", marks=pytest.mark.skip(reason=reason))


BACKENDS = [pytest.param("sim", id="sim"), _hardware_backend()]


@dataclass(frozen=True)
class Swaying:
    """A van rocking on its springs: every channel changes from sample to sample, so a sample matched to the
    wrong time fails the comparison."""

    def imu_at(self, t_s: float) -> ImuReading:
        s, c = math.sin(2 * math.pi * 1.3 * t_s), math.cos(2 * math.pi * 0.7 * t_s)
        return ImuReading((2.0 * s, -1.0 + 0.5 * c, STANDARD_GRAVITY_M_S2 + 1.5 * s), (0.3 * s, -0.2 * c, 0.1 * s))

    def environment_at(self, t_s: float) -> Environment:
        return Environment(101_325.0 - 50.0 * math.sin(0.1 * t_s), 21.0 + 0.01 * t_s)


@dataclass
class Rig:
    spec: str
    bus: I2CBus
    clock_ns: Callable[[], int]
    sleep_s: Callable[[float], None]
    physics: Any = field(default_factory=AtRest)
    sim_bus: SimulatedBus | None = None  # None on real hardware

    @property
    def simulated(self) -> bool:
        return self.sim_bus is not None

    def advance(self, seconds: float) -> int:
        """Let `seconds` pass (virtually on the sim, really on hardware) and return the clock."""
        self.sleep_s(seconds)
        return self.clock_ns()

    def imu(self, **config: Any) -> Mpu6050Source:
        return Mpu6050Source(self.bus, Mpu6050Config(**config), clock_ns=self.clock_ns, sleep_s=self.sleep_s)

    def environment(self, **config: Any) -> Bmp280Source:
        return Bmp280Source(self.bus, Bmp280Config(**config), sleep_s=self.sleep_s)

    @property
    def mpu_chip(self) -> SimulatedMpu6050:
        assert self.sim_bus is not None
        chip = self.sim_bus.devices[0x68]
        assert isinstance(chip, SimulatedMpu6050)
        return chip

    @property
    def bmp_chip(self) -> SimulatedBmp280:
        assert self.sim_bus is not None
        chip = self.sim_bus.devices[0x76]
        assert isinstance(chip, SimulatedBmp280)
        return chip


@contextmanager
def open_rig(
    spec: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    physics: Any = None,
    mpu: dict[str, Any] | None = None,
    bmp: dict[str, Any] | None = None,
) -> Iterator[Rig]:
    """A rig on `spec`: "sim" or "hil:<bus spec>". On "sim": an MPU-6050 at 0x68 (built with the `mpu` keyword
    arguments) and a BMP280 at 0x76, `physics` (AtRest by default, as a bench unit is) and a virtual clock that
    Adafruit's set-up sleeps advance too (so they cost no real time, and the drivers must cope with time passing
    during set-up). On "hil:...": that bus, the monotonic clock and real sleeps."""
    if spec.startswith(HIL_PREFIX):
        bus = open_bus(spec.removeprefix(HIL_PREFIX))
        try:
            yield Rig(spec, bus, time.monotonic_ns, time.sleep)
        finally:
            bus.close()
        return
    clock = VirtualClock()
    monkeypatch.setattr(adafruit_mpu6050, "sleep", clock.sleep)
    physics = physics if physics is not None else AtRest()
    sim_bus = SimulatedBus(
        {
            0x68: SimulatedMpu6050(physics, clock.now_ns, **(mpu or {})),
            0x76: SimulatedBmp280(physics, clock.now_ns, **(bmp or {})),
        }
    )
    yield Rig(spec, sim_bus, clock.now_ns, clock.sleep, physics, sim_bus)


def within_half_count(count: int, scale: float, expected_si: float) -> bool:
    """A count is right when it is the nearest count to the physics (saturation aside)."""
    return abs(count * scale - expected_si) <= scale / 2 + 1e-9


# The rig's own pieces.


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(start_ns=5)
    assert clock.now_ns() == 5
    clock.sleep(0.25)
    assert clock.advance(ns=3) == 5 + 250_000_000 + 3


def test_hardware_backend_is_skipped_with_a_reason_unless_a_real_bus_is_named() -> None:
    hardware = BACKENDS[1]
    if os.environ.get(ENV_VAR, "").startswith("smbus:") or os.environ.get(ENV_VAR) == "sim":
        assert not hardware.marks
    else:
        (mark,) = hardware.marks
        assert mark.name == "skip" and ENV_VAR in mark.kwargs["reason"]


def test_swaying_physics_changes_between_samples() -> None:
    a, b = Swaying().imu_at(1.00), Swaying().imu_at(1.01)
    assert all(x != y for x, y in zip(a.specific_force_m_s2, b.specific_force_m_s2, strict=True))
