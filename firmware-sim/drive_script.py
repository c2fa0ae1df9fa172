"""Drive scripts: a vehicle's manoeuvres as segments whose speed and acceleration have closed forms.

Each manoeuvre's acceleration is a plateau between raised-cosine ramps (jerk-limited, so detectors see realistic
onsets and durations); it integrates exactly, so the vehicle model can evaluate any time in any order and the
ground truth is read off the very numbers the signal is made from. Scripts are written with the builder, or drawn
at random for fleet simulation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal, Self

from fleetsense.sim.ground_truth import Axis, GroundTruthLog, GroundTruthRecord, ManoeuvreKind
from fleetsense.sim.physics import STANDARD_GRAVITY_M_S2

# Ordinary driving stays below these and harsh manoeuvres at or above HARSH_MIN_G, so a detector threshold
# anywhere between them separates the two without ambiguity.
NORMAL_LONGITUDINAL_MAX_G = 0.25
NORMAL_LATERAL_MAX_G = 0.3
HARSH_MIN_G = 0.4
MAX_SPEED_M_S = 45.0
MIN_CORNER_SPEED_M_S = 5.0  # slower and a 0.5 g corner would need a radius under 5 m

Direction = Literal["left", "right"]


class DriveScriptError(ValueError):
    """A manoeuvre the builder cannot script as asked: the message says why and what to ask for instead."""


def _ramp_area(u: float, ramp_s: float) -> float:
    """Integral of the unit raised-cosine ramp over [0, u], u <= ramp_s."""
    return 0.5 * u - ramp_s / (2 * math.pi) * math.sin(math.pi * u / ramp_s)


def _ramp_moment(u: float, ramp_s: float) -> float:
    """Double integral of the unit raised-cosine ramp over [0, u], u <= ramp_s."""
    return 0.25 * u * u + ramp_s * ramp_s / (2 * math.pi**2) * (math.cos(math.pi * u / ramp_s) - 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """One manoeuvre. For longitudinal/lateral axes the acceleration is `peak_m_s2` times a unit plateau with
    raised-cosine ramps of `ramp_s`; for a bump it is one sine cycle (dip then kick, like a pothole)."""

    kind: ManoeuvreKind
    axis: Axis
    start_s: float
    duration_s: float
    start_speed_m_s: float
    end_speed_m_s: float
    start_distance_m: float
    peak_m_s2: float = 0.0  # signed: negative for braking and right turns
    ramp_s: float = 1.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def shape(self, tau_s: float) -> float:
        if self.axis == "vertical":
            return -math.sin(2 * math.pi * tau_s / self.duration_s)
        ramp_s, duration_s = self.ramp_s, self.duration_s
        if tau_s < ramp_s:
            return 0.5 - 0.5 * math.cos(math.pi * tau_s / ramp_s)
        if tau_s > duration_s - ramp_s:
            return 0.5 - 0.5 * math.cos(math.pi * (duration_s - tau_s) / ramp_s)
        return 1.0

    def kinematics(self, tau_s: float) -> tuple[float, float, float, float]:
        """(speed_m_s, longitudinal_m_s2, lateral_m_s2, vertical_m_s2) tau_s into the segment."""
        axis = self.axis
        if axis == "none":
            return self.start_speed_m_s, 0.0, 0.0, 0.0
        accel_m_s2 = self.peak_m_s2 * self.shape(tau_s)
        if axis == "longitudinal":
            speed_m_s = self.start_speed_m_s + self.peak_m_s2 * self._unit_area(tau_s)
            return max(0.0, speed_m_s), accel_m_s2, 0.0, 0.0  # max(): rounding must never show a reversing van
        if axis == "lateral":
            return self.start_speed_m_s, 0.0, accel_m_s2, 0.0
        return self.start_speed_m_s, 0.0, 0.0, accel_m_s2

    def distance_m(self, tau_s: float) -> float:
        """Distance along the road since the start of the drive."""
        travelled_m = self.start_speed_m_s * tau_s
        if self.axis == "longitudinal":
            travelled_m += self.peak_m_s2 * self._unit_moment(tau_s)
        return self.start_distance_m + travelled_m

    def _unit_area(self, tau_s: float) -> float:
        ramp_s, duration_s = self.ramp_s, self.duration_s
        if tau_s < ramp_s:
            return _ramp_area(tau_s, ramp_s)
        if tau_s > duration_s - ramp_s:
            return (duration_s - ramp_s) - _ramp_area(duration_s - tau_s, ramp_s)
        return 0.5 * ramp_s + (tau_s - ramp_s)

    def _unit_moment(self, tau_s: float) -> float:
        ramp_s, duration_s = self.ramp_s, self.duration_s
        if tau_s < ramp_s:
            return _ramp_moment(tau_s, ramp_s)
        plateau_end_s = duration_s - ramp_s
        moment_at_ramp = _ramp_moment(ramp_s, ramp_s)
        if tau_s <= plateau_end_s:
            return moment_at_ramp + 0.5 * ramp_s * (tau_s - ramp_s) + 0.5 * (tau_s - ramp_s) ** 2
        # The falling ramp mirrors the rising one: integrate backwards from the end.
        area_total = duration_s - ramp_s
        at_plateau_end = moment_at_ramp + 0.5 * ramp_s * (plateau_end_s - ramp_s) + 0.5 * (plateau_end_s - ramp_s) ** 2
        moment_total = at_plateau_end + area_total * ramp_s - _ramp_moment(ramp_s, ramp_s)
        u = duration_s - tau_s
        return moment_total - area_total * u + _ramp_moment(u, ramp_s)

    def record(self) -> GroundTruthRecord:
        return GroundTruthRecord(
            kind=self.kind,
            start_s=self.start_s,
            end_s=self.end_s,
            peak_g=abs(self.peak_m_s2) / STANDARD_GRAVITY_M_S2,
            axis=self.axis,
            start_speed_m_s=self.start_speed_m_s,
            end_speed_m_s=self.end_speed_m_s,
        )


@dataclass(frozen=True)
class Hill:
    amplitude_m: float
    wavelength_m: float
    phase_rad: float = 0.0


@dataclass(frozen=True)
class Terrain:
    """Altitude as a function of distance along the road, so a parked vehicle's altitude (and pressure) holds."""

    base_altitude_m: float = 0.0
    hills: tuple[Hill, ...] = ()

    def profile(self, distance_m: float) -> tuple[float, float, float]:
        """(altitude_m, grade, curvature_per_m): grade is d(altitude)/d(distance) = sine of the road's pitch."""
        altitude_m, grade, curvature_per_m = self.base_altitude_m, 0.0, 0.0
        for hill in self.hills:
            k = 2 * math.pi / hill.wavelength_m
            phase = k * distance_m + hill.phase_rad
            s, c = math.sin(phase), math.cos(phase)
            altitude_m += hill.amplitude_m * s
            grade += hill.amplitude_m * k * c
            curvature_per_m -= hill.amplitude_m * k * k * s
        return altitude_m, grade, curvature_per_m

    @classmethod
    def random(cls, rng: random.Random, *, max_grade: float = 0.04) -> Terrain:
        hills = []
        for _ in range(3):
            wavelength_m = rng.uniform(600.0, 6000.0)
            amplitude_m = rng.uniform(0.3, 1.0) * max_grade / 3 * wavelength_m / (2 * math.pi)
            hills.append(Hill(amplitude_m, wavelength_m, rng.uniform(0.0, 2 * math.pi)))
        return cls(rng.uniform(0.0, 600.0), tuple(hills))


@dataclass(frozen=True)
class DriveScript:
    segments: tuple[Segment, ...]
    terrain: Terrain = field(default_factory=Terrain)

    @staticmethod
    def builder(*, terrain: Terrain | None = None, start_speed_m_s: float = 0.0) -> DriveScriptBuilder:
        return DriveScriptBuilder(terrain=terrain or Terrain(), start_speed_m_s=start_speed_m_s)

    @staticmethod
    def random(seed: int, duration_s: float, rates: EventRates | None = None) -> DriveScript:
        return random_drive(seed, duration_s, rates or EventRates())

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0

    def ground_truth(self) -> GroundTruthLog:
        return GroundTruthLog(tuple(s.record() for s in self.segments))
