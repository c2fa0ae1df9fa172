"""The BMP280's registers and timing facts, as data: the one map imported by both the driver
(edge/sensors/bmp280.py) and the simulated chip (firmware-sim/chips/bmp280.py).

Reference: Bosch "BMP280 Digital Pressure Sensor" data sheet BST-BMP280-DS001 (DS x.y below).
"""

from __future__ import annotations

from fleetsense.edge.sensors import BitField

ADDRESSES = (0x76, 0x77)  # SDO to GND / to VDDIO (DS 5.2)

CALIBRATION_START = 0x88  # DS 3.11.2, table 17: dig_T1..dig_P9, 0x88..0x9F
CALIBRATION_LENGTH = 24
CALIBRATION_FORMAT = "<HhhHhhhhhhhh"  # little-endian; dig_T1 and dig_P1 unsigned, the rest signed
CHIP_ID = 0xD0  # DS 4.3.1
RESET = 0xE0  # DS 4.3.2: writing RESET_COMMAND resets like a power-on; other values have no effect
STATUS = 0xF3  # DS 4.3.3
CTRL_MEAS = 0xF4  # DS 4.3.4
CONFIG = 0xF5  # DS 4.3.5: writes in normal mode may be ignored, so it is written in sleep mode
PRESS_MSB = 0xF7  # DS 4.3.6-4.3.7: press_msb, lsb, xlsb, temp_msb, lsb, xlsb; a burst read is consistent
DATA_LENGTH = 6

CHIP_ID_VALUE = 0x58
KNOWN_IDS = {0x60: "BME280", 0x55: "BMP180", 0x56: "BMP280 sample", 0x57: "BMP280 sample"}
RESET_COMMAND = 0xB6
WRITABLE = (RESET, CTRL_MEAS, CONFIG)  # DS 4.2: everything else is read-only

MEASURING = BitField(STATUS, 3)  # a conversion is running
IM_UPDATE = BitField(STATUS, 0)  # NVM being copied to the image registers (after power-on and reset)
OSRS_T = BitField(CTRL_MEAS, 5, 3)
OSRS_P = BitField(CTRL_MEAS, 2, 3)
MODE = BitField(CTRL_MEAS, 0, 2)
T_SB = BitField(CONFIG, 5, 3)
FILTER = BitField(CONFIG, 2, 3)
SPI3W_EN = BitField(CONFIG, 0)

MODE_SLEEP = 0b00
MODE_FORCED = 0b01  # 0b10 is forced mode too (DS 3.6)
MODE_NORMAL = 0b11

OVERSAMPLING_BY_CODE = (0, 1, 2, 4, 8, 16, 16, 16)  # osrs_t / osrs_p codes (DS tables 4, 5); 0 = skipped
FILTER_COEFFICIENT_BY_CODE = (0, 2, 4, 8, 16, 16, 16, 16)  # DS table 7; 0 = filter off
STANDBY_MS_BY_CODE = (0.5, 62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)  # DS table 11

ADC_SKIPPED = 0x80000  # what a data register holds when its measurement is skipped or not yet made (DS 3.3.2)
STARTUP_TIME_NS = 2_000_000  # DS table 2: power-on (and soft reset) to readable NVM


def code_for(table: tuple[float, ...], wanted: float) -> int:
    """The register code whose table entry is `wanted` (the first, where codes repeat)."""
    if wanted not in table:
        raise ValueError(f"{wanted} is not one of {sorted(set(table))}")
    return table.index(wanted)


def measurement_time_ns(temperature_oversampling: int, pressure_oversampling: int) -> int:
    """Typical conversion time (DS 3.8.1 / 9.1: 1 ms + 2 ms per temperature and pressure sample, + 0.5 ms
    when pressure is measured), e.g. 37.5 ms for x2/x16."""
    pressure_ms = 2.0 * pressure_oversampling + 0.5 if pressure_oversampling else 0.0
    return round((1.0 + 2.0 * temperature_oversampling + pressure_ms) * 1e6)


def adc_resolution_bits(oversampling: int, filter_on: bool) -> int:
    """DS 3.3.1-3.3.3: 16 bits at x1, one more per doubling; 20 bits whenever the IIR filter is on."""
    return 20 if filter_on else 15 + oversampling.bit_length()
