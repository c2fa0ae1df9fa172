"""The cabin and the road's height: altitude from barometric pressure, and temperature excursions.

Altitude uses the international standard atmosphere's barometric formula (troposphere). The absolute value depends
on the day's sea-level pressure, which we do not know, so only altitude *changes* are reported; weather moves
pressure by ~1 hPa an hour (~8 m), negligible within a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.hysteresis import HysteresisDetector, PackedRun, Run, push_keeping_open
from fleetsense.cloud.analytics.state_versions import Piece

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ISA_SEA_LEVEL_PA = 101_325.0
_ISA_EXPONENT = 5.25588  # g * M / (R * L) for the standard lapse rate L = 6.5 K/km
_ISA_PER_M = 2.25577e-5  # L / T0 (1/m)


def altitude_m(pressure_pa: FloatArray, sea_level_pa: float = ISA_SEA_LEVEL_PA) -> FloatArray:
    """Inverse of p = p0 * (1 - 2.25577e-5 h) ** 5.25588: about +8.3 m per -100 Pa near sea level."""
    return np.asarray((1.0 - np.power(pressure_pa / sea_level_pa, 1.0 / _ISA_EXPONENT)) / _ISA_PER_M)


@dataclass(frozen=True, kw_only=True)
class EnvironmentSettings:
    # A cabin, or goods in it, at risk: above 35 C (a parked van in the sun, heat stress, chocolate melting) or
    # below 2 C (frost-sensitive goods). Set per fleet; a refrigerated body would use its own band.
    high_c: float = 35.0
    low_c: float = 2.0
    hysteresis_c: float = 1.0  # back within the band by this much ends the excursion (no flapping at the edge)
    min_duration_s: float = 120.0  # shorter is a door left open, not an excursion
    bridge_s: float = 60.0  # within-band or missing data shorter than this does not split an excursion


# The event kind (fleetsense.event_kinds) of an excursion on each side of the band.
EXCURSION_KINDS: dict[str, str] = {"high": "temperature_excursion_high", "low": "temperature_excursion_low"}


@dataclass(frozen=True, kw_only=True)
class EnvironmentEvent:
    key: str  # its event kind, as stored: one of EXCURSION_KINDS' values
    direction: str  # "high" or "low"
    start_us: int
    end_us: int
    peak_c: float  # hottest (high) or coldest (low) reading
    bound_c: float  # the bound that was crossed
    duration_s: float


class ExcursionsState(NamedTuple):
    """TemperatureExcursions.state()."""

    runs: tuple[tuple[str, PackedRun], ...]  # ("high" | "low", hysteresis.RUN packed) of each open excursion


EXCURSIONS = Piece("temperature excursions", ExcursionsState, version=1)


class TemperatureExcursions:
    """The high and low bands' hysteresis detectors; like DrivingEventDetector's, one exists only while its
    excursion is open (a closed detector behaves exactly like a new one), so the state is usually empty."""

    def __init__(self, settings: EnvironmentSettings | None = None) -> None:
        self.settings = settings or EnvironmentSettings()
        self._open: dict[str, HysteresisDetector] = {}

    def state(self) -> ExcursionsState:
        return ExcursionsState(
            tuple((side, run) for side, detector in self._open.items() if (run := detector.packed()) is not None)
        )

    def restore(self, state: ExcursionsState) -> None:
        self._open = {}
        for side, run in state.runs:
            detector = self._open[side] = self._detector(side)
            detector.restore_packed(run)

    def push(self, t_us: IntArray, temperature_c: FloatArray, period_us: int) -> list[EnvironmentEvent]:
        if t_us.size == 0:
            return []
        s = self.settings
        events = []
        # The low side runs on -temperature, so "above" means colder.
        if "high" in self._open or not float(temperature_c.max()) < s.high_c - s.hysteresis_c:
            events += [self._event("high", run) for run in self._push("high", t_us, temperature_c, period_us)]
        if "low" in self._open or not -float(temperature_c.min()) < -s.low_c - s.hysteresis_c:
            events += [self._event("low", run) for run in self._push("low", t_us, -temperature_c, period_us)]
        return events

    def _detector(self, side: str) -> HysteresisDetector:
        s = self.settings
        bridge_us, min_us = int(s.bridge_s * 1e6), int(s.min_duration_s * 1e6)
        if side == "high":
            return HysteresisDetector(
                enter=s.high_c, exit_level=s.high_c - s.hysteresis_c, min_duration_us=min_us, merge_gap_us=bridge_us
            )
        return HysteresisDetector(
            enter=-s.low_c, exit_level=-s.low_c - s.hysteresis_c, min_duration_us=min_us, merge_gap_us=bridge_us
        )

    def _push(self, side: str, t_us: IntArray, signal: FloatArray, period_us: int) -> list[Run]:
        return push_keeping_open(self._open, side, lambda: self._detector(side), t_us, signal, period_us)

    def _event(self, direction: str, run: Run) -> EnvironmentEvent:
        high = direction == "high"
        return EnvironmentEvent(
            key=EXCURSION_KINDS[direction],
            direction=direction,
            start_us=run.start_us,
            end_us=run.end_us,
            peak_c=round(run.peak if high else -run.peak, 3),
            bound_c=self.settings.high_c if high else self.settings.low_c,
            duration_s=(run.end_us - run.start_us) / 1e6,
        )
