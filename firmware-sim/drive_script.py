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

from fleetsense.quantities import STANDARD_GRAVITY_M_S2

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
            duration_s=self.duration_s,
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

    def __post_init__(self) -> None:
        steepest = sum(abs(h.amplitude_m) * 2 * math.pi / h.wavelength_m for h in self.hills)
        if steepest > 0.3:
            raise DriveScriptError(f"hills reach a {steepest:.0%} grade; roads stay under 30 %, use longer wavelengths")

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


def _check_peak_g(what: str, peak_g: float, low_g: float, high_g: float) -> None:
    if not low_g <= peak_g < high_g:
        raise DriveScriptError(
            f"{what} peak_g={peak_g} is outside [{low_g}, {high_g}) g; ordinary manoeuvres stay "
            f"below {NORMAL_LONGITUDINAL_MAX_G} g longitudinal / {NORMAL_LATERAL_MAX_G} g lateral, "
            f"harsh ones reach at least {HARSH_MIN_G} g, so use the other method"
        )


def _check_one_of(duration_s: float | None, to_speed_m_s: float | None) -> None:
    if duration_s is not None and to_speed_m_s is not None:
        raise DriveScriptError("give duration_s or to_speed_m_s, not both: the peak_g fixes one from the other")


class DriveScriptBuilder:
    """Appends manoeuvres one after another, each starting at the speed the previous one ended with. A method that
    needs another speed (cruise at a speed, stop while moving) first inserts an ordinary accelerate/decelerate,
    which the ground truth records like any other manoeuvre."""

    def __init__(self, *, terrain: Terrain, start_speed_m_s: float = 0.0) -> None:
        self._check_speed(start_speed_m_s)
        self._terrain = terrain
        self._segments: list[Segment] = []
        self._time_s = 0.0
        self._speed_m_s = start_speed_m_s
        self._distance_m = 0.0

    @property
    def time_s(self) -> float:
        return self._time_s

    @property
    def speed_m_s(self) -> float:
        return self._speed_m_s

    def cruise(self, duration_s: float, speed_m_s: float | None = None) -> Self:
        if speed_m_s is not None:
            self._change_speed(speed_m_s)
        if self._speed_m_s <= 0.0:
            raise DriveScriptError("cruise needs a speed: pass speed_m_s, or use stop(duration_s) to stand still")
        return self._append("cruise", "none", duration_s, 0.0, 1.0, self._speed_m_s)

    def accelerate(self, to_speed_m_s: float, *, peak_g: float = 0.15, ramp_s: float = 1.0) -> Self:
        _check_peak_g("accelerate", peak_g, 0.01, NORMAL_LONGITUDINAL_MAX_G)
        if to_speed_m_s <= self._speed_m_s:
            raise DriveScriptError(f"accelerate to {to_speed_m_s} m/s from {self._speed_m_s} m/s: use decelerate")
        return self._speed_change("accelerate", to_speed_m_s, peak_g, ramp_s)

    def decelerate(self, to_speed_m_s: float, *, peak_g: float = 0.15, ramp_s: float = 1.0) -> Self:
        _check_peak_g("decelerate", peak_g, 0.01, NORMAL_LONGITUDINAL_MAX_G)
        if to_speed_m_s >= self._speed_m_s:
            raise DriveScriptError(f"decelerate to {to_speed_m_s} m/s from {self._speed_m_s} m/s: use accelerate")
        return self._speed_change("decelerate", to_speed_m_s, peak_g, ramp_s)

    def harsh_acceleration(
        self,
        peak_g: float = 0.5,
        *,
        duration_s: float | None = None,
        to_speed_m_s: float | None = None,
        ramp_s: float = 0.35,
    ) -> Self:
        """Give duration_s (default 2 s) or to_speed_m_s; the other follows from the plateau at peak_g."""
        _check_peak_g("harsh_acceleration", peak_g, HARSH_MIN_G, 1.2)
        _check_one_of(duration_s, to_speed_m_s)
        if to_speed_m_s is None:
            hold_s = self._hold_s(2.0 if duration_s is None else duration_s, ramp_s)
            to_speed_m_s = self._speed_m_s + peak_g * STANDARD_GRAVITY_M_S2 * hold_s
        if to_speed_m_s <= self._speed_m_s:
            raise DriveScriptError(f"harsh_acceleration must end faster than {self._speed_m_s} m/s")
        return self._speed_change("harsh_acceleration", to_speed_m_s, peak_g, ramp_s)

    def harsh_brake(
        self,
        peak_g: float = 0.6,
        *,
        duration_s: float | None = None,
        to_speed_m_s: float | None = None,
        ramp_s: float = 0.35,
    ) -> Self:
        """Give duration_s or to_speed_m_s (default: brake to a standstill)."""
        _check_peak_g("harsh_brake", peak_g, HARSH_MIN_G, 1.2)
        _check_one_of(duration_s, to_speed_m_s)
        if duration_s is not None:
            to_speed_m_s = self._speed_m_s - peak_g * STANDARD_GRAVITY_M_S2 * self._hold_s(duration_s, ramp_s)
            if to_speed_m_s < -1e-9:
                raise DriveScriptError(
                    f"braking {duration_s} s at {peak_g} g from {self._speed_m_s} m/s would "
                    f"reverse the vehicle; shorten duration_s or pass to_speed_m_s=0"
                )
        to_speed_m_s = 0.0 if to_speed_m_s is None else max(0.0, to_speed_m_s)
        if to_speed_m_s >= self._speed_m_s:
            raise DriveScriptError(f"harsh_brake must end slower than {self._speed_m_s} m/s; accelerate first")
        return self._speed_change("harsh_brake", to_speed_m_s, peak_g, ramp_s)

    def corner(
        self, direction: Direction, *, peak_g: float = 0.15, duration_s: float = 6.0, ramp_s: float = 1.5
    ) -> Self:
        _check_peak_g("corner", peak_g, 0.01, NORMAL_LATERAL_MAX_G)
        return self._corner("corner_left" if direction == "left" else "corner_right", peak_g, duration_s, ramp_s)

    def sharp_corner(
        self, direction: Direction, *, peak_g: float = 0.55, duration_s: float = 3.0, ramp_s: float = 0.6
    ) -> Self:
        _check_peak_g("sharp_corner", peak_g, HARSH_MIN_G, 1.2)
        kind: ManoeuvreKind = "harsh_corner_left" if direction == "left" else "harsh_corner_right"
        return self._corner(kind, peak_g, duration_s, ramp_s)

    def stop(self, duration_s: float) -> Self:
        if self._speed_m_s > 0.0:
            self.decelerate(0.0)
        return self._append("stop", "none", duration_s, 0.0, 1.0, 0.0)

    def bump(self, peak_g: float = 1.0, *, duration_s: float = 0.12) -> Self:
        if self._speed_m_s <= 0.0:
            raise DriveScriptError("a bump needs the vehicle moving; cruise or accelerate first")
        _check_peak_g("bump", peak_g, 0.05, 3.0)
        return self._append("bump", "vertical", duration_s, peak_g * STANDARD_GRAVITY_M_S2, 1.0, self._speed_m_s)

    def build(self) -> DriveScript:
        if not self._segments:
            raise DriveScriptError("an empty drive script: add at least one manoeuvre")
        return DriveScript(tuple(self._segments), self._terrain)

    def _change_speed(self, to_speed_m_s: float) -> None:
        if to_speed_m_s > self._speed_m_s:
            self.accelerate(to_speed_m_s)
        elif to_speed_m_s < self._speed_m_s:
            self.decelerate(to_speed_m_s)

    def _corner(self, kind: ManoeuvreKind, peak_g: float, duration_s: float, ramp_s: float) -> Self:
        if self._speed_m_s < MIN_CORNER_SPEED_M_S:
            raise DriveScriptError(
                f"{kind} at {self._speed_m_s} m/s: corners need at least {MIN_CORNER_SPEED_M_S} m/s, accelerate first"
            )
        self._hold_s(duration_s, ramp_s)
        sign = 1.0 if kind.endswith("left") else -1.0  # y points left, so a left turn pushes +y
        return self._append(kind, "lateral", duration_s, sign * peak_g * STANDARD_GRAVITY_M_S2, ramp_s, self._speed_m_s)

    def _speed_change(self, kind: ManoeuvreKind, to_speed_m_s: float, peak_g: float, ramp_s: float) -> Self:
        self._check_speed(to_speed_m_s)
        change_m_s = to_speed_m_s - self._speed_m_s
        hold_s = abs(change_m_s) / (peak_g * STANDARD_GRAVITY_M_S2)  # duration minus one ramp
        ramp_s = min(ramp_s, hold_s)  # a small change keeps its peak with steeper ramps rather than a lower peak
        peak_m_s2 = math.copysign(peak_g * STANDARD_GRAVITY_M_S2, change_m_s)
        return self._append(kind, "longitudinal", hold_s + ramp_s, peak_m_s2, ramp_s, to_speed_m_s)

    def _append(
        self, kind: ManoeuvreKind, axis: Axis, duration_s: float, peak_m_s2: float, ramp_s: float, end_speed_m_s: float
    ) -> Self:
        if not duration_s > 0.0 or ramp_s <= 0.0:
            raise DriveScriptError(f"{kind}: duration_s ({duration_s}) and ramp_s ({ramp_s}) must be positive")
        segment = Segment(
            kind=kind,
            axis=axis,
            start_s=self._time_s,
            duration_s=duration_s,
            start_speed_m_s=self._speed_m_s,
            end_speed_m_s=end_speed_m_s,
            start_distance_m=self._distance_m,
            peak_m_s2=peak_m_s2,
            ramp_s=ramp_s,
        )
        self._segments.append(segment)
        self._time_s, self._speed_m_s = segment.end_s, end_speed_m_s
        self._distance_m = segment.distance_m(duration_s)
        return self

    @staticmethod
    def _hold_s(duration_s: float, ramp_s: float) -> float:
        if duration_s < 2 * ramp_s:
            raise DriveScriptError(
                f"duration_s={duration_s} is shorter than its two ramps ({2 * ramp_s} s); "
                "lengthen it or pass a smaller ramp_s"
            )
        return duration_s - ramp_s

    @staticmethod
    def _check_speed(speed_m_s: float) -> None:
        if not 0.0 <= speed_m_s <= MAX_SPEED_M_S:
            raise DriveScriptError(f"speed {speed_m_s} m/s is outside [0, {MAX_SPEED_M_S}] m/s")


@dataclass(frozen=True, kw_only=True)
class EventRates:
    """Expected events per hour of drive time; the defaults are an average urban delivery driver."""

    harsh_brake_per_h: float = 2.0
    harsh_acceleration_per_h: float = 1.5
    sharp_corner_per_h: float = 1.5
    bump_per_h: float = 6.0
    parking_per_h: float = 0.3  # 5-30 min in the sun: the cabin heats up


def _normal_g(rng: random.Random) -> float:
    return rng.uniform(0.08, 0.2)  # leaves room for a 4 % grade under the 0.25 g ordinary limit


def _speed_to(b: DriveScriptBuilder, rng: random.Random, low_m_s: float, high_m_s: float) -> None:
    if not low_m_s <= b.speed_m_s <= high_m_s:
        target_m_s = rng.uniform(low_m_s, high_m_s)
        if target_m_s > b.speed_m_s:
            b.accelerate(target_m_s, peak_g=_normal_g(rng))
        elif target_m_s > 0.0:
            b.decelerate(target_m_s, peak_g=_normal_g(rng))
        else:
            b.decelerate(0.0, peak_g=_normal_g(rng)).stop(rng.uniform(2.0, 20.0))


def _corner_duration_s(b: DriveScriptBuilder, peak_g: float, heading_deg: float) -> float:
    ramp_s = 0.6 if peak_g >= HARSH_MIN_G else 1.5
    # heading change = integral of a_lat / v, so the plateau length follows from the turn we want
    return math.radians(heading_deg) * b.speed_m_s / (peak_g * STANDARD_GRAVITY_M_S2) + ramp_s


def _routine(b: DriveScriptBuilder, rng: random.Random) -> None:
    if b.speed_m_s == 0.0:
        b.accelerate(rng.uniform(8.0, 20.0), peak_g=_normal_g(rng))
        return
    choice = rng.random()
    if choice < 0.4:
        b.cruise(rng.uniform(10.0, 90.0))
    elif choice < 0.65:
        _speed_to(b, rng, 6.0, 33.0)
        b.cruise(rng.uniform(5.0, 30.0))
    elif choice < 0.85:
        _speed_to(b, rng, 6.0, 16.0)
        peak_g = rng.uniform(0.08, 0.25)
        duration_s = _corner_duration_s(b, peak_g, rng.uniform(30.0, 90.0))
        b.corner(rng.choice(("left", "right")), peak_g=peak_g, duration_s=max(duration_s, 3.0))
    else:
        b.decelerate(0.0, peak_g=_normal_g(rng)).stop(rng.uniform(5.0, 60.0))


def _harsh_event(name: str, b: DriveScriptBuilder, rng: random.Random) -> None:
    if name == "harsh_brake":
        _speed_to(b, rng, 8.0, 28.0)
        peak_g = rng.uniform(0.45, 0.8)
        to_speed_m_s = 0.0 if rng.random() < 0.5 else b.speed_m_s * rng.uniform(0.2, 0.6)
        # at least 0.8 s above half the peak, so a detector's minimum duration never decides what the truth is
        to_speed_m_s = max(0.0, min(to_speed_m_s, b.speed_m_s - 0.8 * peak_g * STANDARD_GRAVITY_M_S2))
        b.harsh_brake(peak_g, to_speed_m_s=to_speed_m_s)
        if b.speed_m_s == 0.0:
            b.stop(rng.uniform(3.0, 30.0))
    elif name == "harsh_acceleration":
        _speed_to(b, rng, 0.0, 10.0)
        b.harsh_acceleration(rng.uniform(0.45, 0.6), duration_s=rng.uniform(1.2, 3.0))
    elif name == "sharp_corner":
        _speed_to(b, rng, 8.0, 14.0)
        peak_g = rng.uniform(0.5, 0.7)
        duration_s = _corner_duration_s(b, peak_g, rng.uniform(60.0, 120.0))
        b.sharp_corner(rng.choice(("left", "right")), peak_g=peak_g, duration_s=duration_s)
    elif name == "bump":
        _speed_to(b, rng, 5.0, 25.0)
        b.bump(rng.uniform(0.4, 1.5), duration_s=rng.uniform(0.06, 0.2))
    else:  # parking
        b.stop(rng.uniform(300.0, 1800.0))


def random_drive(seed: int, duration_s: float, rates: EventRates | None = None) -> DriveScript:
    """A drive of at least duration_s: ordinary driving with events at Poisson times (rates per hour). An event
    falls due at a random time and happens at the next manoeuvre boundary, after whatever speed change it needs."""
    rates = rates or EventRates()
    rng = random.Random(f"fleetsense-drive:{seed}")
    builder = DriveScript.builder(terrain=Terrain.random(rng))
    per_h = {
        "harsh_brake": rates.harsh_brake_per_h,
        "harsh_acceleration": rates.harsh_acceleration_per_h,
        "sharp_corner": rates.sharp_corner_per_h,
        "bump": rates.bump_per_h,
        "parking": rates.parking_per_h,
    }
    due_s = {name: rng.expovariate(rate / 3600.0) for name, rate in per_h.items() if rate > 0.0}
    while builder.time_s < duration_s:
        name = min(due_s, key=lambda n: due_s[n]) if due_s else ""
        if name and due_s[name] <= builder.time_s:
            _harsh_event(name, builder, rng)
            due_s[name] += rng.expovariate(per_h[name] / 3600.0)
        else:
            _routine(builder, rng)
    return builder.build()
