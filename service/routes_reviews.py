"""The coaching workflow: an event's review (PUT /v1/events/{key}/review, a manager) and a manager's queue of harsh
events awaiting review (GET /v1/reviews/queue, one query)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fleetsense.service import reviews as r
from fleetsense.service.drivers import NotFound
from fleetsense.service.event_key import EventKey
from fleetsense.service.registry_http import Manager, Viewer, answered, db_of, fleet_of, from_ms, now_ms
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(tags=["reviews"])


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["new", "reviewed", "coached", "dismissed"] = Field(
        description="dismissed: a false positive, left out of every score"
    )
    note: str = Field(default="", max_length=r.MAX_NOTE_CHARS)


class ReviewOut(BaseModel):
    key: str
    state: str
    note: str
    reviewed_by: str
    reviewed_at: datetime | None
    driver_id: str | None


class QueuedOut(BaseModel):
    key: str
    vehicle_id: str
    kind: str
    start_ms: int
    driver_id: str | None
    peak: float | None
    peak_unit: str | None
    queued_at: datetime | None


class QueueOut(BaseModel):
    manager: str
    events: list[QueuedOut]
    more: bool = Field(description="more events wait than were listed (limit)")


def _review(review: r.Review) -> ReviewOut:
    return ReviewOut(
        key=review.key,
        state=review.state,
        note=review.note,
        reviewed_by=review.reviewed_by,
        reviewed_at=from_ms(review.reviewed_ms),
        driver_id=review.driver_id,
    )


@router.put("/events/{event_key:path}/review", response_model=ReviewOut)
async def review_event(event_key: str, body: ReviewIn, request: Request, who: Manager) -> ReviewOut:
    with answered():
        review = await r.review(
            db_of(request),
            fleet_of(request),
            EventKey.parse(event_key),
            state=body.state,
            note=body.note,
            reviewed_by=who.username,
            now_ms=now_ms(),
        )
    return _review(review)


@router.get("/reviews/queue", response_model=QueueOut)
async def review_queue(
    request: Request,
    who: Viewer,
    manager: Annotated[str, Query(min_length=1, max_length=200, description="`me` or a username")] = "me",
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> QueueOut:
    name = who.username if manager == "me" else manager
    events, more = await r.queue_of(db_of(request), name, most=limit)
    return QueueOut(
        manager=name,
        events=[
            QueuedOut(
                key=e.key,
                vehicle_id=e.vehicle_id,
                kind=e.kind,
                start_ms=e.start_ms,
                driver_id=e.driver_id,
                peak=e.peak,
                peak_unit=e.peak_unit,
                queued_at=from_ms(e.queued_ms),
            )
            for e in events
        ],
        more=more,
    )


@router.get("/reviews/{event_key:path}", response_model=ReviewOut)
async def get_review(event_key: str, request: Request, _who: Viewer) -> ReviewOut:
    with answered():
        key = EventKey.parse(event_key)
        review = await r.review_of(db_of(request), key)
        if review is None:
            raise NotFound(f"event {key} has no review", hint="its state is new until a manager reviews it")
    return _review(review)
