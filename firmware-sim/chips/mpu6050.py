"""A simulated MPU-6050 at register level: the register file of edge/sensors/mpu6050_registers.py, a 1 KiB FIFO
and a sample clock that samples the physics at the configured output rate as the injected clock advances.

Modelled: power-on asleep, DEVICE_RESET, SLEEP and CLKSEL=7 stopping the clock, SMPLRT_DIV with the 8 kHz/1 kHz
gyro output rate chosen by DLPF_CFG, full-scale ranges, saturating big-endian int16 data registers, FIFO_EN
selection in register order, FIFO_RESET honoured only while USER_CTRL.FIFO_EN is 0 (RM 4.27), FIFO_COUNT,
FIFO_R_W pops (repeating the last byte when empty, RM 4.31), overflow dropping the oldest *bytes* (so the FIFO
loses sample alignment as on the chip), read-to-clear INT_STATUS, auto-increment except at FIFO_R_W.
Simplifications: the sample clock restarts when the FIFO is enabled, a rate is written or the chip wakes (the
real divider runs free, so on hardware the first FIFO sample lands up to one period after the enable); INT_STATUS
bits latch only when enabled in INT_ENABLE (the conservative reading of RM 4.16); no low-pass filtering, no
start-up settling, no cycle mode, no self-test, no auxiliary I2C master.
"""

from __future__ import annotations

import random
import struct
from collections import deque

from fleetsense.edge.sensors.mpu6050_registers import (
    ACCEL_CONFIG,
    ACCEL_FIFO_EN,
    ACCEL_XOUT_H,
    AFS_SEL,
    CLKSEL,
    CLKSEL_STOPPED,
    CONFIG,
    DATA_RDY_EN,
    DATA_RDY_INT,
    DEVICE_RESET,
    DLPF_CFG,
    FIFO_COUNT_H,
    FIFO_EN,
    FIFO_OFLOW_EN,
    FIFO_OFLOW_INT,
    FIFO_R_W,
    FIFO_RESET,
    FIFO_SIZE_BYTES,
    FS_SEL,
    GYRO_CONFIG,
    INT_ENABLE,
    INT_STATUS,
    PWR_MGMT_1,
    RESET_VALUES,
    SIG_COND_RESET,
    SIGNAL_PATH_RESET,
    SLEEP,
    SMPLRT_DIV,
    TEMP_FIFO_EN,
    USER_CTRL,
    USER_FIFO_EN,
    WHO_AM_I,
    WHO_AM_I_VALUE,
    XG_FIFO_EN,
    YG_FIFO_EN,
    ZG_FIFO_EN,
    accel_m_s2_per_count,
    gyro_rad_s_per_count,
    sample_period_ns,
    temperature_raw,
)
from fleetsense.sim.chips import ClockNs, RegisterChip
from fleetsense.sim.physics import ImuPhysics, Vec3

DATA_LENGTH = 14  # ACCEL_XOUT_H .. GYRO_ZOUT_L
READ_ONLY = {INT_STATUS, *range(ACCEL_XOUT_H, ACCEL_XOUT_H + DATA_LENGTH), FIFO_COUNT_H, FIFO_COUNT_H + 1, WHO_AM_I}
SELF_CLEARING_USER_CTRL = FIFO_RESET.mask | SIG_COND_RESET.mask | 0b10  # bit 1: I2C_MST_RESET
# (FIFO_EN bit, slice of the 14 data bytes) in register order, which is the order samples enter the FIFO.
FIFO_SOURCES = ((ACCEL_FIFO_EN, slice(0, 6)), (TEMP_FIFO_EN, slice(6, 8)), (XG_FIFO_EN, slice(8, 10)),
                (YG_FIFO_EN, slice(10, 12)), (ZG_FIFO_EN, slice(12, 14)))  # fmt: skip


def _int16(value: float) -> int:
    return max(-32768, min(32767, round(value)))  # the data registers saturate, they do not wrap


class SimulatedMpu6050(RegisterChip):
    def __init__(
        self,
        physics: ImuPhysics,
        clock_ns: ClockNs,
        *,
        who_am_i: int = WHO_AM_I_VALUE,
        accel_bias_m_s2: Vec3 = (0.0, 0.0, 0.0),
        gyro_bias_rad_s: Vec3 = (0.0, 0.0, 0.0),
        accel_noise_m_s2: float = 0.0,
        gyro_noise_rad_s: float = 0.0,
        seed: int = 0,
        rate_error_ppm: float = 0.0,
        fifo_write_ns_per_byte: int = 0,
    ) -> None:
        super().__init__(clock_ns)
        self.physics = physics
        self.who_am_i = who_am_i
        self.accel_bias_m_s2 = accel_bias_m_s2
        self.gyro_bias_rad_s = gyro_bias_rad_s
        self.accel_noise_m_s2 = accel_noise_m_s2
        self.gyro_noise_rad_s = gyro_noise_rad_s
        self.rate_error_ppm = rate_error_ppm  # the chip's oscillator is off by this much (datasheet: up to ±1-2 %)
        self.fifo_write_ns_per_byte = fifo_write_ns_per_byte  # >0: a sample's bytes appear one by one
        self._random = random.Random(seed)
        self.fifo: deque[int] = deque(maxlen=FIFO_SIZE_BYTES)  # a full deque drops its oldest byte on append
        self._pending: deque[tuple[int, int]] = deque()  # (time the byte becomes visible, byte)
        self.samples_taken = 0
        self.fifo_bytes_dropped = 0
        self.power_cycle()

    def power_cycle(self) -> None:
        """Power-on state: reset values (asleep), empty FIFO, sample clock stopped."""
        self.registers[:] = bytes(256)
        for register, value in RESET_VALUES.items():
            self.registers[register] = value
        self.registers[WHO_AM_I] = self.who_am_i
        self.fifo.clear()
        self._pending.clear()
        self._last_fifo_byte = 0
        self._now_ns = self.clock_ns()
        self._origin_ns: int | None = None  # sample k is taken at origin + k * period, k >= 1
        self._ticks = 0

    # The sample clock.
    def _sampling(self) -> bool:
        power = self.registers[PWR_MGMT_1]
        return not SLEEP.get(power) and CLKSEL.get(power) != CLKSEL_STOPPED

    def _period_ns(self) -> float:
        nominal = sample_period_ns(DLPF_CFG.get(self.registers[CONFIG]), self.registers[SMPLRT_DIV])
        return nominal / (1.0 + self.rate_error_ppm * 1e-6)

    def _restart_sample_clock(self) -> None:
        self._origin_ns = self._now_ns if self._sampling() else None
        self._ticks = 0

    def _fifo_bytes_per_sample(self) -> int:
        if not USER_FIFO_EN.get(self.registers[USER_CTRL]):
            return 0
        return sum(part.stop - part.start for bit, part in FIFO_SOURCES if bit.get(self.registers[FIFO_EN]))

    def advance(self, now_ns: int) -> None:
        self._now_ns = now_ns
        if self._origin_ns is not None:
            period = self._period_ns()
            due = int((now_ns - self._origin_ns) // period)
            if due > self._ticks:
                # After a long gap only the newest samples can still matter: one FIFO's worth (plus one, so
                # that the overflow still happens) or, with the FIFO off, the data registers' last sample.
                per_sample = self._fifo_bytes_per_sample()
                keep = -(-FIFO_SIZE_BYTES // per_sample) + 1 if per_sample else 1
                first = max(self._ticks + 1, due - keep + 1)
                skipped = first - (self._ticks + 1)  # taken, then pushed out by the kept ones: count them
                self.samples_taken += skipped
                self.fifo_bytes_dropped += skipped * per_sample
                for tick in range(first, due + 1):
                    self._sample(self._origin_ns + round(tick * period))
                self._ticks = due
        while self._pending and self._pending[0][0] <= now_ns:
            self._push(self._pending.popleft()[1])

    def _sample(self, t_ns: int) -> None:
        reading = self.physics.imu_at(t_ns / 1e9)
        accel_scale = accel_m_s2_per_count(AFS_SEL.get(self.registers[ACCEL_CONFIG]))
        gyro_scale = gyro_rad_s_per_count(FS_SEL.get(self.registers[GYRO_CONFIG]))
        accel = [
            _int16((f + b + self._noise(self.accel_noise_m_s2)) / accel_scale)
            for f, b in zip(reading.specific_force_m_s2, self.accel_bias_m_s2, strict=True)
        ]
        gyro = [
            _int16((w + b + self._noise(self.gyro_noise_rad_s)) / gyro_scale)
            for w, b in zip(reading.angular_rate_rad_s, self.gyro_bias_rad_s, strict=True)
        ]
        data = struct.pack(">7h", *accel, _int16(temperature_raw(reading.die_temperature_c)), *gyro)
        self.registers[ACCEL_XOUT_H : ACCEL_XOUT_H + DATA_LENGTH] = data
        self._raise_interrupt(DATA_RDY_EN.get(self.registers[INT_ENABLE]), DATA_RDY_INT.mask)
        if USER_FIFO_EN.get(self.registers[USER_CTRL]):
            enabled = self.registers[FIFO_EN]
            out = b"".join(data[part] for bit, part in FIFO_SOURCES if bit.get(enabled))
            for index, byte in enumerate(out):
                self._pending.append((t_ns + index * self.fifo_write_ns_per_byte, byte))
        self.samples_taken += 1

    def _noise(self, sigma: float) -> float:
        return self._random.gauss(0.0, sigma) if sigma else 0.0

    def _push(self, byte: int) -> None:
        if len(self.fifo) == FIFO_SIZE_BYTES:
            self.fifo_bytes_dropped += 1
            self._raise_interrupt(FIFO_OFLOW_EN.get(self.registers[INT_ENABLE]), FIFO_OFLOW_INT.mask)
        self.fifo.append(byte)

    def _raise_interrupt(self, enabled: int, mask: int) -> None:
        if enabled:
            self.registers[INT_STATUS] |= mask

    # Registers with behaviour.
    def read_register(self, register: int) -> int:
        if register == FIFO_R_W:
            if self.fifo:
                self._last_fifo_byte = self.fifo.popleft()
            return self._last_fifo_byte
        if register == INT_STATUS:
            value = self.registers[INT_STATUS]
            self.registers[INT_STATUS] = 0
            return value
        if register == FIFO_COUNT_H:
            return len(self.fifo) >> 8
        if register == FIFO_COUNT_H + 1:
            return len(self.fifo) & 0xFF
        return self.registers[register]

    def next_pointer(self, register: int) -> int:
        return register if register == FIFO_R_W else (register + 1) & 0xFF

    def write_register(self, register: int, value: int) -> None:
        if register in READ_ONLY:
            return
        if register == PWR_MGMT_1:
            if DEVICE_RESET.get(value):
                self.power_cycle()
                return
            was_sampling = self._sampling()
            self.registers[PWR_MGMT_1] = value
            if self._sampling() != was_sampling:
                self._restart_sample_clock()
        elif register == USER_CTRL:
            self._write_user_ctrl(value)
        elif register == FIFO_R_W:
            self._push(value)
        elif register == SIGNAL_PATH_RESET:
            pass  # self-clearing; resets the analog paths but keeps the data registers (RM 4.26)
        else:
            self.registers[register] = value
            if register in (SMPLRT_DIV, CONFIG):
                self._restart_sample_clock()

    def _write_user_ctrl(self, value: int) -> None:
        if FIFO_RESET.get(value) and not USER_FIFO_EN.get(value):
            self.fifo.clear()
            self._pending.clear()
        if SIG_COND_RESET.get(value):
            self.registers[ACCEL_XOUT_H : ACCEL_XOUT_H + DATA_LENGTH] = bytes(DATA_LENGTH)
        fifo_was_on = USER_FIFO_EN.get(self.registers[USER_CTRL])
        self.registers[USER_CTRL] = value & ~SELF_CLEARING_USER_CTRL
        if USER_FIFO_EN.get(value) and not fifo_was_on:
            self._restart_sample_clock()
