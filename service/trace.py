"""An event's trace in the vehicle frame: the IMU samples around it, rotated with the vehicle's mounting
calibration, as a person reads a brake (longitudinal, lateral, vertical g against time). Pure: decoded batches in,
arrays out; service/routes_trace.py reads the batches.

The calibration lives in the job's keyed state, not in Cassandra, so it is computed again here the way the job
computes it: the job's filter, rest rule and MountCalibration (up from rest, forward from straight-line
acceleration), as its `VehicleAnalyzer` runs them, fed the stored batches of a context around the event. The job's
calibration at the event saw the vehicle's whole history; this one sees the context only, so it settles when the
context holds what the job needs (2 s of rest after 8 s of quiet, 5 s of straight-line acceleration and a pull-away
or corners): `CONTEXTS_S` widens it until it does. A frame that never settles is reported as such, with no g arrays
(docs/service.md, "Trips, traces and scorecards").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from fleetsense.cloud.analytics import AnalyzerConfig
from fleetsense.cloud.analytics.calibration import MountCalibration
from fleetsense.cloud.analytics.lowpass import AlignedChunk, CarriedFir, hann_taps
from fleetsense.cloud.analytics.trips import window_activity
from fleetsense.cloud.decode import DecodedBatch, decode_batch

from fleetsense import wire
from fleetsense.errors import WireFormatError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MARGIN_MS = 10_000  # the trace: this much before the event's start and after its end
# The calibration's context, (before the start, after the end) in seconds, tried in turn until the frame settles.
CONTEXTS_S: tuple[tuple[int, int], ...] = ((120, 60), (600, 300))
_LOWPASS_HALF_WIDTH = AnalyzerConfig().lowpass_half_width  # the job's event filter (17 taps at 100 Hz)
_MOTION_KINDS = (wire.Kind.IMU, wire.Kind.ACCEL)


@dataclass(frozen=True, kw_only=True)
class ImuBatch:
    """One motion batch in sensor axes: accelerometer specific force (m/s^2) and gyro rate (rad/s, zeros for an
    accelerometer-only batch), as the job hands them to its analyzer."""

    t_us: IntArray
    accel_m_s2: FloatArray
    gyro_rad_s: FloatArray
    period_us: int

    @property
    def start_us(self) -> int:
        return int(self.t_us[0])

    @property
    def end_us(self) -> int:
        """One period after the last sample."""
        return int(self.t_us[-1]) + self.period_us


def decode_messages(messages: Iterable[bytes]) -> list[DecodedBatch]:
    """The stored wire messages decoded (cloud/decode.py, vectorised); one that no longer decodes is skipped (the
    job stored only what it validated, so this would be a decoder change, not a bad message)."""
    out = []
    for message in messages:
        try:
            out.append(decode_batch(message))
        except WireFormatError:
            continue
    return out


def motion_batches(decoded: Iterable[DecodedBatch]) -> list[ImuBatch]:
    """The motion batches among `decoded` (barometer batches dropped), oldest first, one per start time (a batch
    stored twice under two epochs is the same samples)."""
    by_start: dict[int, ImuBatch] = {}
    for batch in decoded:
        kind, values = batch.header.kind, batch.values_si
        if kind not in _MOTION_KINDS or batch.sample_time_us.size == 0:
            continue
        gyro = values[:, 3:6] if kind is wire.Kind.IMU else np.zeros_like(values[:, :3])
        imu = ImuBatch(
            t_us=batch.sample_time_us,
            accel_m_s2=values[:, :3],
            gyro_rad_s=gyro,
            period_us=batch.header.sample_period_us,
        )
        by_start.setdefault(imu.start_us, imu)
    return [by_start[start] for start in sorted(by_start)]


def batches_within(messages: Iterable[bytes], from_us: int, to_us: int) -> list[ImuBatch]:
    """The motion batches of the stored `messages` that hold samples in [from_us, to_us), oldest first."""
    return [b for b in motion_batches(decode_messages(messages)) if b.end_us > from_us and b.start_us < to_us]


@dataclass(frozen=True, kw_only=True)
class Frame:
    """The mounting as the job's calibration finds it over a context of batches."""

    settled: bool  # forward, left and up known: longitudinal and lateral g are meaningful
    up_settled: bool  # up known: vertical g is meaningful
    vehicle_from_sensor: tuple[float, ...]  # row-major 3x3, rows forward, left, up in sensor axes
    gravity_m_s2: float  # the sensor's own reading of 1 g
    up_source: str
    sign_source: str
    context_start_us: int
    context_end_us: int


def _is_gap(previous: ImuBatch | None, batch: ImuBatch) -> bool:
    # Missing batches: the job learns them from the sequencer; here a start more than a period late says it.
    return previous is not None and batch.start_us > previous.end_us + previous.period_us


class _Calibrator:
    """The calibration half of the job's `VehicleAnalyzer`, alone: its filter, its activity windows, its rest rule
    (`VehicleAnalyzer._calibrate`: quiet windows, 8 s after the last activity) and its MountCalibration, without the
    event detectors, trips and aggregates, which the frame does not depend on (3-4x cheaper per batch). A unit test
    holds it to the analyzer's calibration, bit for bit."""

    def __init__(self, config: AnalyzerConfig) -> None:
        self._config = config
        self._fir = CarriedFir(hann_taps(config.lowpass_half_width), channels=6, filtered_channels=3)
        self.calibration = MountCalibration(config.calibration)
        self._rest_guard_us = int(config.calibration.rest_guard_s * 1e6)
        self._last_active_us = -1
        self._last_us = -1
        self.period_us = 10_000

    def push(self, batch: ImuBatch, *, gap_before: bool) -> None:
        times = batch.t_us
        if gap_before or (self._last_us >= 0 and int(times[0]) <= self._last_us):
            self._process(self._fir.flush())  # as the analyzer's _end_segment, for the calibration's part
            self.calibration.forget_launch()
            self._last_active_us = -1
        if times.size > 1:
            self.period_us = (int(times[-1]) - int(times[0])) // (times.size - 1)
        self._process(self._fir.push_columns(times, (batch.accel_m_s2, batch.gyro_rad_s)))
        self._last_us = int(times[-1])

    def _process(self, chunk: AlignedChunk) -> None:
        if len(chunk) == 0:
            return
        windows = window_activity(chunk.t_us, chunk.raw, self.period_us, self._config.trips)
        t0_us = int(chunk.t_us[0])
        if self._last_active_us < 0:
            self._last_active_us = t0_us
        all_quiet = windows.all_quiet
        rest = all_quiet and len(chunk) >= 10 and t0_us - self._last_active_us >= self._rest_guard_us
        if not all_quiet:
            self._last_active_us = windows.last_active_end_us
        self.calibration.update(chunk, rest=rest, period_us=self.period_us)


def calibrate(batches: Sequence[ImuBatch], vehicle_class: str) -> Frame:
    """The job's calibration (its settings for `vehicle_class`) over `batches`, oldest first."""
    calibrator = _Calibrator(AnalyzerConfig(vehicle_class=vehicle_class))
    previous: ImuBatch | None = None
    for batch in batches:
        calibrator.push(batch, gap_before=_is_gap(previous, batch))
        previous = batch
    summary = calibrator.calibration.summary(calibrator.period_us / 1e6)
    return Frame(
        settled=summary.settled,
        up_settled=summary.up_settled,
        vehicle_from_sensor=summary.vehicle_from_sensor,
        gravity_m_s2=summary.gravity_m_s2,
        up_source=summary.up_source,
        sign_source=summary.sign_source,
        context_start_us=batches[0].start_us if batches else 0,
        context_end_us=batches[-1].end_us if batches else 0,
    )


@dataclass(frozen=True, kw_only=True)
class Trace:
    """Samples in [from_us, to_us) in the vehicle frame. Longitudinal and lateral g are low-passed with the job's
    event filter (what its detectors saw, so the peak compares with the event's); vertical g is unfiltered (as
    bumps are detected) minus 1 g (0 at rest). None until the frame has settled (the job's calibration reports its
    rotation only then)."""

    t_us: IntArray
    longitudinal_g: FloatArray | None
    lateral_g: FloatArray | None
    vertical_g: FloatArray | None


def vehicle_frame_trace(batches: Sequence[ImuBatch], frame: Frame, from_us: int, to_us: int) -> Trace:
    """The trace of [from_us, to_us) from `batches` (oldest first; those outside are skipped, a filter's width
    beyond it kept so the edges are filtered as the job filtered them)."""
    fir = CarriedFir(hann_taps(_LOWPASS_HALF_WIDTH), channels=3, filtered_channels=3)
    margin_us = 2 * _LOWPASS_HALF_WIDTH * max((b.period_us for b in batches), default=10_000)
    times: list[IntArray] = []
    filtered: list[FloatArray] = []
    raw: list[FloatArray] = []
    previous: ImuBatch | None = None
    for batch in batches:
        if batch.end_us <= from_us - margin_us or batch.start_us >= to_us + margin_us:
            continue
        chunks = [fir.flush()] if _is_gap(previous, batch) else []
        chunks.append(fir.push(batch.t_us, batch.accel_m_s2))
        for chunk in chunks:
            times.append(chunk.t_us)
            filtered.append(chunk.filtered)
            raw.append(chunk.raw)
        previous = batch
    last = fir.flush()
    times.append(last.t_us)
    filtered.append(last.filtered)
    raw.append(last.raw)
    t_us = np.concatenate(times)
    inside = (t_us >= from_us) & (t_us < to_us)
    t_us = t_us[inside]
    rotation = np.asarray(frame.vehicle_from_sensor, dtype=np.float64).reshape(3, 3)
    longitudinal = lateral = vertical = None
    if frame.settled:
        horizontal = np.concatenate(filtered)[inside] @ (rotation[:2].T / frame.gravity_m_s2)
        longitudinal, lateral = horizontal[:, 0], horizontal[:, 1]
        vertical = np.concatenate(raw)[inside] @ rotation[2] / frame.gravity_m_s2 - 1.0
    return Trace(t_us=t_us, longitudinal_g=longitudinal, lateral_g=lateral, vertical_g=vertical)


def trace_window_us(start_us: int, end_us: int, margin_ms: int = MARGIN_MS) -> tuple[int, int]:
    """[from, to) of an event's trace: `margin_ms` either side of its start..end."""
    return start_us - margin_ms * 1000, end_us + margin_ms * 1000


def context_window_us(start_us: int, end_us: int, context_s: tuple[int, int]) -> tuple[int, int]:
    before_s, after_s = context_s
    return start_us - before_s * 1_000_000, end_us + after_s * 1_000_000
