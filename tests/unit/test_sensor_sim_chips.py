"""Contract tests at the register level: the simulated MPU-6050 and BMP280 behave as their data sheets say, byte
for byte, through raw I2C transactions on the simulated bus (no driver involved)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import pytest
from fleetsense.edge.sensors import bmp280_registers as bmp
from fleetsense.edge.sensors import mpu6050_registers as mpu
from fleetsense.edge.sensors.bmp280_math import DATASHEET_EXAMPLE
from fleetsense.sim.bus import SimulatedBus, VirtualClock
from fleetsense.sim.chips.bmp280 import SimulatedBmp280
from fleetsense.sim.chips.mpu6050 import SimulatedMpu6050
from fleetsense.sim.physics import AtRest, Environment, ImuReading

IMU, BARO = 0x68, 0x76


@dataclass
class Settable:
    """Physics a test changes as it goes."""

    force_m_s2: tuple[float, float, float] = (0.0, 0.0, 9.80665)
    pressure_pa: float = 101_325.0

    def imu_at(self, t_s: float) -> ImuReading:
        return ImuReading(self.force_m_s2, (0.0, 0.0, 0.0))

    def environment_at(self, t_s: float) -> Environment:
        return Environment(self.pressure_pa, 21.0)


def imu_bus(physics: Any = None, **chip: Any) -> tuple[SimulatedBus, VirtualClock, SimulatedMpu6050]:
    clock = VirtualClock()
    device = SimulatedMpu6050(physics or AtRest(), clock.now_ns, **chip)
    return SimulatedBus({IMU: device}), clock, device


def wake(bus: SimulatedBus) -> None:
    bus.write_byte_data(IMU, mpu.PWR_MGMT_1, mpu.CLKSEL.value(mpu.CLKSEL_PLL_X_GYRO))


def fifo_on(bus: SimulatedBus, sources: int = mpu.ACCEL_GYRO_FIFO) -> None:
    bus.write_byte_data(IMU, mpu.FIFO_EN, sources)
    bus.write_byte_data(IMU, mpu.USER_CTRL, mpu.USER_FIFO_EN.value())


def fifo_count(bus: SimulatedBus) -> int:
    return int.from_bytes(bus.read_i2c_block_data(IMU, mpu.FIFO_COUNT_H, 2), "big")


# MPU-6050.


def test_mpu_powers_on_asleep_and_takes_no_samples() -> None:
    bus, clock, _ = imu_bus()
    assert bus.read_byte_data(IMU, mpu.PWR_MGMT_1) == 0x40 and bus.read_byte_data(IMU, mpu.WHO_AM_I) == 0x68
    clock.advance(1.0)
    assert bus.read_i2c_block_data(IMU, mpu.ACCEL_XOUT_H, 14) == bytes(14)
    wake(bus)
    clock.advance(0.001)
    assert struct.unpack(">3h", bus.read_i2c_block_data(IMU, mpu.ACCEL_XOUT_H, 6)) == (0, 0, 16384)


def test_mpu_device_reset_restores_the_reset_values() -> None:
    bus, _, _ = imu_bus()
    wake(bus)
    bus.write_i2c_block_data(IMU, mpu.SMPLRT_DIV, bytes([9, 3, 0x18, 0x08]))  # burst write auto-increments
    assert bus.read_i2c_block_data(IMU, mpu.SMPLRT_DIV, 4) == bytes([9, 3, 0x18, 0x08])
    bus.write_byte_data(IMU, mpu.PWR_MGMT_1, mpu.DEVICE_RESET.value())
    assert bus.read_i2c_block_data(IMU, mpu.SMPLRT_DIV, 4) == bytes(4)
    assert bus.read_byte_data(IMU, mpu.PWR_MGMT_1) == 0x40  # DEVICE_RESET cleared itself; asleep again


@pytest.mark.parametrize(
    ("dlpf_cfg", "smplrt_div", "samples_per_10_ms"), [(0, 0, 80), (3, 0, 10), (3, 9, 1), (7, 1, 40)]
)
def test_mpu_output_rate_follows_dlpf_and_divider(dlpf_cfg: int, smplrt_div: int, samples_per_10_ms: int) -> None:
    bus, clock, device = imu_bus()
    bus.write_i2c_block_data(IMU, mpu.SMPLRT_DIV, bytes([smplrt_div, dlpf_cfg]))
    wake(bus)
    clock.advance(0.010)
    bus.read_byte_data(IMU, mpu.WHO_AM_I)
    assert device.samples_taken == samples_per_10_ms


def test_mpu_data_is_big_endian_twos_complement_and_saturates() -> None:
    physics = Settable(force_m_s2=(-9.80665, 100.0, -100.0))
    bus, clock, _ = imu_bus(physics)
    wake(bus)
    clock.advance(0.001)
    raw = bus.read_i2c_block_data(IMU, mpu.ACCEL_XOUT_H, 6)
    assert raw[:2] == bytes([0xC0, 0x00])  # -1 g at ±2 g = -16384
    assert struct.unpack(">3h", raw) == (-16384, 32767, -32768)
    bus.write_byte_data(IMU, mpu.ACCEL_CONFIG, mpu.AFS_SEL.value(3))  # ±16 g: 100 m/s² fits
    clock.advance(0.001)
    assert struct.unpack(">3h", bus.read_i2c_block_data(IMU, mpu.ACCEL_XOUT_H, 6))[1] == round(100 / (9.80665 / 2048))


def test_mpu_fifo_fills_in_register_order_and_pops_without_auto_increment() -> None:
    bus, clock, _ = imu_bus()
    wake(bus)
    fifo_on(bus)
    clock.advance(0.0025)  # DLPF_CFG 0, SMPLRT_DIV 0: 8 kHz
    assert fifo_count(bus) == 20 * mpu.SAMPLE_BYTES
    burst = bus.read_i2c_block_data(IMU, mpu.FIFO_R_W, 2 * mpu.SAMPLE_BYTES)  # FIFO_R_W keeps the pointer
    assert struct.unpack(">12h", burst) == (0, 0, 16384, 0, 0, 0) * 2
    assert fifo_count(bus) == 18 * mpu.SAMPLE_BYTES


def test_mpu_empty_fifo_repeats_the_last_byte() -> None:
    bus, _, _ = imu_bus()
    bus.write_byte_data(IMU, mpu.FIFO_R_W, 0x5A)  # the FIFO can be written too (RM 4.31)
    assert bus.read_i2c_block_data(IMU, mpu.FIFO_R_W, 3) == bytes([0x5A, 0x5A, 0x5A])


def test_mpu_fifo_en_selects_what_enters_the_fifo() -> None:
    bus, clock, _ = imu_bus()
    wake(bus)
    bus.write_i2c_block_data(IMU, mpu.SMPLRT_DIV, bytes([9, 3]))  # 100 Hz
    fifo_on(bus, mpu.TEMP_FIFO_EN.value() | mpu.ZG_FIFO_EN.value())
    clock.advance(0.05)
    assert fifo_count(bus) == 5 * 4
    temperature, gyro_z = struct.unpack(">2h", bus.read_i2c_block_data(IMU, mpu.FIFO_R_W, 4))
    assert mpu.temperature_c(temperature) == pytest.approx(30.0, abs=0.003) and gyro_z == 0


def test_mpu_overflow_drops_the_oldest_bytes_and_latches_int_status_until_read() -> None:
    bus, clock, device = imu_bus()
    wake(bus)
    bus.write_i2c_block_data(IMU, mpu.SMPLRT_DIV, bytes([9, 3]))
    bus.write_byte_data(IMU, mpu.INT_ENABLE, mpu.FIFO_OFLOW_EN.value())
    fifo_on(bus)
    clock.advance(0.90)  # 90 samples = 1080 bytes
    assert fifo_count(bus) == 1024 and device.fifo_bytes_dropped == 56
    one_sample = struct.pack(">6h", 0, 0, 16384, 0, 0, 0)
    assert bytes(device.fifo) == (one_sample * 90)[-1024:]  # the newest bytes, starting mid-sample (56 % 12 = 8)
    assert mpu.FIFO_OFLOW_INT.get(bus.read_byte_data(IMU, mpu.INT_STATUS))
    assert bus.read_byte_data(IMU, mpu.INT_STATUS) == 0  # read-to-clear


def test_mpu_fifo_reset_only_acts_while_the_fifo_is_disabled() -> None:
    bus, clock, _ = imu_bus()
    wake(bus)
    fifo_on(bus)
    clock.advance(0.001)
    bus.write_byte_data(IMU, mpu.USER_CTRL, mpu.USER_FIFO_EN.value() | mpu.FIFO_RESET.value())
    assert fifo_count(bus) > 0  # ignored (RM 4.27)
    bus.write_byte_data(IMU, mpu.USER_CTRL, mpu.FIFO_RESET.value())
    assert fifo_count(bus) == 0 and bus.read_byte_data(IMU, mpu.USER_CTRL) == 0  # and FIFO_RESET self-cleared


def test_mpu_noise_and_bias_hooks() -> None:
    bus, clock, _ = imu_bus(accel_bias_m_s2=(0.5, 0.0, 0.0), gyro_noise_rad_s=0.01, seed=7)
    wake(bus)
    clock.advance(0.001)
    ax, _, _, _, gx, gy, gz = struct.unpack(">7h", bus.read_i2c_block_data(IMU, mpu.ACCEL_XOUT_H, 14))
    assert ax == round(0.5 / (9.80665 / 16384)) and (gx, gy, gz) != (0, 0, 0)


# BMP280.


def baro_bus(physics: Any = None) -> tuple[SimulatedBus, VirtualClock, SimulatedBmp280]:
    clock = VirtualClock()
    device = SimulatedBmp280(physics or AtRest(), clock.now_ns)
    return SimulatedBus({BARO: device}), clock, device


def test_bmp_powers_on_loading_nvm_then_shows_its_id_and_calibration() -> None:
    bus, clock, _ = baro_bus()
    assert bus.read_byte_data(BARO, bmp.CHIP_ID) == 0x58
    assert bmp.IM_UPDATE.get(bus.read_byte_data(BARO, bmp.STATUS))
    assert bus.read_i2c_block_data(BARO, bmp.CALIBRATION_START, 24) == bytes(24)
    clock.advance(0.002)
    assert bus.read_byte_data(BARO, bmp.STATUS) == 0
    assert bus.read_i2c_block_data(BARO, bmp.CALIBRATION_START, 24) == DATASHEET_EXAMPLE.to_nvm()
    assert bus.read_i2c_block_data(BARO, bmp.PRESS_MSB, 6) == bytes([0x80, 0, 0]) * 2


def test_bmp_multi_byte_writes_are_register_value_pairs() -> None:
    bus, _, _ = baro_bus()
    bus.write(BARO, bytes([bmp.CONFIG, 0x10, bmp.CTRL_MEAS, 0x54]))
    assert bus.read_i2c_block_data(BARO, bmp.CTRL_MEAS, 2) == bytes([0x54, 0x10])
    bus.write_i2c_block_data(BARO, bmp.CTRL_MEAS, bytes([0x00, 0x1C]))  # an auto-increment write: not supported
    assert bus.read_i2c_block_data(BARO, bmp.CTRL_MEAS, 2) == bytes([0x00, 0x10])


def test_bmp_normal_mode_timing_follows_the_datasheet() -> None:
    bus, clock, device = baro_bus()
    clock.advance(0.002)
    bus.write_byte_data(BARO, bmp.CTRL_MEAS, Bmp280Ctrl.ULTRA_HIGH_NORMAL)
    clock.advance(0.037)
    assert bmp.MEASURING.get(bus.read_byte_data(BARO, bmp.STATUS)) and device.measurements == 0
    clock.advance(0.0005)
    assert not bmp.MEASURING.get(bus.read_byte_data(BARO, bmp.STATUS)) and device.measurements == 1
    clock.advance(1.0 - 0.0375)
    bus.read_byte_data(BARO, bmp.STATUS)
    assert device.measurements == 26  # 37.5 ms + 0.5 ms standby: 26.3 Hz, as the data sheet's ODR table says


def test_bmp_forced_mode_converts_once_and_sleeps() -> None:
    bus, clock, device = baro_bus()
    bus.write_byte_data(BARO, bmp.CTRL_MEAS, Bmp280Ctrl.ULTRA_HIGH_NORMAL & ~0b11 | bmp.MODE_FORCED)
    clock.advance(0.5)
    assert bmp.MODE.get(bus.read_byte_data(BARO, bmp.CTRL_MEAS)) == bmp.MODE_SLEEP and device.measurements == 1


def test_bmp_ignores_config_writes_in_normal_mode_and_resets_only_on_b6() -> None:
    bus, _, _ = baro_bus()
    bus.write_byte_data(BARO, bmp.CTRL_MEAS, Bmp280Ctrl.ULTRA_HIGH_NORMAL)
    bus.write_byte_data(BARO, bmp.CONFIG, 0x10)
    assert bus.read_byte_data(BARO, bmp.CONFIG) == 0
    bus.write_byte_data(BARO, bmp.RESET, 0xB5)
    assert bus.read_byte_data(BARO, bmp.CTRL_MEAS) == Bmp280Ctrl.ULTRA_HIGH_NORMAL
    bus.write_byte_data(BARO, bmp.RESET, bmp.RESET_COMMAND)
    assert bus.read_byte_data(BARO, bmp.CTRL_MEAS) == 0


def test_bmp_resolution_follows_oversampling_and_skipped_reads_0x80000() -> None:
    bus, clock, _ = baro_bus()
    bus.write_byte_data(BARO, bmp.CTRL_MEAS, bmp.OSRS_P.value(1) | bmp.MODE.value(bmp.MODE_NORMAL))  # x1, T skipped
    clock.advance(0.1)
    press, temp = bus.read_i2c_block_data(BARO, bmp.PRESS_MSB, 3), bus.read_i2c_block_data(BARO, 0xFA, 3)
    assert press[2] == 0 and press != bytes([0x80, 0, 0])  # 16 bits: xlsb empty
    assert temp == bytes([0x80, 0, 0])


def test_bmp_iir_filter_moves_a_sixteenth_of_a_step_per_conversion() -> None:
    from fleetsense.edge.sensors.bmp280 import Bmp280Source

    physics = Settable()
    bus, clock, _ = baro_bus(physics)
    baro = Bmp280Source(bus, sleep_s=clock.sleep)
    baro.start(clock.now_ns())
    clock.advance(1.0)
    before = baro.read(clock.now_ns())
    physics.pressure_pa += 160.0
    clock.advance(0.038)  # exactly one more conversion
    after = baro.read(clock.now_ns())
    assert before is not None and after is not None
    assert after.pressure_pa - before.pressure_pa == pytest.approx(10.0, abs=0.3)


class Bmp280Ctrl:
    ULTRA_HIGH_NORMAL = bmp.OSRS_T.value(2) | bmp.OSRS_P.value(5) | bmp.MODE.value(bmp.MODE_NORMAL)
