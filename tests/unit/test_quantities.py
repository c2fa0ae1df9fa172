"""The physical constants, sensor ranges and measurements are declared once (fleetsense.quantities) and the edge's
register map, the simulator and the cloud's validator read them from there."""

from __future__ import annotations

import math

import pytest
from fleetsense.cloud import validate
from fleetsense.edge.sensors import mpu6050_registers as mpu

from fleetsense import quantities, wire


def test_every_wire_channel_is_a_declared_measurement_whose_key_ends_in_its_unit() -> None:
    names = {name for channels in wire.CHANNEL_NAMES.values() for name in channels}
    assert names == set(quantities.BY_KEY)
    suffix = {"m/s^2": "_m_s2", "rad/s": "_rad_s", "Pa": "_pa", "degC": "_c"}
    for measurement in quantities.MEASUREMENTS:
        assert measurement.key.endswith(suffix[measurement.unit]), measurement.key


def test_the_mpu6050_register_map_scales_the_declared_ranges() -> None:
    assert mpu.ACCEL_RANGES_G is quantities.MPU6050_ACCEL_RANGES_G
    assert mpu.GYRO_RANGES_DPS is quantities.MPU6050_GYRO_RANGES_DPS
    # Full scale is 32768 counts (PS 6.1, 6.2): the LSB table and the ranges agree.
    for afs_sel, range_g in enumerate(quantities.MPU6050_ACCEL_RANGES_G):
        assert mpu.accel_m_s2_per_count(afs_sel) * 32768 == pytest.approx(range_g * quantities.STANDARD_GRAVITY_M_S2)
    for fs_sel, range_dps in enumerate(quantities.MPU6050_GYRO_RANGES_DPS):
        assert mpu.gyro_rad_s_per_count(fs_sel) * 32768 == pytest.approx(math.radians(range_dps), rel=2e-3)


def test_the_validator_refuses_just_beyond_the_widest_range_plus_margin_and_takes_full_scale() -> None:
    low, high = validate.CHANNEL_BOUNDS[wire.Kind.IMU][0]
    full_scale_m_s2 = 16 * 9.80665
    assert (low, high) == (-full_scale_m_s2 * 1.1, full_scale_m_s2 * 1.1)  # the numbers it always had
    assert validate.CHANNEL_BOUNDS[wire.Kind.IMU][5] == (-math.radians(2000) * 1.1, math.radians(2000) * 1.1)
    assert validate.CHANNEL_BOUNDS[wire.Kind.BARO] == [(30_000.0, 110_000.0), (-40.0, 85.0)]
    assert validate.CHANNEL_BOUNDS[wire.Kind.ACCEL] == validate.CHANNEL_BOUNDS[wire.Kind.IMU][:3]
