"""Physical constants, the sensors' ranges and the measurements on the wire with their units, declared once (floor:
imported by edge's register maps, the simulator's physics, the cloud's validator and analytics, and the benches).

The cloud must not import edge, yet its validator has to know what the chips can measure; so the chips' ranges live
here and edge's register maps (edge/sensors/*_registers.py) pair them with their register encodings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# 1 g, by definition (CGPM 1901). What the MPU-6050's LSB/g figures scale by, as Adafruit's driver does too.
STANDARD_GRAVITY_M_S2 = 9.80665

# MPU-6050 full-scale ranges, indexed by the AFS_SEL / FS_SEL register fields (PS-MPU-6000A-00 6.1, 6.2).
MPU6050_ACCEL_RANGES_G = (2, 4, 8, 16)
MPU6050_GYRO_RANGES_DPS = (250, 500, 1000, 2000)
# BMP280's operating ranges (BST-BMP280-DS001 1.): 300-1100 hPa, -40..85 C.
BMP280_PRESSURE_RANGE_PA = (30_000.0, 110_000.0)
BMP280_TEMPERATURE_RANGE_C = (-40.0, 85.0)

# A value beyond a chip's widest full-scale range by more than this fraction cannot come from the chip (the margin
# covers the calibration offsets a device may apply to counts at full scale).
RANGE_MARGIN = 0.1
MAX_ACCEL_M_S2 = max(MPU6050_ACCEL_RANGES_G) * STANDARD_GRAVITY_M_S2 * (1 + RANGE_MARGIN)
MAX_GYRO_RAD_S = math.radians(max(MPU6050_GYRO_RANGES_DPS)) * (1 + RANGE_MARGIN)


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One channel of the wire format (fleetsense.wire.CHANNEL_NAMES names it by `key`), in SI units."""

    key: str  # as wire.CHANNEL_NAMES spells it: the quantity, then its unit
    unit: str
    sensor: str
    possible: tuple[float, float]  # what the sensor can report at all; beyond it a value is impossible
    description: str


def _three_axes(prefix: str, unit_key: str, unit: str, limit: float, what: str) -> tuple[Measurement, ...]:
    return tuple(
        Measurement(
            key=f"{prefix}{axis}_{unit_key}",
            unit=unit,
            sensor="MPU-6050",
            possible=(-limit, limit),
            description=what.format(axis=axis),
        )
        for axis in "xyz"
    )


MEASUREMENTS: tuple[Measurement, ...] = (
    *_three_axes(
        "a", "m_s2", "m/s^2", MAX_ACCEL_M_S2, "specific force along the sensor's {axis} axis (+1 g up at rest)"
    ),
    *_three_axes("g", "rad_s", "rad/s", MAX_GYRO_RAD_S, "angular rate about the sensor's {axis} axis"),
    Measurement(
        key="pressure_pa",
        unit="Pa",
        sensor="BMP280",
        possible=BMP280_PRESSURE_RANGE_PA,
        description="air pressure (altitude changes are derived from it)",
    ),
    Measurement(
        key="temperature_c",
        unit="degC",
        sensor="BMP280",
        possible=BMP280_TEMPERATURE_RANGE_C,
        description="cabin air temperature",
    ),
)

BY_KEY: dict[str, Measurement] = {measurement.key: measurement for measurement in MEASUREMENTS}
