"""Driving events from vehicle-frame acceleration: harsh braking, harsh acceleration, harsh cornering, bumps.

Each kind is a hysteresis detector (hysteresis.py) on one signal in g: -longitudinal for braking, +longitudinal for
acceleration, +/-lateral for left/right corners (all low-passed), and |vertical - 1 g| for bumps (unfiltered: a
pothole is a 5-17 Hz spike, the same band as road vibration, so a low-pass would remove the bump itself; the bump
threshold sits far above vibration instead). Thresholds per vehicle class are data (VEHICLE_CLASSES); the numbers and
where they come from are in docs/analytics.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_type_hints

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.hysteresis import HysteresisDetector, PackedRun, Run, push_keeping_open
from fleetsense.cloud.analytics.state_versions import Piece

from fleetsense.event_kinds import COUNTED_KINDS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The kinds this detector finds are the counted kinds of fleetsense.event_kinds (harsh ones and bumps); DETECTORS
# below says how each is found, and a test holds the two to the same kinds in the same order.
DRIVING_EVENT_KINDS = COUNTED_KINDS


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
        problems = [p for name in THRESHOLD_NAMES if (p := threshold_problem(name, getattr(self, name)))]
        if problems:
            raise ValueError(f"event thresholds out of bounds: {'; '.join(problems)}")


THRESHOLD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EventThresholds))
THRESHOLD_TYPES: dict[str, type] = {name: get_type_hints(EventThresholds)[name] for name in THRESHOLD_NAMES}
# No harsh manoeuvre needs a minimum duration or a merge gap over a minute; the bound keeps a typo (or a value
# in us) from silently turning a detector off, and every duration far inside int64 once in us.
MAX_DURATION_MS = 60_000


def threshold_allowed(name: str) -> str:
    """The values EventThresholds' field `name` allows, by the unit its name ends in (as errors and hints say it)."""
    if name.endswith("_g"):
        return "a positive number of g"
    if name.endswith("hysteresis"):  # the fraction of the threshold an event leaves at
        return "a fraction in (0, 1]"
    if name.endswith("_ms"):
        return f"a whole number of ms, 0..{MAX_DURATION_MS}"
    raise ValueError(f"EventThresholds has no field {name!r}; its fields are {', '.join(THRESHOLD_NAMES)}")


def threshold_problem(name: str, value: float) -> str | None:
    """What is wrong with `value` for EventThresholds' field `name`, or None: the bounds of every threshold,
    declared once (EventThresholds and the job's `thresholds` setting, cloud/stream_settings.py, check by it)."""
    if name.endswith("_g"):  # a detector's level (every level_g of DETECTORS reads one): 0 or NaN finds nothing
        allowed = 0.0 < value < math.inf
    elif name.endswith("hysteresis"):
        allowed = 0.0 < value <= 1.0
    else:
        threshold_allowed(name)  # raises for a name that is no field
        allowed = 0 <= value <= MAX_DURATION_MS and float(value).is_integer()
    return None if allowed else f"{name}={value!r}: use {threshold_allowed(name)}"


@dataclass(frozen=True, kw_only=True)
class KindDetector:
    """How one kind is found: which vehicle-frame signal, which way, and which of EventThresholds' levels it enters
    at (an explicit link, not a naming convention). Vertical detectors use the bump_* timing, the others the shared
    harsh timing (hysteresis, min_duration_ms, merge_gap_ms)."""

    kind: str
    signal: Literal["longitudinal", "lateral", "vertical"]  # vertical: |vertical specific force - 1 g|, unfiltered
    negate: bool  # the detector runs on -signal (braking is negative longitudinal, a right corner negative lateral)
    level_g: Callable[[EventThresholds], float]


# In DRIVING_EVENT_KINDS order.
DETECTORS: tuple[KindDetector, ...] = (
    KindDetector(kind="harsh_brake", signal="longitudinal", negate=True, level_g=lambda t: t.harsh_brake_g),
    KindDetector(
        kind="harsh_acceleration", signal="longitudinal", negate=False, level_g=lambda t: t.harsh_acceleration_g
    ),
    KindDetector(kind="harsh_corner_left", signal="lateral", negate=False, level_g=lambda t: t.harsh_corner_g),
    KindDetector(kind="harsh_corner_right", signal="lateral", negate=True, level_g=lambda t: t.harsh_corner_g),
    KindDetector(kind="bump", signal="vertical", negate=False, level_g=lambda t: t.bump_g),
)
DETECTOR_OF: dict[str, KindDetector] = {detector.kind: detector for detector in DETECTORS}
HORIZONTAL_DETECTORS: tuple[KindDetector, ...] = tuple(d for d in DETECTORS if d.signal != "vertical")


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


# One job's thresholds where they differ from the code's: (class, thresholds) pairs in class order, only the classes
# that differ, so a job that changes nothing has () and its vehicles' configurations stay their class's default.
# A tuple, not a dict: AnalyzerConfig holds it, and is frozen, compared and pickled.
ClassThresholds = tuple[tuple[str, EventThresholds], ...]


def with_overrides(overrides: Mapping[str, Mapping[str, float]]) -> dict[str, EventThresholds]:
    """Every vehicle class's thresholds: the code's (VEHICLE_CLASSES, left as it is) with `overrides` (class ->
    field -> value) applied. ValueError for an unknown class or field, or a value out of its bounds."""
    for vehicle_class, fields in overrides.items():
        thresholds_for(vehicle_class)  # raises for a class that does not exist
        for name in fields:
            threshold_allowed(name)  # raises for a threshold that does not exist
    return {
        name: EventThresholds(**(dataclasses.asdict(thresholds) | dict(overrides[name])))
        if name in overrides
        else thresholds
        for name, thresholds in VEHICLE_CLASSES.items()
    }


def differing(classes: Mapping[str, EventThresholds]) -> ClassThresholds:
    """The classes of `classes` whose thresholds are not the code's, in class order: AnalyzerConfig.class_thresholds."""
    return tuple(
        (name, thresholds) for name, thresholds in sorted(classes.items()) if thresholds != thresholds_for(name)
    )


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


def _levels(thresholds: EventThresholds, kind: str) -> tuple[float, float, int, int]:
    """(threshold g, hysteresis, min duration ms, merge gap ms) of one kind's detector."""
    t, detector = thresholds, DETECTOR_OF[kind]
    if detector.signal == "vertical":
        return detector.level_g(t), t.bump_hysteresis, t.bump_min_duration_ms, t.bump_merge_gap_ms
    return detector.level_g(t), t.hysteresis, t.min_duration_ms, t.merge_gap_ms


# A candidate's kind, once the frame is known: its dominant horizontal signal and whether it was negative.
# The first detector of each direction is the one a candidate becomes (a later kind on the same signal and direction,
# at a higher level, is not told apart without the signal's shape, which a candidate does not keep).
_HORIZONTAL_BY_DIRECTION: dict[tuple[str, bool], KindDetector] = {}
for _kind_detector in HORIZONTAL_DETECTORS:
    _HORIZONTAL_BY_DIRECTION.setdefault((_kind_detector.signal, _kind_detector.negate), _kind_detector)


def _extreme_index(detector: KindDetector) -> int:
    """Where push_horizontal's extremes_g (min, max longitudinal, min, max lateral) hold the detector's peak."""
    return (0 if detector.signal == "longitudinal" else 2) + (0 if detector.negate else 1)


def _lowest_horizontal_g(thresholds: EventThresholds) -> float:
    return min(d.level_g(thresholds) for d in HORIZONTAL_DETECTORS)


def _is_quiet(peak: float, level_g: float, hysteresis: float) -> bool:
    """True when a closed detector would do nothing with a batch whose largest value is `peak` (its own check)."""
    return peak < level_g * hysteresis


class OpenRuns(NamedTuple):
    """DrivingEventDetector.state()."""

    runs: tuple[tuple[str, PackedRun], ...]  # (kind, hysteresis.RUN packed) of each kind with a run open


DRIVING_EVENTS = Piece("driving events", OpenRuns, version=1)


class DrivingEventDetector:
    """The five detectors of one vehicle, fed vehicle-frame signals in g, batch after batch.

    A kind's HysteresisDetector exists only while it has a run open: a closed one behaves exactly like a new one,
    so a quiet batch (most of them) costs one comparison per kind, and a quiet vehicle's state is empty."""

    def __init__(self, thresholds: EventThresholds) -> None:
        self.thresholds = thresholds
        self._open: dict[str, HysteresisDetector] = {}
        # (kind, level g, on longitudinal, negated, which of push_horizontal's extremes_g is its peak) of each
        # horizontal detector: a negated signal's peak is minus the minimum.
        self._horizontal = tuple(
            (d.kind, d.level_g(thresholds), d.signal == "longitudinal", d.negate, _extreme_index(d))
            for d in HORIZONTAL_DETECTORS
        )
        self._bump_g = DETECTOR_OF["bump"].level_g(thresholds)

    @property
    def horizontal_open(self) -> bool:
        return any(DETECTOR_OF[kind].signal != "vertical" for kind in self._open)

    def state(self) -> OpenRuns:
        return OpenRuns(
            tuple((kind, run) for kind, detector in self._open.items() if (run := detector.packed()) is not None)
        )

    @classmethod
    def restored(cls, thresholds: EventThresholds, state: OpenRuns) -> DrivingEventDetector:
        detectors = cls(thresholds)
        for kind, run in state.runs:
            detector = detectors._open[kind] = _detector(*_levels(thresholds, kind))
            detector.restore_packed(run)
        return detectors

    def push_horizontal(
        self,
        t_us: IntArray,
        longitudinal_g: FloatArray,
        lateral_g: FloatArray,
        period_us: int,
        extremes_g: tuple[float, float, float, float] | None = None,
    ) -> list[DrivingEvent]:
        """`extremes_g`: the batch's (min, max) longitudinal then (min, max) lateral, if the caller has them already
        (each detector's quiet check reads its own: the max of the signal it runs on)."""
        if t_us.size == 0:
            return []
        if extremes_g is None:
            extremes_g = (
                float(longitudinal_g.min()),
                float(longitudinal_g.max()),
                float(lateral_g.min()),
                float(lateral_g.max()),
            )
        hysteresis = self.thresholds.hysteresis
        events: list[DrivingEvent] = []
        for kind, level_g, longitudinal, negate, extreme in self._horizontal:
            peak = -extremes_g[extreme] if negate else extremes_g[extreme]
            if kind not in self._open and _is_quiet(peak, level_g, hysteresis):
                continue
            signal = longitudinal_g if longitudinal else lateral_g
            events += [_event(kind, run) for run in self._push(kind, t_us, -signal if negate else signal, period_us)]
        return events

    def push_vertical(self, t_us: IntArray, vertical_dynamic_g: FloatArray, period_us: int) -> list[DrivingEvent]:
        magnitude_g = np.abs(vertical_dynamic_g)
        if "bump" not in self._open:
            hysteresis = self.thresholds.bump_hysteresis
            if magnitude_g.size == 0 or _is_quiet(float(magnitude_g.max()), self._bump_g, hysteresis):
                return []
        return [_event("bump", run) for run in self._push("bump", t_us, magnitude_g, period_us)]

    def close(self) -> list[DrivingEvent]:
        """A data gap: end what is open at its last sample rather than bridge the gap."""
        events = [
            _event(kind, run) for kind in DRIVING_EVENT_KINDS if kind in self._open for run in self._open[kind].close()
        ]
        self._open.clear()
        return events

    def _push(self, kind: str, t_us: IntArray, signal: FloatArray, period_us: int) -> list[Run]:
        return push_keeping_open(
            self._open, kind, lambda: _detector(*_levels(self.thresholds, kind)), t_us, signal, period_us
        )


class CandidatesState(NamedTuple):
    """PrecalibrationCandidates.state()."""

    open_run: PackedRun | None  # hysteresis.RUN packed, None while no run is open
    runs: tuple[tuple[int, int, float, tuple[float, ...]], ...]  # remembered: Run's start_us, end_us, peak, payload
    dropped: int


CANDIDATES = Piece("pre-calibration candidates", CandidatesState, version=1)


class PrecalibrationCandidates:
    """Until the mounting is known, harsh horizontal events are caught without knowing their direction: a run of
    |specific force - gravity| (horizontal part once "up" is known) over the lowest harsh threshold, remembered with
    the 3-D sensor-frame acceleration at its peak. Once calibrated, each is rotated, given its kind by its dominant
    axis, and kept if it clears that kind's threshold. At most `capacity` are kept (oldest dropped, counted)."""

    def __init__(self, thresholds: EventThresholds, capacity: int = 16) -> None:
        self._thresholds = thresholds
        self._capacity = capacity
        self._runs: list[Run] = []
        self._detector: HysteresisDetector | None = None  # only while a run is open, as in DrivingEventDetector
        self.dropped = 0

    @property
    def is_open(self) -> bool:
        return self._detector is not None and self._detector.is_open

    def __len__(self) -> int:
        return len(self._runs)

    def state(self) -> CandidatesState:
        run = None if self._detector is None else self._detector.packed()
        runs = tuple((r.start_us, r.end_us, r.peak, r.peak_payload) for r in self._runs)
        return CandidatesState(open_run=run, runs=runs, dropped=self.dropped)

    @classmethod
    def restored(cls, thresholds: EventThresholds, capacity: int, state: CandidatesState) -> PrecalibrationCandidates:
        candidates = cls(thresholds, capacity)
        candidates.dropped = state.dropped
        candidates._runs = [Run(*r) for r in state.runs]
        if state.open_run is not None:
            candidates._detector = candidates._new_detector()
            candidates._detector.restore_packed(state.open_run)
        return candidates

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
        detector = self._detector
        if detector is None:
            t = self._thresholds
            if magnitude_g.size == 0 or _is_quiet(float(magnitude_g.max()), _lowest_horizontal_g(t), t.hysteresis):
                return
            detector = self._new_detector()
        runs = detector.push(t_us, magnitude_g, period_us, payload=accel_m_s2)
        self._detector = detector if detector.is_open else None
        self._keep(runs)

    def close(self) -> None:
        if self._detector is not None:
            self._keep(self._detector.close())
            self._detector = None

    def _new_detector(self) -> HysteresisDetector:
        t = self._thresholds
        return _detector(_lowest_horizontal_g(t), t.hysteresis, t.min_duration_ms, t.merge_gap_ms)

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
            along = abs(longitudinal_g) >= abs(lateral_g)
            signal, value_g = ("longitudinal", longitudinal_g) if along else ("lateral", lateral_g)
            detector = _HORIZONTAL_BY_DIRECTION[signal, not bool(value_g > 0)]
            peak_g = abs(value_g)
            if peak_g >= detector.level_g(t):
                events.append(_event(detector.kind, Run(run.start_us, run.end_us, peak_g), recovered=True))
        self._runs = []
        return events
