"""Open the vehicle unit's sensors on the bus a spec names: "smbus:1" is the real /dev/i2c-1, "sim" is
firmware-sim's register-level chips sampling the given physics. Either way the same drivers run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fleetsense.edge.i2c import I2CError, TransactionBus, default_bus_spec, open_bus, parse_bus_spec
from fleetsense.edge.sensors.bmp280 import Bmp280Config, Bmp280Source
from fleetsense.edge.sensors.mpu6050 import Mpu6050Config, Mpu6050Source
from fleetsense.edge.sources import EnvironmentSource, Sensors

if TYPE_CHECKING:
    from fleetsense.sim.bus import VehiclePhysics


def open_sensors(
    bus_spec: str | None = None,
    *,
    imu_address: int = 0x68,
    baro_address: int | None = 0x76,
    imu_rate_hz: int = 100,
    imu_polled: bool = False,
    physics: VehiclePhysics | None = None,
    clock_ns: Callable[[], int] | None = None,
    sleep_s: Callable[[float], None] | None = None,
) -> Sensors:
    """Probe the MPU-6050 (and the BMP280 unless `baro_address` is None) and return them unstarted: the agent
    calls start(now_ns). A missing bus or device raises a FleetsenseError that says what to check.

    `bus_spec` defaults to FLEETSENSE_I2C_BUS, else "smbus:1". `physics`, `clock_ns` and `sleep_s` drive the
    simulated chips (a parked vehicle on the real monotonic clock by default); give a virtual clock's `sleep`
    with its `clock_ns`, or the drivers' waits will not move it.
    """
    spec = parse_bus_spec(bus_spec if bus_spec is not None else default_bus_spec())
    clock = clock_ns if clock_ns is not None else time.monotonic_ns
    sleep = sleep_s if sleep_s is not None else time.sleep
    bus: TransactionBus
    if spec.kind == "sim":
        from fleetsense.sim.bus import simulated_bus

        bus = simulated_bus(physics, clock, imu_address=imu_address, baro_address=baro_address)
    else:
        bus = open_bus(str(spec))
    try:
        imu = Mpu6050Source(
            bus, Mpu6050Config(address=imu_address, rate_hz=imu_rate_hz, polled=imu_polled), clock_ns=clock,
            sleep_s=sleep,
        )  # fmt: skip
        imu.probe()
        environment: EnvironmentSource | None = None
        if baro_address is not None:
            baro = Bmp280Source(bus, Bmp280Config(address=baro_address), sleep_s=sleep)
            baro.probe()
            environment = baro
    except I2CError:
        bus.close()
        raise
    return Sensors(imu=imu, environment=environment, closers=[bus])
