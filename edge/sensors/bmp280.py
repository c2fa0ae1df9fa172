"""The BMP280 as the agent's EnvironmentSource: our own driver on the bus seam. It resets the chip, reads the
factory calibration, runs it in normal mode (oversampling, IIR filter, standby as configured) and compensates
each reading with the pure functions of bmp280_math."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetsense.edge.sensors import RegisterDevice
from fleetsense.edge.sensors import bmp280_registers as reg
from fleetsense.edge.sensors.bmp280_math import Calibration, adc_from_registers, pressure_pa, temperature_c_and_fine
from fleetsense.edge.sensors.bus import I2CBus, I2CError
from fleetsense.edge.sources import EnvironmentSample, Health, SourceStatus

from fleetsense.errors import ConfigError

log = logging.getLogger(__name__)

NVM_WAIT_POLLS = 20  # x 1 ms; the data sheet's start-up time is 2 ms
# How the agent sends this sensor's readings (wire kind BARO): pressure around the batch's first reading, and
# temperature, as counts of these units. Here so the simulator's pooled batches quantise the same way.
PRESSURE_PA_PER_COUNT = 0.1  # ±3.2 kPa around the batch's first reading: ±270 m of climb within one window
TEMPERATURE_C_PER_COUNT = 0.01


@dataclass(frozen=True, kw_only=True)
class Bmp280Config:
    """Defaults: the data sheet's "indoor navigation" profile (DS 3.5): x16 pressure, x2 temperature, IIR
    coefficient 16, 0.5 ms standby: 26.3 Hz, 0.16 Pa resolution (~1.3 cm of altitude), smoothing engine noise."""

    address: int = 0x76
    pressure_oversampling: int = 16
    temperature_oversampling: int = 2
    iir_filter_coefficient: int = 16  # 0 = off
    standby_ms: float = 0.5
    retries: int = 3
    retry_backoff_s: float = 0.002

    def __post_init__(self) -> None:
        try:
            self.ctrl_meas()
            self.config()
        except ValueError as exc:
            raise ConfigError(f"BMP280 setting: {exc}") from exc
        if not self.pressure_oversampling or not self.temperature_oversampling:
            raise ConfigError("BMP280 oversampling 0 would skip a measurement the agent needs")

    def ctrl_meas(self) -> int:
        osrs_t = reg.code_for(reg.OVERSAMPLING_BY_CODE, self.temperature_oversampling)
        osrs_p = reg.code_for(reg.OVERSAMPLING_BY_CODE, self.pressure_oversampling)
        return reg.OSRS_T.value(osrs_t) | reg.OSRS_P.value(osrs_p) | reg.MODE.value(reg.MODE_NORMAL)

    def config(self) -> int:
        filter_code = reg.code_for(reg.FILTER_COEFFICIENT_BY_CODE, self.iir_filter_coefficient)
        return reg.T_SB.value(reg.code_for(reg.STANDBY_MS_BY_CODE, self.standby_ms)) | reg.FILTER.value(filter_code)


class Bmp280Source:
    """EnvironmentSource over an I2CBus."""

    def __init__(
        self, bus: I2CBus, config: Bmp280Config = Bmp280Config(), *, sleep_s: Callable[[float], None] = time.sleep
    ) -> None:
        self.config = config
        self.status = SourceStatus()
        self.calibration: Calibration | None = None
        self._sleep_s = sleep_s
        self._device = RegisterDevice(
            bus, config.address, "BMP280", retries=config.retries, backoff_s=config.retry_backoff_s,
            sleep_s=sleep_s, on_error=self._count_error,
        )  # fmt: skip

    def probe(self) -> None:
        """Raise DeviceAbsentError / WrongChipError unless a BMP280 answers at the address."""
        self._device.identify(
            reg.CHIP_ID, reg.CHIP_ID_VALUE, known=reg.KNOWN_IDS, alternatives="0x76 with SDO low, 0x77 with SDO high"
        )

    def start(self, now_ns: int) -> None:
        self.probe()
        self._set_up()

    def read(self, now_ns: int) -> EnvironmentSample | None:
        """The newest conversion; None before the first one completes and while the sensor is unreachable."""
        if self.calibration is None:
            raise RuntimeError("Bmp280Source.read() called before start()")
        try:
            if self.status.health is not Health.OK:
                self._set_up_again_if_reset()
            sample = self._read(now_ns, self.calibration)
        except I2CError as exc:
            if self.status.health is Health.OK:
                log.warning("%s; the agent keeps running and retries at each read", exc.message)
            self.status.health = Health.DEGRADED
            self.status.last_error = exc.message
            return None
        if self.status.health is not Health.OK:
            log.warning("%s answers again", self._device.where)
            self.status.health = Health.OK
        return sample

    def close(self) -> None:
        """Back to sleep mode (0.1 µA instead of converting 26 times a second); errors are ignored on the way out."""
        try:
            self._device.write_u8(reg.CTRL_MEAS, reg.MODE.value(reg.MODE_SLEEP))
        except I2CError:
            pass

    def _set_up(self) -> None:
        device = self._device
        device.write_u8(reg.RESET, reg.RESET_COMMAND)
        for _ in range(NVM_WAIT_POLLS):
            if not reg.IM_UPDATE.get(device.read_u8(reg.STATUS)):
                break
            self._sleep_s(0.001)
        else:
            raise I2CError(f"{device.where}: still loading its calibration {NVM_WAIT_POLLS} ms after a reset")
        calibration = Calibration.from_nvm(device.read(reg.CALIBRATION_START, reg.CALIBRATION_LENGTH))
        if not calibration.plausible():
            raise I2CError(
                f"{device.where}: its calibration reads as blank ({calibration})",
                hint="power-cycle the sensor; if it persists the part or its wiring is faulty",
            )
        self.calibration = calibration
        device.write_u8(reg.CONFIG, self.config.config())  # in sleep mode: in normal mode it may be ignored
        device.write_u8(reg.CTRL_MEAS, self.config.ctrl_meas())

    def _set_up_again_if_reset(self) -> None:
        if self._device.read(reg.CTRL_MEAS, 2) != bytes([self.config.ctrl_meas(), self.config.config()]):
            log.warning("%s lost its configuration (a power glitch?): setting it up again", self._device.where)
            self._set_up()

    def _read(self, now_ns: int, calibration: Calibration) -> EnvironmentSample | None:
        adc_p, adc_t = adc_from_registers(self._device.read(reg.PRESS_MSB, reg.DATA_LENGTH))
        if reg.ADC_SKIPPED in (adc_p, adc_t):
            # No conversion yet since start(), or the chip was reset behind our back (then it is in sleep mode).
            self._set_up_again_if_reset()
            return None
        temperature_c, t_fine = temperature_c_and_fine(adc_t, calibration)
        return EnvironmentSample(
            time_ns=now_ns, pressure_pa=pressure_pa(adc_p, t_fine, calibration), temperature_c=temperature_c
        )

    def _count_error(self, exc: OSError) -> None:
        self.status.io_errors += 1
