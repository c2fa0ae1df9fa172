"""A simulated BMP280 at register level: chip id, soft reset with the NVM copy time (im_update), ctrl_meas and
config, sleep/forced/normal modes timed by the data sheet's conversion and standby times (status.measuring),
the IIR filter, ADC resolution by oversampling, and calibration NVM (the data sheet's example set by default).

The raw ADC values are made by INVERTING the compensation formulas, so a pressure and temperature chosen by the
physics read back through our driver's compensation to within the ADC's resolution.
Writes follow DS 5.2.1: a multi-byte write is register/value *pairs*, there is no auto-increment on writes.
"""

from __future__ import annotations

from collections.abc import Callable

from fleetsense.edge.sensors.bmp280_math import (
    DATASHEET_EXAMPLE,
    Calibration,
    pressure_pa_double,
    registers_from_adc,
    temperature_c_and_fine,
    temperature_c_and_fine_double,
)
from fleetsense.edge.sensors.bmp280_registers import (
    ADC_SKIPPED,
    CALIBRATION_START,
    CHIP_ID,
    CHIP_ID_VALUE,
    CONFIG,
    CTRL_MEAS,
    FILTER,
    FILTER_COEFFICIENT_BY_CODE,
    IM_UPDATE,
    MEASURING,
    MODE,
    MODE_NORMAL,
    MODE_SLEEP,
    OSRS_P,
    OSRS_T,
    OVERSAMPLING_BY_CODE,
    PRESS_MSB,
    RESET,
    RESET_COMMAND,
    STANDBY_MS_BY_CODE,
    STARTUP_TIME_NS,
    STATUS,
    T_SB,
    WRITABLE,
    adc_resolution_bits,
    measurement_time_ns,
)
from fleetsense.sim.chips import ClockNs, RegisterChip
from fleetsense.sim.physics import EnvironmentPhysics

ADC_MAX = (1 << 20) - 1
NVM_LENGTH = 26  # 0xA0/0xA1 are reserved but part of the copied image


def _invert(f: Callable[[float], float], target: float, *, increasing: bool) -> float:
    """The ADC value in [0, ADC_MAX] where the monotonic compensation `f` gives `target` (bisection)."""
    lo, hi = 0.0, float(ADC_MAX)
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def adc_t_for(temperature_c: float, cal: Calibration) -> float:
    return _invert(lambda adc: temperature_c_and_fine_double(adc, cal)[0], temperature_c, increasing=True)


def adc_p_for(pressure_pa: float, t_fine: int, cal: Calibration) -> float:
    return _invert(lambda adc: pressure_pa_double(adc, t_fine, cal), pressure_pa, increasing=False)


def quantise(adc: float, oversampling: int, filter_on: bool) -> int:
    step = 1 << (20 - adc_resolution_bits(oversampling, filter_on))
    return max(0, min(ADC_MAX - step + 1, round(adc / step) * step))


class SimulatedBmp280(RegisterChip):
    def __init__(
        self,
        physics: EnvironmentPhysics,
        clock_ns: ClockNs,
        *,
        calibration: Calibration = DATASHEET_EXAMPLE,
        chip_id: int = CHIP_ID_VALUE,
    ) -> None:
        super().__init__(clock_ns)
        self.physics = physics
        self.calibration = calibration
        self.chip_id = chip_id
        self.measurements = 0
        self.power_cycle()

    def power_cycle(self) -> None:
        """Power-on (and soft reset): sleep mode, data registers 0x80000, NVM readable after 2 ms."""
        self._now_ns = self.clock_ns()
        self.registers[:] = bytes(256)
        self.registers[CHIP_ID] = self.chip_id
        nvm = self.calibration.to_nvm() + bytes(2)
        self.registers[CALIBRATION_START : CALIBRATION_START + NVM_LENGTH] = nvm
        self.registers[PRESS_MSB : PRESS_MSB + 6] = registers_from_adc(ADC_SKIPPED) * 2
        self._nvm_ready_ns = self._now_ns + STARTUP_TIME_NS
        self._filter_state: dict[int, float] = {}  # channel (0: temperature, 1: pressure) -> filtered ADC
        self._run_origin_ns: int | None = None  # start of the first conversion of a normal-mode run or forced
        self._done = 0  # conversions completed since the origin

    def _timing_ns(self) -> tuple[int, int]:
        """(conversion time, conversion + standby time) for the current settings."""
        ctrl = self.registers[CTRL_MEAS]
        conversion = measurement_time_ns(OVERSAMPLING_BY_CODE[OSRS_T.get(ctrl)], OVERSAMPLING_BY_CODE[OSRS_P.get(ctrl)])
        standby = round(STANDBY_MS_BY_CODE[T_SB.get(self.registers[CONFIG])] * 1e6)
        return conversion, conversion + standby

    def _mode(self) -> int:
        return MODE.get(self.registers[CTRL_MEAS])

    def advance(self, now_ns: int) -> None:
        self._now_ns = now_ns
        if self._run_origin_ns is None:
            return
        conversion, cycle = self._timing_ns()
        elapsed = now_ns - self._run_origin_ns - conversion
        due = elapsed // cycle + 1 if elapsed >= 0 else 0
        if self._mode() != MODE_NORMAL:
            due = min(due, 1)  # forced mode: one conversion, then back to sleep
        if due > self._done:
            # With the filter on, older conversions still weigh in (by (1 - 1/16)^n); otherwise only the last.
            keep = 256 if FILTER.get(self.registers[CONFIG]) else 1
            first = max(self._done, due - keep)
            self.measurements += first - self._done  # made, but superseded: count them
            for index in range(first, due):
                self._convert(self._run_origin_ns + index * cycle + conversion)
            self._done = due
        if self._mode() != MODE_NORMAL and self._done:
            self.registers[CTRL_MEAS] = MODE.put(self.registers[CTRL_MEAS], MODE_SLEEP)
            self._run_origin_ns = None

    def _measuring(self) -> bool:
        if self._run_origin_ns is None:
            return False
        conversion, cycle = self._timing_ns()
        return (self._now_ns - self._run_origin_ns) % cycle < conversion

    def _convert(self, t_ns: int) -> None:
        environment = self.physics.environment_at(t_ns / 1e9)
        ctrl, cal = self.registers[CTRL_MEAS], self.calibration
        osrs_t, osrs_p = OVERSAMPLING_BY_CODE[OSRS_T.get(ctrl)], OVERSAMPLING_BY_CODE[OSRS_P.get(ctrl)]
        coefficient = FILTER_COEFFICIENT_BY_CODE[FILTER.get(self.registers[CONFIG])]
        adc_t = quantise(
            self._filtered(0, adc_t_for(environment.temperature_c, cal), coefficient), osrs_t, coefficient > 0
        )
        _, t_fine = temperature_c_and_fine(adc_t, cal)  # the t_fine the driver will compute from these registers
        adc_p_real = adc_p_for(environment.pressure_pa, t_fine, cal)
        adc_p = quantise(self._filtered(1, adc_p_real, coefficient), osrs_p, coefficient > 0)
        self.registers[PRESS_MSB : PRESS_MSB + 3] = registers_from_adc(adc_p if osrs_p else ADC_SKIPPED)
        self.registers[PRESS_MSB + 3 : PRESS_MSB + 6] = registers_from_adc(adc_t if osrs_t else ADC_SKIPPED)
        self.measurements += 1

    def _filtered(self, channel: int, value: float, coefficient: int) -> float:
        """DS 3.3.3: x = (x_prev * (c - 1) + x_new) / c; the first conversion seeds the filter."""
        previous = self._filter_state.get(channel)
        if coefficient and previous is not None:
            value = (previous * (coefficient - 1) + value) / coefficient
        self._filter_state[channel] = value
        return value

    # Registers with behaviour.
    def i2c_write(self, data: bytes) -> None:
        self.advance(self.clock_ns())
        if data:
            self.pointer = data[-2] if len(data) >= 2 and len(data) % 2 == 0 else data[0]
        for index in range(0, len(data) - 1, 2):
            self.write_register(data[index], data[index + 1])

    def read_register(self, register: int) -> int:
        nvm_busy = self._now_ns < self._nvm_ready_ns
        if register == STATUS:
            return MEASURING.value(int(self._measuring())) | IM_UPDATE.value(int(nvm_busy))
        if nvm_busy and CALIBRATION_START <= register < CALIBRATION_START + NVM_LENGTH:
            return 0  # the image registers are still being loaded from NVM
        return 0 if register == RESET else self.registers[register]

    def write_register(self, register: int, value: int) -> None:
        if register not in WRITABLE:
            return
        if register == RESET:
            if value == RESET_COMMAND:
                self.power_cycle()
            return
        if register == CONFIG and self._mode() == MODE_NORMAL:
            return  # DS 4.3.5: writes to config in normal mode may be ignored; we always ignore them
        self.registers[register] = value
        if register == CTRL_MEAS:
            self._run_origin_ns = None if self._mode() == MODE_SLEEP else self._now_ns
            self._done = 0
