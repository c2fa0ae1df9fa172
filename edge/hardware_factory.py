"""Open the vehicle unit's sensors on the bus a spec names (edge/i2c.py chooses the backend): "smbus:1" is the real
/dev/i2c-1, "sim" is firmware-sim's register-level chips. Either way the same drivers run."""

from __future__ import annotations

import time
from collections.abc import Callable

from fleetsense.edge.i2c import open_bus
from fleetsense.edge.sensors.bmp280 import Bmp280Config, Bmp280Source
from fleetsense.edge.sensors.bus import BusRequest, I2CError
from fleetsense.edge.sensors.mpu6050 import Mpu6050Config, Mpu6050Source
from fleetsense.edge.sources import EnvironmentSource, Sensors


def open_sensors(
    bus_spec: str | None = None,
    *,
    imu_address: int = 0x68,
    baro_address: int | None = 0x76,
    imu_rate_hz: int = 100,
    imu_polled: bool = False,
    vehicle_id: str | None = None,
    physics: object | None = None,
    clock_ns: Callable[[], int] | None = None,
    sleep_s: Callable[[float], None] | None = None,
) -> Sensors:
    """Probe the MPU-6050 (and the BMP280 unless `baro_address` is None) and return them unstarted: the agent
    calls start(now_ns). A missing bus or device raises a FleetsenseError that says what to check.

    `bus_spec` defaults to FLEETSENSE_I2C_BUS, else "smbus:1". `vehicle_id` or `physics` (the simulator's model,
    passed through untouched), `clock_ns` and `sleep_s` drive simulated chips (a parked vehicle on the real
    monotonic clock by default); give a virtual clock's `sleep` with its `clock_ns`, or the drivers' waits will
    not move it.
    """
    clock = clock_ns if clock_ns is not None else time.monotonic_ns
    sleep = sleep_s if sleep_s is not None else time.sleep
    request = BusRequest(clock_ns=clock, imu_address=imu_address, baro_address=baro_address, vehicle_id=vehicle_id,
                         physics=physics)  # fmt: skip
    bus = open_bus(bus_spec, request)
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
