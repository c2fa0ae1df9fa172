"""BMP280 compensation as pure functions, transcribed from the data sheet's reference code (BST-BMP280-DS001
section 3.11.3 and 8.1) and tested against its worked example (section 3.12). No bus I/O here."""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass

from fleetsense.edge.sensors.bmp280_registers import CALIBRATION_FORMAT, CALIBRATION_LENGTH


@dataclass(frozen=True)
class Calibration:
    """The factory trimming parameters from NVM 0x88..0x9F (DS table 17)."""

    dig_T1: int
    dig_T2: int
    dig_T3: int
    dig_P1: int
    dig_P2: int
    dig_P3: int
    dig_P4: int
    dig_P5: int
    dig_P6: int
    dig_P7: int
    dig_P8: int
    dig_P9: int

    @classmethod
    def from_nvm(cls, data: bytes) -> Calibration:
        if len(data) != CALIBRATION_LENGTH:
            raise ValueError(f"calibration is {CALIBRATION_LENGTH} bytes, got {len(data)}")
        return cls(*struct.unpack(CALIBRATION_FORMAT, data))

    def to_nvm(self) -> bytes:
        return struct.pack(CALIBRATION_FORMAT, *astuple(self))

    def plausible(self) -> bool:
        """All-zero or all-0xFF NVM (a chip still copying it, or a bus reading junk) cannot be compensated."""
        return self.dig_T1 not in (0, 0xFFFF) and self.dig_P1 not in (0, 0xFFFF)


# The data sheet's worked example (DS 3.12); the simulated chip carries it as its factory calibration.
DATASHEET_EXAMPLE = Calibration(27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)


def _c_div(numerator: int, denominator: int) -> int:
    """C's integer division, which truncates toward zero (Python's // floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator >= 0) else -quotient


def temperature_c_and_fine(adc_t: int, cal: Calibration) -> tuple[float, int]:
    """bmp280_compensate_T_int32: temperature in °C at 0.01 °C resolution, and t_fine for the pressure."""
    var1 = (((adc_t >> 3) - (cal.dig_T1 << 1)) * cal.dig_T2) >> 11
    var2 = (((((adc_t >> 4) - cal.dig_T1) * ((adc_t >> 4) - cal.dig_T1)) >> 12) * cal.dig_T3) >> 14
    t_fine = var1 + var2
    return ((t_fine * 5 + 128) >> 8) / 100.0, t_fine


def pressure_pa(adc_p: int, t_fine: int, cal: Calibration) -> float:
    """bmp280_compensate_P_int64: pressure in Pa (the reference returns Q24.8, i.e. 1/256 Pa)."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * cal.dig_P6
    var2 = var2 + ((var1 * cal.dig_P5) << 17)
    var2 = var2 + (cal.dig_P4 << 35)
    var1 = ((var1 * var1 * cal.dig_P3) >> 8) + ((var1 * cal.dig_P2) << 12)
    var1 = (((1 << 47) + var1) * cal.dig_P1) >> 33
    if var1 == 0:
        raise ValueError("dig_P1 is 0: the calibration was not read")  # the reference returns 0 here
    p = 1048576 - adc_p
    p = _c_div(((p << 31) - var2) * 3125, var1)
    var1 = (cal.dig_P9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (cal.dig_P8 * p) >> 19
    p = ((p + var1 + var2) >> 8) + (cal.dig_P7 << 4)
    return p / 256.0


def temperature_c_and_fine_double(adc_t: float, cal: Calibration) -> tuple[float, int]:
    """bmp280_compensate_T_double (DS 8.1). Accepts a fractional ADC value (the simulator inverts it)."""
    var1 = (adc_t / 16384.0 - cal.dig_T1 / 1024.0) * cal.dig_T2
    var2 = (adc_t / 131072.0 - cal.dig_T1 / 8192.0) ** 2 * cal.dig_T3
    return (var1 + var2) / 5120.0, int(var1 + var2)


def pressure_pa_double(adc_p: float, t_fine: int, cal: Calibration) -> float:
    """bmp280_compensate_P_double (DS 8.1)."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * cal.dig_P6 / 32768.0
    var2 = var2 + var1 * cal.dig_P5 * 2.0
    var2 = var2 / 4.0 + cal.dig_P4 * 65536.0
    var1 = (cal.dig_P3 * var1 * var1 / 524288.0 + cal.dig_P2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal.dig_P1
    if var1 == 0.0:
        raise ValueError("dig_P1 is 0: the calibration was not read")
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = cal.dig_P9 * p * p / 2147483648.0
    var2 = p * cal.dig_P8 / 32768.0
    return p + (var1 + var2 + cal.dig_P7) / 16.0


def adc_from_registers(data: bytes) -> tuple[int, int]:
    """(adc_p, adc_t) from the 6-byte burst at 0xF7: msb, lsb, xlsb[7:4] each (DS 4.3.6-4.3.7)."""
    adc_p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    adc_t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    return adc_p, adc_t


def registers_from_adc(adc: int) -> bytes:
    """The three data bytes holding a 20-bit ADC value (the simulated chip writes these)."""
    return bytes([(adc >> 12) & 0xFF, (adc >> 4) & 0xFF, (adc & 0x0F) << 4])
