"""Driving events from vehicle-frame acceleration: harsh braking, harsh acceleration, harsh cornering, bumps.

Each kind is a hysteresis detector (hysteresis.py) on one signal in g: -longitudinal for braking, +longitudinal for
acceleration, +/-lateral for left/right corners (all low-passed), and |vertical - 1 g| for bumps (unfiltered: a
pothole is a 5-17 Hz spike, the same band as road vibration, so a low-pass would remove the bump itself; the bump
threshold sits far above vibration instead). Thresholds per vehicle class are data (VEHICLE_CLASSES); the numbers and
where they come from are in docs/analytics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.hysteresis import HysteresisDetector, Run

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HARSH_KINDS = ("harsh_brake", "harsh_acceleration", "harsh_corner_left", "harsh_corner_right")
DRIVING_EVENT_KINDS = (*HARSH_KINDS, "bump")


@dataclass(frozen=True, kw_only=True)
class EventThresholds:
    """Per vehicle class. Enter at the threshold, leave below threshold * hysteresis; shorter runs are dropped."""

    harsh_brake_g: float = 0.35
    harsh_acceleration_g: float = 0.35
    harsh_corner_g: float = 0.35
    bump_g: float = 0.3  # |vertical specific force - 1 g|
    hysteresis: float = 0.8
    bump_hysteresis: float = 0.5
    min_duration_ms: int = 200
    bump_min_duration_ms: int = 0  # one sample over the threshold is a bump; it lasts 50-200 ms in all
    merge_gap_ms: int = 150  # a dip this short (ABS cycling, a bump in a corner) does not split an event
    bump_merge_gap_ms: int = 300  # a pothole's dip and kick are one bump

    def __post_init__(self) -> None:
        levels = (self.harsh_brake_g, self.harsh_acceleration_g, self.harsh_corner_g, self.bump_g)
        if min(levels) <= 0.0:
            raise ValueError(f"event thresholds must be positive g values, got {levels}")
        if not (0.0 < self.hysteresis <= 1.0 and 0.0 < self.bump_hysteresis <= 1.0):
            raise ValueError("hysteresis is the fraction of the threshold an event leaves at: pass a value in (0, 1]")


# Light vehicles reach higher g in everyday driving than loaded vans; trucks cannot brake or corner as hard, and
# a given g is riskier for them (rollover, load shift), so their thresholds sit lower. See docs/analytics.md.
VEHICLE_CLASSES: dict[str, EventThresholds] = {
    "car": EventThresholds(harsh_brake_g=0.40, harsh_acceleration_g=0.38, harsh_corner_g=0.42),
    "van": EventThresholds(),
    "truck": EventThresholds(harsh_brake_g=0.25, harsh_acceleration_g=0.20, harsh_corner_g=0.22, min_duration_ms=300),
}
DEFAULT_VEHICLE_CLASS = "van"


def thresholds_for(vehicle_class: str) -> EventThresholds:
    try:
        return VEHICLE_CLASSES[vehicle_class]
    except KeyError:
        raise ValueError(
            f"unknown vehicle class {vehicle_class!r}; use one of {sorted(VEHICLE_CLASSES)} or pass EventThresholds"
        ) from None


@dataclass(frozen=True, kw_only=True)
class DrivingEvent:
    kind: str  # one of DRIVING_EVENT_KINDS
    start_us: int  # first sample over the threshold (UTC microseconds)
    end_us: int  # one sample period after the last sample over threshold * hysteresis
    peak_g: float  # largest magnitude of the event's signal, in g
    duration_ms: int
    recovered: bool = False  # found before the mounting was calibrated and classified afterwards


def _event(kind: str, run: Run, *, recovered: bool = False) -> DrivingEvent:
    return DrivingEvent(
        kind=kind,
        start_us=run.start_us,
        end_us=run.end_us,
        peak_g=round(run.peak, 4),
        duration_ms=(run.end_us - run.start_us) // 1000,
        recovered=recovered,
    )


def _detector(level_g: float, hysteresis: float, min_duration_ms: int, merge_gap_ms: int) -> HysteresisDetector:
    return HysteresisDetector(
        enter=level_g,
        exit_level=level_g * hysteresis,
        min_duration_us=min_duration_ms * 1000,
        merge_gap_us=merge_gap_ms * 1000,
    )


class DrivingEventDetector:
    """The five detectors of one vehicle, fed vehicle-frame signals in g, batch after batch."""

    def __init__(self, thresholds: EventThresholds) -> None:
        t = thresholds
        self.thresholds = t
        self._horizontal = {
            kind: _detector(level, t.hysteresis, t.min_duration_ms, t.merge_gap_ms)
            for kind, level in (
                ("harsh_brake", t.harsh_brake_g),
                ("harsh_acceleration", t.harsh_acceleration_g),
                ("harsh_corner_left", t.harsh_corner_g),
                ("harsh_corner_right", t.harsh_corner_g),
            )
        }
        self._bump = _detector(t.bump_g, t.bump_hysteresis, t.bump_min_duration_ms, t.bump_merge_gap_ms)

    @property
    def horizontal_open(self) -> bool:
        return any(d.is_open for d in self._horizontal.values())

    def push_horizontal(
        self, t_us: IntArray, longitudinal_g: FloatArray, lateral_g: FloatArray, period_us: int
    ) -> list[DrivingEvent]:
        signals = {
            "harsh_brake": -longitudinal_g,
            "harsh_acceleration": longitudinal_g,
            "harsh_corner_left": lateral_g,
            "harsh_corner_right": -lateral_g,
        }
        return [
            _event(kind, run)
            for kind, detector in self._horizontal.items()
            for run in detector.push(t_us, signals[kind], period_us)
        ]

    def push_vertical(self, t_us: IntArray, vertical_dynamic_g: FloatArray, period_us: int) -> list[DrivingEvent]:
        return [_event("bump", run) for run in self._bump.push(t_us, np.abs(vertical_dynamic_g), period_us)]

    def close(self) -> list[DrivingEvent]:
        """A data gap: end what is open at its last sample rather than bridge the gap."""
        events = [_event(kind, run) for kind, detector in self._horizontal.items() for run in detector.close()]
        return events + [_event("bump", run) for run in self._bump.close()]


class PrecalibrationCandidates:
    """Until the mounting is known, harsh horizontal events are caught without knowing their direction: a run of
    |specific force - gravity| (horizontal part once "up" is known) over the lowest harsh threshold, remembered with
    the 3-D sensor-frame acceleration at its peak. Once calibrated, each is rotated, given its kind by its dominant
    axis, and kept if it clears that kind's threshold. At most `capacity` are kept (oldest dropped, counted)."""

    def __init__(self, thresholds: EventThresholds, capacity: int = 16) -> None:
        lowest_g = min(thresholds.harsh_brake_g, thresholds.harsh_acceleration_g, thresholds.harsh_corner_g)
        self._detector = _detector(lowest_g, thresholds.hysteresis, thresholds.min_duration_ms, thresholds.merge_gap_ms)
        self._thresholds = thresholds
        self._capacity = capacity
        self._runs: list[Run] = []
        self.dropped = 0

    @property
    def is_open(self) -> bool:
        return self._detector.is_open

    def __len__(self) -> int:
        return len(self._runs)

    def push(
        self,
        t_us: IntArray,
        accel_m_s2: FloatArray,
        gravity_m_s2: FloatArray,
        up: FloatArray | None,
        period_us: int,
    ) -> None:
        dynamic = accel_m_s2 - gravity_m_s2
        if up is not None:
            dynamic = dynamic - np.outer(dynamic @ up, up)
        magnitude_g = np.sqrt(np.einsum("ij,ij->i", dynamic, dynamic)) / math.sqrt(float(gravity_m_s2 @ gravity_m_s2))
        self._keep(self._detector.push(t_us, magnitude_g, period_us, payload=accel_m_s2))

    def close(self) -> None:
        self._keep(self._detector.close())

    def _keep(self, runs: list[Run]) -> None:
        self._runs += runs
        if len(self._runs) > self._capacity:
            self.dropped += len(self._runs) - self._capacity
            self._runs = self._runs[-self._capacity :]

    def classify(self, vehicle_from_sensor: FloatArray, gravity_m_s2: float) -> list[DrivingEvent]:
        """Turn the remembered runs into events in the now-known frame, and forget them."""
        t = self._thresholds
        events = []
        for run in self._runs:
            forward_m_s2, left_m_s2, _ = vehicle_from_sensor @ np.asarray(run.peak_payload)
            longitudinal_g, lateral_g = forward_m_s2 / gravity_m_s2, left_m_s2 / gravity_m_s2
            if abs(longitudinal_g) >= abs(lateral_g):
                kind = "harsh_acceleration" if longitudinal_g > 0 else "harsh_brake"
                level, peak_g = (t.harsh_acceleration_g if longitudinal_g > 0 else t.harsh_brake_g), abs(longitudinal_g)
            else:
                kind = "harsh_corner_left" if lateral_g > 0 else "harsh_corner_right"
                level, peak_g = t.harsh_corner_g, abs(lateral_g)
            if peak_g >= level:
                events.append(_event(kind, Run(run.start_us, run.end_us, peak_g), recovered=True))
        self._runs = []
        return events
