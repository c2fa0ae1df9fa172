"""The MPU-6050 as the agent's ImuSource. The unmodified Adafruit driver configures it (reset, wake, ranges, low-pass
filter, divider) over our bus; samples then come out of the chip's FIFO in bursts, so sample i of a block was taken
at first_time_ns + i * period_ns by the chip's own clock: no per-sample host timestamps, no scheduling jitter.

The timeline is anchored when the FIFO is enabled and continued across drains. It is re-anchored (a new block)
after a FIFO overflow, a failed FIFO read, a chip that lost its configuration, or a drift between the chip's
oscillator and the host clock larger than `resync_tolerance_ns`.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import adafruit_mpu6050
from fleetsense.edge.i2c import BusioI2C
from fleetsense.edge.sensors import RegisterDevice
from fleetsense.edge.sensors import mpu6050_registers as reg
from fleetsense.edge.sensors.bus import I2CBus, I2CError, I2CTransferError
from fleetsense.edge.sources import Health, SampleBlock, SourceStatus

from fleetsense.errors import ConfigError

log = logging.getLogger(__name__)

Now = Callable[[], int]


@dataclass(frozen=True, kw_only=True)
class Mpu6050Config:
    address: int = 0x68
    rate_hz: int = 100  # must be 1000 / n: the FIFO then fills at exactly this rate
    accel_range_g: int = 4  # braking and cornering stay under 1 g, but kerbs and potholes spike to several
    gyro_range_dps: int = 500
    polled: bool = False  # fallback: read the data registers once per drain() instead of the FIFO
    retries: int = 3
    retry_backoff_s: float = 0.002
    resync_tolerance_ns: int = 50_000_000  # host/chip clock disagreement tolerated before re-anchoring

    def __post_init__(self) -> None:
        try:
            reg.rate_settings(self.rate_hz)
        except ValueError as exc:
            raise ConfigError(f"MPU-6050 rate: {exc}", hint="choose a rate that divides 1000 Hz") from exc
        if self.accel_range_g not in reg.ACCEL_RANGES_G:
            raise ConfigError(f"MPU-6050 accelerometer range must be one of {reg.ACCEL_RANGES_G} g")
        if self.gyro_range_dps not in reg.GYRO_RANGES_DPS:
            raise ConfigError(f"MPU-6050 gyro range must be one of {reg.GYRO_RANGES_DPS} °/s")


class Mpu6050Source:
    """ImuSource over an I2CBus. Channels: ax, ay, az, gx, gy, gz in raw int16 counts; `scales` converts."""

    def __init__(
        self,
        bus: I2CBus,
        config: Mpu6050Config = Mpu6050Config(),
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        sleep_s: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._bus = bus
        self._clock_ns = clock_ns
        self._dlpf_cfg, self._smplrt_div = reg.rate_settings(config.rate_hz)
        self._afs_sel = reg.ACCEL_RANGES_G.index(config.accel_range_g)
        self._fs_sel = reg.GYRO_RANGES_DPS.index(config.gyro_range_dps)
        self.period_ns = reg.sample_period_ns(self._dlpf_cfg, self._smplrt_div)
        accel, gyro = reg.accel_m_s2_per_count(self._afs_sel), reg.gyro_rad_s_per_count(self._fs_sel)
        self.scales = (accel, accel, accel, gyro, gyro, gyro)
        self.status = SourceStatus()
        self.timeline_resyncs = 0
        self.adafruit: Any = None  # the adafruit_mpu6050.MPU6050 that configured the chip
        self._device = RegisterDevice(
            bus, config.address, "MPU-6050", retries=config.retries, backoff_s=config.retry_backoff_s,
            sleep_s=sleep_s, on_error=self._count_error,
        )  # fmt: skip
        self._started = False
        self._next_sample_ns = 0  # when the chip takes the next sample we have not read yet
        self._expected_registers = b""

    def probe(self) -> None:
        """Raise DeviceAbsentError / WrongChipError unless an MPU-6050 answers at the address."""
        self._device.identify(
            reg.WHO_AM_I, reg.WHO_AM_I_VALUE, known=reg.KNOWN_IDS, alternatives="0x68 with AD0 low, 0x69 with AD0 high"
        )

    def start(self, now_ns: int) -> None:
        now = self._timebase(now_ns)
        self.probe()
        self._configure()
        self._start_sampling(now)

    def drain(self, now_ns: int) -> list[SampleBlock]:
        if not self._started:
            raise RuntimeError("Mpu6050Source.drain() called before start()")
        now = self._timebase(now_ns)
        try:
            if self.status.health is not Health.OK and self._lost_configuration():
                self._reinitialise(now, "lost its configuration while unreachable (a power glitch?)")
            blocks = self._read_polled(now) if self.config.polled else self._drain_fifo(now)
        except I2CError as exc:
            if self.status.health is Health.OK:
                log.warning("%s; the agent keeps running and retries at each drain", exc.message)
            self.status.health = Health.DEGRADED
            self.status.last_error = exc.message
            return []
        if self.status.health is not Health.OK:
            log.warning("%s answers again", self._device.where)
            self.status.health = Health.OK
        return blocks

    def close(self) -> None:
        """Stop the FIFO and put the chip to sleep (3.9 mA -> 5 µA); errors are ignored on the way out."""
        try:
            self._device.write_u8(reg.USER_CTRL, 0)
            self._device.write_u8(reg.PWR_MGMT_1, reg.SLEEP.value() | reg.CLKSEL.value(reg.CLKSEL_PLL_X_GYRO))
        except I2CError:
            pass
        self._started = False

    # Set-up.
    def _configure(self) -> None:
        def configure() -> Any:
            mpu = adafruit_mpu6050.MPU6050(BusioI2C(self._bus), address=self.config.address)
            mpu.accelerometer_range = self._afs_sel  # Adafruit's Range/GyroRange/Bandwidth values are the
            mpu.gyro_range = self._fs_sel  # register codes themselves
            mpu.filter_bandwidth = self._dlpf_cfg
            mpu.sample_rate_divisor = self._smplrt_div
            return mpu

        try:
            self.adafruit = self._device.retrying("configuring it through adafruit_mpu6050", configure)
        except (RuntimeError, ValueError) as exc:  # Adafruit's "Failed to find MPU6050" / "No I2C device"
            raise I2CError(f"{self._device.where}: adafruit_mpu6050 could not set it up: {exc}") from exc

    def _start_sampling(self, now: Now) -> None:
        device = self._device
        device.write_u8(reg.USER_CTRL, 0)  # FIFO off first: FIFO_RESET only acts while USER_CTRL.FIFO_EN is 0
        if not self.config.polled:
            device.write_u8(reg.USER_CTRL, reg.FIFO_RESET.value())
            device.write_u8(reg.FIFO_EN, reg.ACCEL_GYRO_FIFO)
            device.write_u8(reg.INT_ENABLE, reg.FIFO_OFLOW_EN.value())  # so that INT_STATUS latches overflows
            device.read_u8(reg.INT_STATUS)  # clears an overflow flag from before the reset
            device.write_u8(reg.USER_CTRL, reg.USER_FIFO_EN.value())
            self._next_sample_ns = now() + self.period_ns  # the anchor: the FIFO starts filling now
        self._expected_registers = self._configuration()
        self._started = True

    def _configuration(self) -> bytes:
        """The registers a power glitch would reset: the rate/range block, FIFO_EN, USER_CTRL, PWR_MGMT_1."""
        return (
            self._device.read(reg.SMPLRT_DIV, 4)
            + self._device.read(reg.USER_CTRL, 2)
            + bytes([self._device.read_u8(reg.FIFO_EN)])
        )

    def _lost_configuration(self) -> bool:
        return self._configuration() != self._expected_registers

    def _reinitialise(self, now: Now, reason: str) -> None:
        lost = 0 if self.config.polled else self._samples_due(now())
        log.warning("%s %s: setting it up again (about %d samples lost)", self._device.where, reason, lost)
        self.status.samples_lost += lost
        self.probe()
        self._configure()
        self._start_sampling(now)

    # Sampling.
    def _drain_fifo(self, now: Now) -> list[SampleBlock]:
        device, period = self._device, self.period_ns
        interrupts = device.read_u8(reg.INT_STATUS)
        count = int.from_bytes(device.read(reg.FIFO_COUNT_H, 2), "big")
        if reg.FIFO_OFLOW_INT.get(interrupts) or count >= reg.FIFO_SIZE_BYTES:
            # The chip dropped the oldest *bytes*, so what is left is no longer aligned to samples: start over.
            lost = self._samples_due(now())
            log.warning("%s: FIFO overflow (drained too late); about %d samples lost", device.where, lost)
            self.status.fifo_overflows += 1
            self.status.samples_lost += lost
            self._start_sampling(now)
            return []
        samples = count // reg.SAMPLE_BYTES  # a sample the chip is still writing stays for the next drain
        if samples == 0:
            if now() - self._next_sample_ns > self.config.resync_tolerance_ns and self._lost_configuration():
                self._reinitialise(now, "stopped sampling (reset or asleep)")
            return []
        try:
            data = device.read_once(reg.FIFO_R_W, samples * reg.SAMPLE_BYTES)  # never retried: it pops
        except I2CTransferError as exc:
            # Some bytes may have been popped before the failure: the alignment is unknown, so start over.
            lost = self._samples_due(now())
            log.warning("%s; restarting the FIFO (about %d samples lost)", exc.message, lost)
            self.status.last_error = exc.message
            self.status.samples_lost += lost
            self._start_sampling(now)
            return []
        first = self._next_sample_ns
        self._next_sample_ns += samples * period
        first = self._resync_if_drifted(now(), first, samples)
        counts = tuple(struct.iter_unpack(">6h", data))
        return [SampleBlock(first_time_ns=first, period_ns=period, counts=counts)]

    def _resync_if_drifted(self, now_ns: int, first_ns: int, samples: int) -> int:
        """The chip's clock may be off by 1-2 % (the PS's internal-clock tolerance): within minutes the FIFO's
        timeline and the host's clock disagree. Beyond the tolerance, the burst just read is re-timed to end now."""
        last_ns, tolerance = self._next_sample_ns - self.period_ns, self.config.resync_tolerance_ns
        if last_ns <= now_ns + tolerance and now_ns - self._next_sample_ns <= tolerance:
            return first_ns
        self.timeline_resyncs += 1
        log.info("%s: re-anchoring its timeline (%+.1f ms off)", self._device.where, (last_ns - now_ns) / 1e6)
        self._next_sample_ns = now_ns + self.period_ns
        return now_ns - (samples - 1) * self.period_ns

    def _read_polled(self, now: Now) -> list[SampleBlock]:
        """One sample stamped with the host clock: call drain() at the sample rate in this mode."""
        time_ns = now()
        ax, ay, az, _temperature, gx, gy, gz = struct.unpack(">7h", self._device.read(reg.ACCEL_XOUT_H, 14))
        return [SampleBlock(first_time_ns=time_ns, period_ns=self.period_ns, counts=((ax, ay, az, gx, gy, gz),))]

    # Book-keeping.
    def _samples_due(self, now_ns: int) -> int:
        """Samples the chip has taken since the last one we read (what an overflow or a restart loses)."""
        return max(0, (now_ns - self._next_sample_ns) // self.period_ns + 1)

    def _timebase(self, now_ns: int) -> Now:
        """`now_ns` as the agent saw it, moved on by the time our own I/O takes: the chip keeps sampling while
        Adafruit's set-up sleeps (~0.35 s) or we retry, so an anchor taken later must be later."""
        entry_ns = self._clock_ns()
        return lambda: now_ns + (self._clock_ns() - entry_ns)

    def _count_error(self, exc: OSError) -> None:
        self.status.io_errors += 1
