"""GET /v1/events/{event_key}/trace: +-10 s of an event's 100 Hz samples in the vehicle frame (service/trace.py
says how the frame is found), with the event and its vehicle class's threshold, as the result version the event
was read from has it (its `thresholds` setting over the code's: service/result_version.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fleetsense.cloud.analytics.events import DETECTOR_OF
from fleetsense.service import analytics_reads as reads
from fleetsense.service import trace as tr
from fleetsense.service.auth import require
from fleetsense.service.db import Db
from fleetsense.service.event_key import EventKey
from fleetsense.service.result_version import class_thresholds, default_class
from fleetsense.service.results_http import serving
from fleetsense.service.roles import Role
from pydantic import BaseModel, Field

from fleetsense.errors import ConfigError

router = APIRouter(tags=["events"])


class TracedEvent(BaseModel):
    key: str
    vehicle_id: str
    kind: str
    start_ms: int
    end_ms: int
    duration_ms: int
    peak: float
    peak_unit: str


class TraceCalibration(BaseModel):
    settled: bool = Field(description="forward, left and up known: the g arrays are in the vehicle frame")
    up_source: str = Field(description="rest, drive_mean or none (docs/analytics.md)")
    sign_source: str = Field(description="what decided forward's sign: launch, yaw or none")
    gravity_m_s2: float = Field(description="the sensor's own reading of 1 g")
    vehicle_from_sensor: list[float] = Field(description="row-major 3x3: rows forward, left, up in sensor axes")
    context_start_ms: int = Field(description="the samples the calibration was computed from: first")
    context_end_ms: int = Field(description="... and end (exclusive)")


class EventTrace(BaseModel):
    event: TracedEvent
    vehicle_class: str
    threshold_g: float | None = Field(
        description="the level this kind enters at for the vehicle's class (g), as the result version read uses it"
    )
    calibration: TraceCalibration
    t_ms: list[float] = Field(description="each sample's time, ms from the event's start")
    longitudinal_g: list[float] | None = Field(description="forward +, low-passed as the job's detectors see it")
    lateral_g: list[float] | None = Field(description="left +, low-passed")
    vertical_g: list[float] | None = Field(description="specific force along up minus 1 g (0 at rest), unfiltered")


def _round(values: object) -> list[float] | None:
    import numpy as np

    return None if values is None else np.round(np.asarray(values, dtype=np.float64), 4).tolist()


@router.get(
    "/events/{event_key:path}/trace",
    response_model=EventTrace,
    responses={400: {"description": "not an event key"}, 404: {"description": "no such event"}},
)
async def event_trace(request: Request, event_key: str, _: object = Depends(require(Role.VIEWER))) -> EventTrace:
    """The samples from 10 s before the event's start to 10 s after its end (`event_key` is
    `<vehicle>/<start ms>/<kind>`, its slashes as they are or URL-encoded)."""
    try:
        key = EventKey.parse(event_key)
    except ConfigError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{exc.message}: {exc.hint}") from None
    if key.start_ms > reads.LATEST_MS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{key.start_ms} ms is after 9999: no event starts then")
    db = request.app.state.context.db
    active = await serving(request)  # the version the event below is read from: its thresholds drew it
    row = await reads.event(db, key.vehicle_id, key.start_ms, key.kind)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no event {key}: list a vehicle's events for their keys")
    start_us, end_us = reads.to_us(row.start_time), reads.to_us(row.end_time)
    vehicle_class = await reads.vehicle_class(db, key.vehicle_id, default=default_class(active))
    frame, batches = await _calibrated(db, key.vehicle_id, vehicle_class, start_us, end_us)
    from_us, to_us = tr.trace_window_us(start_us, end_us)
    trace = tr.vehicle_frame_trace(batches, frame, from_us, to_us)
    detector = DETECTOR_OF.get(key.kind)
    return EventTrace(
        event=TracedEvent(
            key=str(key),
            vehicle_id=key.vehicle_id,
            kind=key.kind,
            start_ms=start_us // 1000,
            end_ms=end_us // 1000,
            duration_ms=row.duration_ms,
            peak=row.peak,
            peak_unit=row.peak_unit,
        ),
        vehicle_class=vehicle_class,
        threshold_g=None if detector is None else detector.level_g(class_thresholds(active)[vehicle_class]),
        calibration=TraceCalibration(
            settled=frame.settled,
            up_source=frame.up_source,
            sign_source=frame.sign_source,
            gravity_m_s2=frame.gravity_m_s2,
            vehicle_from_sensor=list(frame.vehicle_from_sensor),
            context_start_ms=frame.context_start_us // 1000,
            context_end_ms=frame.context_end_us // 1000,
        ),
        t_ms=((trace.t_us - start_us) / 1000.0).tolist(),
        longitudinal_g=_round(trace.longitudinal_g),
        lateral_g=_round(trace.lateral_g),
        vertical_g=_round(trace.vertical_g),
    )


async def _calibrated(
    db: Db, vehicle_id: str, vehicle_class: str, start_us: int, end_us: int
) -> tuple[tr.Frame, list[tr.ImuBatch]]:
    """The frame from the narrowest context that settles it (the last tried if none does), and its batches."""
    frame: tr.Frame | None = None
    batches: list[tr.ImuBatch] = []
    for context_s in tr.CONTEXTS_S:
        from_us, to_us = tr.context_window_us(start_us, end_us, context_s)
        messages = await reads.motion_messages(db, vehicle_id, from_us, to_us)
        batches = tr.batches_within(messages, from_us, to_us)
        frame = tr.calibrate(batches, vehicle_class)
        if frame.settled:
            break
    assert frame is not None
    return frame, batches
