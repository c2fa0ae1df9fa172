"""The MPU-6050's registers and the chip facts derived from them, as data: the one map that both the driver
(edge/sensors/mpu6050.py) and the simulated chip (firmware-sim/chips/mpu6050.py) import, so they cannot drift.

References: "MPU-6000 and MPU-6050 Register Map and Descriptions", RM-MPU-6000A-00 rev 4.2 (RM x.y below), and
the product specification PS-MPU-6000A-00 rev 3.4 (PS x.y).
"""

from __future__ import annotations

import math

from fleetsense.edge.sensors import BitField

from fleetsense.quantities import MPU6050_ACCEL_RANGES_G, MPU6050_GYRO_RANGES_DPS, STANDARD_GRAVITY_M_S2

ADDRESSES = (0x68, 0x69)  # AD0 low / high (RM 4.32, PS 9)

# Register addresses.
SMPLRT_DIV = 0x19  # RM 4.2: sample rate = gyroscope output rate / (1 + SMPLRT_DIV)
CONFIG = 0x1A  # RM 4.3: EXT_SYNC_SET, DLPF_CFG
GYRO_CONFIG = 0x1B  # RM 4.4
ACCEL_CONFIG = 0x1C  # RM 4.5
FIFO_EN = 0x23  # RM 4.6: which sensor outputs are written to the FIFO
INT_PIN_CFG = 0x37  # RM 4.14
INT_ENABLE = 0x38  # RM 4.15
INT_STATUS = 0x3A  # RM 4.16: read-to-clear
ACCEL_XOUT_H = 0x3B  # RM 4.17: ACCEL_XOUT_H..ACCEL_ZOUT_L, big-endian int16
TEMP_OUT_H = 0x41  # RM 4.18
GYRO_XOUT_H = 0x43  # RM 4.19: GYRO_XOUT_H..GYRO_ZOUT_L, big-endian int16
SIGNAL_PATH_RESET = 0x68  # RM 4.26
USER_CTRL = 0x6A  # RM 4.27
PWR_MGMT_1 = 0x6B  # RM 4.28
PWR_MGMT_2 = 0x6C  # RM 4.29
FIFO_COUNT_H = 0x72  # RM 4.30: FIFO_COUNT_H, FIFO_COUNT_L, big-endian byte count
FIFO_R_W = 0x74  # RM 4.31: reading pops one byte; burst reads do not advance the register pointer
WHO_AM_I = 0x75  # RM 4.32: bits 6:1 are 0x34, so it reads 0x68 whatever AD0 is

WHO_AM_I_VALUE = 0x68
KNOWN_IDS = {0x70: "MPU-6500", 0x71: "MPU-9250", 0x73: "MPU-9255", 0x98: "MPU-6886"}  # look-alikes on breakouts

# Bit fields.
DLPF_CFG = BitField(CONFIG, 0, 3)
FS_SEL = BitField(GYRO_CONFIG, 3, 2)
AFS_SEL = BitField(ACCEL_CONFIG, 3, 2)
TEMP_FIFO_EN = BitField(FIFO_EN, 7)
XG_FIFO_EN = BitField(FIFO_EN, 6)
YG_FIFO_EN = BitField(FIFO_EN, 5)
ZG_FIFO_EN = BitField(FIFO_EN, 4)
ACCEL_FIFO_EN = BitField(FIFO_EN, 3)
FIFO_OFLOW_EN = BitField(INT_ENABLE, 4)
DATA_RDY_EN = BitField(INT_ENABLE, 0)
FIFO_OFLOW_INT = BitField(INT_STATUS, 4)
DATA_RDY_INT = BitField(INT_STATUS, 0)
USER_FIFO_EN = BitField(USER_CTRL, 6)  # "FIFO_EN" in RM 4.27; named apart from the FIFO_EN register
FIFO_RESET = BitField(USER_CTRL, 2)  # self-clearing; resets the FIFO only while USER_CTRL.FIFO_EN is 0
SIG_COND_RESET = BitField(USER_CTRL, 0)  # self-clearing; clears the sensor data registers
DEVICE_RESET = BitField(PWR_MGMT_1, 7)  # self-clearing; all registers to their reset values
SLEEP = BitField(PWR_MGMT_1, 6)
CYCLE = BitField(PWR_MGMT_1, 5)
CLKSEL = BitField(PWR_MGMT_1, 0, 3)

CLKSEL_PLL_X_GYRO = 1  # RM 4.28: the data sheet recommends a gyro PLL over the internal 8 MHz oscillator
CLKSEL_STOPPED = 7

# Registers whose reset value is not 0x00 (RM 3).
RESET_VALUES = {PWR_MGMT_1: SLEEP.value(), WHO_AM_I: WHO_AM_I_VALUE}

FIFO_SIZE_BYTES = 1024  # PS 7 (FIFO), RM 4.30
ACCEL_GYRO_FIFO = ACCEL_FIFO_EN.value() | XG_FIFO_EN.value() | YG_FIFO_EN.value() | ZG_FIFO_EN.value()
SAMPLE_BYTES = 12  # accel x,y,z then gyro x,y,z: FIFO order follows register order (RM 4.31)

# The ranges themselves are declared in fleetsense.quantities, which the cloud's validator reads too.
ACCEL_LSB_PER_G = (16384, 8192, 4096, 2048)  # by AFS_SEL (PS 6.2)
ACCEL_RANGES_G = MPU6050_ACCEL_RANGES_G
GYRO_LSB_PER_DPS = (131.0, 65.5, 32.8, 16.4)  # by FS_SEL (PS 6.1)
GYRO_RANGES_DPS = MPU6050_GYRO_RANGES_DPS
DLPF_BANDWIDTH_HZ = (260, 184, 94, 44, 21, 10, 5)  # accelerometer bandwidth by DLPF_CFG 0..6 (RM 4.3)


def accel_m_s2_per_count(afs_sel: int) -> float:
    return STANDARD_GRAVITY_M_S2 / ACCEL_LSB_PER_G[afs_sel]


def gyro_rad_s_per_count(fs_sel: int) -> float:
    return math.radians(1.0 / GYRO_LSB_PER_DPS[fs_sel])


def temperature_c(raw: int) -> float:
    return raw / 340.0 + 36.53  # RM 4.18


def temperature_raw(temperature_c: float) -> int:
    return round((temperature_c - 36.53) * 340.0)


def gyro_output_rate_hz(dlpf_cfg: int) -> int:
    """RM 4.2: 8 kHz with the low-pass filter off (DLPF_CFG 0 or 7), else 1 kHz. The accelerometer always
    samples at 1 kHz, so above 1 kHz its samples repeat."""
    return 8000 if dlpf_cfg in (0, 7) else 1000


def sample_period_ns(dlpf_cfg: int, smplrt_div: int) -> int:
    return (1 + smplrt_div) * 1_000_000_000 // gyro_output_rate_hz(dlpf_cfg)


def rate_settings(rate_hz: int) -> tuple[int, int]:
    """(DLPF_CFG, SMPLRT_DIV) giving exactly `rate_hz` from the 1 kHz path, with the widest filter that still
    stays below the Nyquist frequency (100 Hz: 44 Hz bandwidth, divider 9). ValueError if no divider fits."""
    divider, remainder = divmod(1000, rate_hz) if 0 < rate_hz <= 1000 else (0, 1)
    if remainder or not 1 <= divider <= 256:
        raise ValueError(f"{rate_hz} Hz is not 1000 Hz / n for n in 1..256 (e.g. 100, 125, 200, 250, 500, 1000)")
    dlpf_cfg = next(cfg for cfg in range(1, 7) if DLPF_BANDWIDTH_HZ[cfg] < rate_hz / 2 or cfg == 6)
    return dlpf_cfg, divider - 1
