"""One vehicle's analytics, fed decoded batches in sequence order: the object a PyFlink keyed operator keeps in
state. It holds only running sums, a filter tail and a few open episodes, never samples; it pickles as one flat
tuple of numbers and bytes (~2 KB, ~10 us each way), its configuration as just the vehicle class when it is the
class's default. Each piece of that tuple is named (AnalyzerState and the pieces' NamedTuples) and versioned
(cloud/analytics/state_versions.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics.aggregates import AGGREGATES, DailyScore, MinuteAggregate, MinuteAggregator
from fleetsense.cloud.analytics.analyzer_state import ANALYZER, AnalyzerState, in_todays_kinds
from fleetsense.cloud.analytics.calibration import (
    CALIBRATION,
    CalibrationSettings,
    CalibrationSummary,
    MountCalibration,
)
from fleetsense.cloud.analytics.environment import (
    EXCURSIONS,
    EnvironmentEvent,
    EnvironmentSettings,
    TemperatureExcursions,
    altitude_m,
)
from fleetsense.cloud.analytics.errors import AnalysisInputError
from fleetsense.cloud.analytics.events import (
    CANDIDATES,
    DEFAULT_VEHICLE_CLASS,
    DRIVING_EVENTS,
    VEHICLE_CLASSES,
    ClassThresholds,
    DrivingEvent,
    DrivingEventDetector,
    EventThresholds,
    PrecalibrationCandidates,
    thresholds_for,
)
from fleetsense.cloud.analytics.lowpass import FIR, AlignedChunk, CarriedFir, hann_taps
from fleetsense.cloud.analytics.score import ScoreWeights
from fleetsense.cloud.analytics.trips import TRIP, Stop, Trip, TripSettings, TripTracker, Windows, window_activity

from fleetsense.event_kinds import COUNTED_KINDS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class AnalyzerConfig:
    vehicle_class: str = DEFAULT_VEHICLE_CLASS
    thresholds: EventThresholds | None = None  # overrides the vehicle class's thresholds, whatever the class
    # The job's thresholds of the classes whose thresholds it changes (the job's `thresholds` setting): kept with
    # the vehicle, so that a change of class judges it by the job's thresholds of the new class. A configuration
    # pickled before this field existed reads the class attribute, (): the code's thresholds, as then.
    class_thresholds: ClassThresholds = ()
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    trips: TripSettings = field(default_factory=TripSettings)
    environment: EnvironmentSettings = field(default_factory=EnvironmentSettings)
    score: ScoreWeights = field(default_factory=ScoreWeights)
    lowpass_half_width: int = 8  # 17 taps at 100 Hz: see lowpass.hann_taps
    precalibration_capacity: int = 16  # harsh-event candidates remembered until the mounting is known
    keep_minutes: int = 5  # minute rows kept open for late events

    @property
    def event_thresholds(self) -> EventThresholds:
        if self.thresholds is not None:
            return self.thresholds
        for vehicle_class, thresholds in self.class_thresholds:
            if vehicle_class == self.vehicle_class:
                return thresholds
        return thresholds_for(self.vehicle_class)


# One shared default configuration per vehicle class: a pickled analyzer whose configuration is its class's default
# stores just the class name and gets this object back (frozen, so sharing it is safe).
_CLASS_DEFAULTS: dict[str, AnalyzerConfig] = {}


def _class_default(vehicle_class: str) -> AnalyzerConfig:
    config = _CLASS_DEFAULTS.get(vehicle_class)
    if config is None:
        config = _CLASS_DEFAULTS[vehicle_class] = AnalyzerConfig(vehicle_class=vehicle_class)
    return config


@dataclass(frozen=True, kw_only=True)
class AnalysisOutput:
    """What one batch produced. Every row carries its own key times, so the job can upsert them idempotently."""

    events: list[DrivingEvent]  # driving events that ended, oldest first
    trips: list[Trip]  # trips that ended
    stops: list[Stop]  # stops that ended
    open_trip: Trip | None  # the trip in progress, with running totals
    minutes: list[MinuteAggregate]  # minute rows this batch touched, with running totals
    days: list[DailyScore]  # day rows this batch touched, with running totals
    calibration: CalibrationSummary
    environment_events: list[EnvironmentEvent]


def _times(t_us: object, name: str) -> IntArray:
    times = np.asarray(t_us)
    if times.ndim != 1 or times.dtype.kind not in "iu":  # np.issubdtype(integer), without its ~2 us
        raise AnalysisInputError(
            f"{name} must be a 1-D integer array of UTC microseconds, got shape {times.shape} of {times.dtype}",
            hint="pass DecodedBatch.sample_time_us as it comes from cloud.decode",
        )
    times = times.astype(np.int64, copy=False)
    if times.size > 1 and not bool((times[1:] > times[:-1]).all()):
        raise AnalysisInputError(f"{name} is not strictly increasing within the batch", hint="check the decoder")
    return times


def _columns(values: object, rows: int, columns: int, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    expected = (rows, columns) if columns > 1 else (rows,)
    if array.shape != expected:
        raise AnalysisInputError(
            f"{name} has shape {array.shape}, expected {expected} to match the batch's times",
            hint="slice the decoded batch's values_si into the channel groups in wire.CHANNEL_NAMES order",
        )
    return array


def _period_us(t_us: IntArray, previous_us: int) -> int:
    return (int(t_us[-1]) - int(t_us[0])) // (t_us.size - 1) if t_us.size > 1 else previous_us


class VehicleAnalyzer:
    """Call on_imu / on_environment with each decoded batch of one vehicle, in sequence order (the two streams
    independently). Deterministic: the same batches from the same state give the same output."""

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = config = config or AnalyzerConfig()
        thresholds = config.event_thresholds
        # What a pickle stores for the configuration: the class name if it is that class's default, else itself.
        default = _class_default(config.vehicle_class) if config.vehicle_class in VEHICLE_CLASSES else None
        self._config_key: str | AnalyzerConfig = config.vehicle_class if config == default else config
        self._fir = CarriedFir(hann_taps(config.lowpass_half_width), channels=6, filtered_channels=3)
        self._calibration = MountCalibration(config.calibration)
        self._detectors = DrivingEventDetector(thresholds)
        self._candidates = PrecalibrationCandidates(thresholds, config.precalibration_capacity)
        self._frame_active = False  # driving events come from the calibrated frame (else: candidates)
        self._trips = TripTracker(config.trips, config.score)
        self._aggregates = MinuteAggregator(keep_minutes=config.keep_minutes, weights=config.score)
        self._temperature = TemperatureExcursions(config.environment)
        self._last_imu_us = -1
        self._last_active_us = -1  # end of the last window with motion (calibration's rest guard)
        self._imu_period_us = 10_000
        self._last_env_us = -1
        self._env_period_us = 100_000
        self._events: list[DrivingEvent] = []  # per call, emptied by _output
        self._trips_done: list[Trip] = []
        self._stops_done: list[Stop] = []

    def __getstate__(self) -> tuple[Any, ...]:
        """ANALYZER's packed form: a flat tuple of numbers, strings and bytes."""
        return ANALYZER.pack(self.state())

    def __setstate__(self, packed: tuple[Any, ...]) -> None:
        self.restore(ANALYZER.unpack(packed))

    def state(self) -> AnalyzerState:
        fir = self._fir.state()
        # Positional (a keyword call costs a microsecond more, after every batch); the comments name the fields.
        return AnalyzerState(
            self._config_key,  # config
            COUNTED_KINDS,  # counted_kinds
            None if fir is None else FIR.pack(fir),  # fir
            CALIBRATION.pack(self._calibration.state()),  # calibration
            DRIVING_EVENTS.pack(self._detectors.state()),  # driving_events
            CANDIDATES.pack(self._candidates.state()),  # candidates
            self._frame_active,  # frame_active
            TRIP.pack(self._trips.state()),  # trip
            AGGREGATES.pack(self._aggregates.state()),  # aggregates
            EXCURSIONS.pack(self._temperature.state()),  # temperature
            self._last_imu_us,  # last_imu_us
            self._last_active_us,  # last_active_us
            self._imu_period_us,  # imu_period_us
            self._last_env_us,  # last_env_us
            self._env_period_us,  # env_period_us
            self._events,  # events
            self._trips_done,  # trips_done
            self._stops_done,  # stops_done
        )

    def restore(self, state: AnalyzerState) -> None:
        """Become the analyzer `state` describes (its pieces in any version this code migrates)."""
        if state.counted_kinds != COUNTED_KINDS:
            state = in_todays_kinds(state)
        self._config_key = state.config
        self.config = config = _class_default(state.config) if isinstance(state.config, str) else state.config
        thresholds = config.event_thresholds
        taps = hann_taps(config.lowpass_half_width)
        fir = None if state.fir is None else FIR.unpack(state.fir)
        self._fir = CarriedFir.restored(taps, channels=6, filtered_channels=3, state=fir)
        self._calibration = MountCalibration.restored(config.calibration, CALIBRATION.unpack(state.calibration))
        self._detectors = DrivingEventDetector.restored(thresholds, DRIVING_EVENTS.unpack(state.driving_events))
        self._candidates = PrecalibrationCandidates.restored(
            thresholds, config.precalibration_capacity, CANDIDATES.unpack(state.candidates)
        )
        self._frame_active = state.frame_active
        self._trips = TripTracker.restored(config.trips, config.score, TRIP.unpack(state.trip))
        self._aggregates = MinuteAggregator(keep_minutes=config.keep_minutes, weights=config.score)
        self._aggregates.restore(AGGREGATES.unpack(state.aggregates))
        self._temperature = TemperatureExcursions(config.environment)
        self._temperature.restore(EXCURSIONS.unpack(state.temperature))
        self._last_imu_us, self._last_active_us = state.last_imu_us, state.last_active_us
        self._imu_period_us, self._last_env_us, self._env_period_us = (
            state.imu_period_us, state.last_env_us, state.env_period_us,
        )  # fmt: skip
        self._events, self._trips_done, self._stops_done = state.events, state.trips_done, state.stops_done

    def set_vehicle_class(self, vehicle_class: str) -> None:
        """Judge the vehicle by another class's thresholds from the next batch on (its profile changed): the
        job's for that class if its configuration has them (class_thresholds), else the code's. All that was
        measured is kept (calibration, filter, trip, minutes, scores); a run open now carries on and ends by the
        new levels. Thresholds set explicitly in the configuration (`thresholds`) stay as they are."""
        if vehicle_class == self.config.vehicle_class:
            return
        thresholds_for(vehicle_class)  # raises for a class that does not exist
        self._reconfigure(replace(self.config, vehicle_class=vehicle_class))

    def set_class_thresholds(self, class_thresholds: ClassThresholds) -> None:
        """Judge the vehicle by these per-class thresholds from the next batch on (the job's settings, which may
        differ from those of the job that wrote the state), keeping all that was measured, as set_vehicle_class."""
        if class_thresholds == self.config.class_thresholds:
            return
        self._reconfigure(replace(self.config, class_thresholds=class_thresholds))

    def _reconfigure(self, config: AnalyzerConfig) -> None:
        vehicle_class = config.vehicle_class
        key: str | AnalyzerConfig = vehicle_class if config == _class_default(vehicle_class) else config
        self.restore(self.state()._replace(config=key))

    @property
    def precalibration_candidates_dropped(self) -> int:
        return self._candidates.dropped

    @property
    def late_updates_dropped(self) -> int:
        return self._aggregates.late_updates_dropped

    def on_imu(
        self, t_us: IntArray, accel_m_s2: FloatArray, gyro_rad_s: FloatArray, *, gap_before: bool = False
    ) -> AnalysisOutput:
        """One IMU batch in sensor axes: accelerometer specific force (m/s^2) and gyro rate (rad/s), [N, 3] each.
        A batch that starts at or before the previous one's end is treated as after a gap."""
        times = _times(t_us, "t_us")
        accel = _columns(accel_m_s2, times.size, 3, "accel_m_s2")
        gyro = _columns(gyro_rad_s, times.size, 3, "gyro_rad_s")
        if times.size == 0:
            return self._output([])
        if gap_before or (self._last_imu_us >= 0 and int(times[0]) <= self._last_imu_us):
            self._end_segment(next_start_us=int(times[0]))
        self._imu_period_us = _period_us(times, self._imu_period_us)
        self._process(self._fir.push_columns(times, (accel, gyro)))
        self._last_imu_us = int(times[-1])
        return self._output([])

    def on_environment(
        self, t_us: IntArray, pressure_pa: FloatArray, temperature_c: FloatArray, *, gap_before: bool = False
    ) -> AnalysisOutput:
        """One barometer batch: pressure (Pa) and temperature (C), [M] each."""
        times = _times(t_us, "t_us")
        pressure = _columns(pressure_pa, times.size, 1, "pressure_pa")
        temperature = _columns(temperature_c, times.size, 1, "temperature_c")
        if times.size == 0:
            return self._output([])
        gap = gap_before or (self._last_env_us >= 0 and int(times[0]) <= self._last_env_us)
        self._env_period_us = _period_us(times, self._env_period_us)
        excursions = self._temperature.push(times, temperature, self._env_period_us)
        self._aggregates.add_environment(times, temperature, altitude_m(pressure), gap=gap)
        self._last_env_us = int(times[-1])
        return self._output(excursions)

    def flush(self) -> AnalysisOutput:
        """End of the stream for now (e.g. the end of a recording): process the samples the filter holds back and
        close open events. The next IMU batch then starts like one after a gap."""
        if self._last_imu_us >= 0:
            self._end_segment(next_start_us=self._last_imu_us)
        return self._output([])

    def _end_segment(self, *, next_start_us: int) -> None:
        self._process(self._fir.flush())
        self._add_events(self._detectors.close())
        self._candidates.close()
        self._calibration.forget_launch()
        self._last_active_us = -1
        stops, trips = self._trips.gap(next_start_us)
        self._stops_done += stops
        self._trips_done += trips

    def _process(self, chunk: AlignedChunk) -> None:
        """Everything one aligned chunk feeds: calibration, trips, events, minute rows."""
        if len(chunk) == 0:
            return
        t_us = chunk.t_us
        windows = window_activity(t_us, chunk.raw, self._imu_period_us, self.config.trips)
        self._calibrate(chunk, windows)
        stops, trips, moving = self._trips.push(windows)
        self._stops_done += stops
        self._trips_done += trips
        self._aggregates.add_moving(moving)
        vertical_g = self._detect_bumps(chunk)
        horizontal = self._detect_harsh(chunk)
        if horizontal is None:
            self._aggregates.add_imu(t_us, None, None, vertical_g)
        else:
            longitudinal_g, lateral_g, abs_peaks_g = horizontal
            self._aggregates.add_imu(t_us, longitudinal_g, lateral_g, vertical_g, abs_peaks_g=abs_peaks_g)

    def _calibrate(self, chunk: AlignedChunk, windows: Windows) -> None:
        t0_us = int(chunk.t_us[0])
        if self._last_active_us < 0:
            self._last_active_us = t0_us  # the stream's start counts as activity: we do not know what preceded it
        rest_guard_us = int(self.config.calibration.rest_guard_s * 1e6)
        all_quiet = windows.all_quiet
        rest = all_quiet and len(chunk) >= 10 and t0_us - self._last_active_us >= rest_guard_us
        if not all_quiet:
            self._last_active_us = windows.last_active_end_us
        if self._calibration.update(chunk, rest=rest, period_us=self._imu_period_us):
            # The Pi moved in its mount: what was open or remembered was measured in a frame that no longer holds.
            thresholds = self.config.event_thresholds
            dropped = self._candidates.dropped + len(self._candidates)
            self._detectors = DrivingEventDetector(thresholds)
            self._candidates = PrecalibrationCandidates(thresholds, self.config.precalibration_capacity)
            self._candidates.dropped = dropped
            self._frame_active = False

    def _detect_bumps(self, chunk: AlignedChunk) -> FloatArray | None:
        """Bumps from the vertical axis once "up" is known; returns that vertical signal (g, 1 g removed)."""
        calibration, accel_raw = self._calibration, chunk.raw[:, :3]
        up = calibration.up
        if up is not None:
            vertical_g = (accel_raw @ up) / calibration.gravity_m_s2 - 1.0
            self._add_events(self._detectors.push_vertical(chunk.t_us, vertical_g, self._imu_period_us))
            return vertical_g
        estimate = calibration.gravity_estimate_m_s2
        if estimate is not None:
            # Before "up" is known a bump still shows in |specific force| - 1 g: during a bump the horizontal part
            # is small, and even a 0.5 g harsh manoeuvre adds only 0.12 g to the magnitude, under the bump threshold.
            magnitude_m_s2 = np.sqrt(np.einsum("ij,ij->i", accel_raw, accel_raw))
            bump_g = magnitude_m_s2 / float(np.sqrt(estimate @ estimate)) - 1.0
            self._add_events(self._detectors.push_vertical(chunk.t_us, bump_g, self._imu_period_us))
        return None

    def _detect_harsh(self, chunk: AlignedChunk) -> tuple[FloatArray, FloatArray, tuple[float, float]] | None:
        """Harsh events in the calibrated frame, or candidates until it is known; returns longitudinal and lateral
        acceleration (g) and their largest magnitudes when the frame is known."""
        calibration, period_us = self._calibration, self._imu_period_us
        if not self._frame_active:
            rotation = calibration.vehicle_from_sensor
            if rotation is not None and not self._candidates.is_open:
                self._frame_active = True  # switch only between events, so none is split across the two paths
                self._add_events(self._candidates.classify(rotation, calibration.gravity_m_s2))
            else:
                estimate = calibration.gravity_estimate_m_s2
                if estimate is not None:
                    self._candidates.push(chunk.t_us, chunk.filtered, estimate, calibration.up, period_us)
                return None
        to_horizontal_g = calibration.horizontal_g
        if to_horizontal_g is None:  # cannot happen: a remount, the only way back to unknown, clears _frame_active
            return None
        horizontal = chunk.filtered @ to_horizontal_g
        longitudinal_g, lateral_g = horizontal[:, 0], horizontal[:, 1]
        # One max and one min per column serve the detectors' quiet checks and the minute row's peaks.
        max_longitudinal_g, max_lateral_g = horizontal.max(axis=0).tolist()
        min_longitudinal_g, min_lateral_g = horizontal.min(axis=0).tolist()
        extremes_g = (min_longitudinal_g, max_longitudinal_g, min_lateral_g, max_lateral_g)
        self._add_events(self._detectors.push_horizontal(chunk.t_us, longitudinal_g, lateral_g, period_us, extremes_g))
        # max |x| = max(max x, -min x), bit for bit; abs() only turns the -0.0 of an all -0.0 column into 0.0.
        abs_peaks_g = (abs(max(max_longitudinal_g, -min_longitudinal_g)), abs(max(max_lateral_g, -min_lateral_g)))
        return longitudinal_g, lateral_g, abs_peaks_g

    def _add_events(self, events: list[DrivingEvent]) -> None:
        for event in events:
            self._trips.count_event(event.kind, event.start_us)
            self._aggregates.add_event(event.kind, event.start_us)
        self._events += events

    def _output(self, environment_events: list[EnvironmentEvent]) -> AnalysisOutput:
        minutes, days = self._aggregates.take_touched()
        events = sorted(self._events, key=lambda e: (e.start_us, e.kind))
        output = AnalysisOutput(
            events=events,
            trips=self._trips_done,
            stops=self._stops_done,
            open_trip=self._trips.open_trip(),
            minutes=minutes,
            days=days,
            calibration=self._calibration.summary(self._imu_period_us / 1e6),
            environment_events=environment_events,
        )
        self._events, self._trips_done, self._stops_done = [], [], []
        return output
