"""A vehicle's trips (GET /v1/vehicles/{id}/trips) and one trip with its events, minute aggregates and drivers
(GET /v1/vehicles/{id}/trips/{start_ms}): a trip that spans a change of driver is split at the change, each part
with its driver, counts, driving time and score (service/scorecard.py's minute rule)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fleetsense.cloud.store import day_buckets
from fleetsense.service import analytics_reads as reads
from fleetsense.service import scorecard as sc
from fleetsense.service.assignment_store import vehicle_assignments
from fleetsense.service.attribution import split_by_driver
from fleetsense.service.auth import require
from fleetsense.service.event_key import EventKey
from fleetsense.service.roles import Role
from pydantic import BaseModel, Field

router = APIRouter(tags=["trips"])

MAX_SPAN_MS = 366 * 86_400_000  # a trips list covers at most a year
DEFAULT_SPAN_MS = 7 * 86_400_000


class TripSummary(BaseModel):
    vehicle_id: str
    start_ms: int
    end_ms: int
    duration_s: float
    open: bool = Field(description="still going: its end, counts and score are so far")
    event_counts: dict[str, int]
    score: float = Field(description="the job's trip score, 0-100 (docs/analytics.md)")


class TripEvent(BaseModel):
    key: str
    kind: str
    start_ms: int
    end_ms: int
    peak: float
    peak_unit: str
    dismissed: bool = Field(description="reviewed as a false positive: left out of the counts and scores")


class TripMinute(BaseModel):
    minute_ms: int
    sample_count: int | None
    driving_s: float | None
    max_longitudinal_g: float | None
    max_lateral_g: float | None
    rms_vertical_g: float | None
    event_counts: dict[str, int]


class TripPart(BaseModel):
    driver_id: str | None = Field(description="who held the vehicle (null: nobody was assigned)")
    start_ms: int
    end_ms: int
    event_counts: dict[str, int] = Field(description="from the part's minute rows, dismissed events left out")
    driving_s: float
    score: float
    event_keys: list[str] = Field(description="the events that started in the part")


class TripDetail(TripSummary):
    events: list[TripEvent]
    minutes: list[TripMinute]
    parts: list[TripPart] = Field(description="the trip cut at every change of driver, in time order")


def _summary(vehicle_id: str, row: Any) -> TripSummary:
    return TripSummary(
        vehicle_id=vehicle_id,
        start_ms=reads.to_us(row.start_time) // 1000,
        end_ms=reads.to_us(row.end_time) // 1000,
        duration_s=row.duration_s or 0.0,
        open=bool(row.open),
        event_counts=dict(row.event_counts or {}),
        score=row.score if row.score is not None else 100.0,
    )


@router.get("/vehicles/{vehicle_id}/trips", response_model=list[TripSummary])
async def list_trips(
    request: Request,
    vehicle_id: str,
    from_ms: int | None = Query(
        None, ge=0, le=reads.LATEST_MS, description="trips that started at or after (default: 7 days ago)"
    ),
    to_ms: int | None = Query(None, ge=0, le=reads.LATEST_MS, description="... and before (default: now)"),
    limit: int = Query(100, ge=1, le=1000),
    _: object = Depends(require(Role.VIEWER)),
) -> list[TripSummary]:
    """The vehicle's trips that started in [from_ms, to_ms), newest first."""
    # CSV (?format=csv, Accept: text/csv): service/csv_export.py converts this bounded list's answer.
    end = to_ms if to_ms is not None else int(time.time() * 1000) + 1
    start = from_ms if from_ms is not None else max(0, end - DEFAULT_SPAN_MS)
    if end <= start or end - start > MAX_SPAN_MS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"from_ms {start} to to_ms {end} is not a span of up to 366 days: give from_ms before to_ms",
        )
    rows = await reads.trips(request.app.state.context.db, vehicle_id, start * 1000, end * 1000, limit=limit)
    return [_summary(vehicle_id, row) for row in rows]


@router.get(
    "/vehicles/{vehicle_id}/trips/{start_ms}",
    response_model=TripDetail,
    responses={404: {"description": "no trip of the vehicle starts then"}},
)
async def trip_detail(
    request: Request,
    vehicle_id: str,
    start_ms: int = Path(ge=0, le=reads.LATEST_MS, description="the trip's start, ms since 1970"),
    _: object = Depends(require(Role.VIEWER)),
) -> TripDetail:
    """One trip (by its start, as the trips list gives it), its events, minute rows and drivers."""
    db = request.app.state.context.db
    row = await reads.trip(db, vehicle_id, start_ms)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{vehicle_id} has no trip starting at {start_ms}: list its trips for theirs"
        )
    summary = _summary(vehicle_id, row)
    start_us, end_us = summary.start_ms * 1000, max(summary.end_ms, summary.start_ms + 1) * 1000
    days = day_buckets(start_us, end_us)
    events = await reads.events_between(db, vehicle_id, start_us, end_us)
    minute_rows = [
        m
        for m in await reads.minutes(db, vehicle_id, days)
        if reads.to_us(m.minute) + sc.MINUTE_US > start_us and reads.to_us(m.minute) < end_us
    ]
    dismissed = {(start, kind) for start, kind in await reads.dismissed(db, vehicle_id, days)}
    pieces = split_by_driver(await vehicle_assignments(db, vehicle_id), start_us, end_us)
    minutes = [
        sc.MinuteRow(
            vehicle_id=vehicle_id,
            minute_us=reads.to_us(m.minute),
            driving_s=m.driving_s or 0.0,
            event_counts=dict(m.event_counts or {}),
        )
        for m in minute_rows
    ]
    refs = [sc.EventRef(vehicle_id, start, kind) for start, kind in dismissed]
    parts = []
    for piece, part_minutes in zip(pieces, sc.split_minutes(minutes, pieces), strict=True):
        counted = sc.minutes_tally(part_minutes, refs)
        parts.append(
            TripPart(
                driver_id=piece.driver_id,
                start_ms=piece.start_us // 1000,
                end_ms=piece.end_us // 1000,
                event_counts=counted.counts,
                driving_s=round(counted.driving_s, 3),
                score=counted.score,
                event_keys=[
                    str(EventKey(vehicle_id, reads.to_us(e.start_time) // 1000, e.kind))
                    for e in events
                    if piece.start_us <= reads.to_us(e.start_time) < piece.end_us
                ],
            )
        )
    return TripDetail(
        **summary.model_dump(),
        events=[
            TripEvent(
                key=str(EventKey(vehicle_id, reads.to_us(e.start_time) // 1000, e.kind)),
                kind=e.kind,
                start_ms=reads.to_us(e.start_time) // 1000,
                end_ms=reads.to_us(e.end_time) // 1000,
                peak=e.peak,
                peak_unit=e.peak_unit,
                dismissed=(reads.to_us(e.start_time), e.kind) in dismissed,
            )
            for e in events
        ],
        minutes=[
            TripMinute(
                minute_ms=reads.to_us(m.minute) // 1000,
                sample_count=m.sample_count,
                driving_s=m.driving_s,
                max_longitudinal_g=m.max_longitudinal_g,
                max_lateral_g=m.max_lateral_g,
                rms_vertical_g=m.rms_vertical_g,
                event_counts=dict(m.event_counts or {}),
            )
            for m in minute_rows
        ],
        parts=parts,
    )
