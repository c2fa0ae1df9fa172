"""GET /v1/events/live: every event the job stores, as Server-Sent Events, within a second (docs/service.md, "Live
events"). Filters per client (vehicle, kind, driver); a client that reconnects with `Last-Event-ID` first gets the
events stored since that one from Cassandra, then the live ones, each key once. A client too slow for the feed is
closed with a last comment (the hub drops its oldest meanwhile, never slowing the others); it reconnects and resumes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from fleetsense.cloud import tables as t
from fleetsense.service.assignment_store import driver_assignments
from fleetsense.service.auth import require
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.event_key import EventKey
from fleetsense.service.live_event import LiveEvent
from fleetsense.service.live_feed import RecentKeys
from fleetsense.service.live_sse import HEARTBEAT, ClientFilter, by_vehicle, resume_order, sse_event, too_slow
from fleetsense.service.roles import Role

from fleetsense import event_kinds
from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id

router = APIRouter(tags=["live events"])

HEARTBEAT_S = 15.0  # a comment after this long without an event
DRIVER_REFRESH_S = 60.0  # how often a driver filter re-reads the driver's assignments (a correction shows within it)
RESUME_HOURS = 24  # a resume reads at most this many hours of fleet_events, the newest
SENT_KEYS = 10_000  # keys remembered per client, so a resumed event is not sent again when it also arrives live
RETRY_MS = 1_000  # the reconnect delay an EventSource is told
MAX_EVENTS_PER_WRITE = 200

_STORED = t.EVENTS_BY_FLEET.read(
    "start_time",
    "vehicle_id",
    "kind",
    "end_time",
    "duration_ms",
    "peak",
    "peak_unit",
    "writetime(peak)",
    where=("day_bucket", "hour"),
)
_EPOCH = datetime(1970, 1, 1)


def _ms(value: datetime) -> int:
    return (value.replace(tzinfo=None) - _EPOCH) // timedelta(milliseconds=1)


def _stored_event(row: Any) -> LiveEvent:
    return LiveEvent(
        vehicle_id=row.vehicle_id,
        kind=row.kind,
        start_ms=_ms(row.start_time),
        end_ms=_ms(row.end_time),
        duration_ms=row.duration_ms,
        peak=row.peak,
        peak_unit=row.peak_unit,
        # fleet_events keeps no detection time: the row's write time, milliseconds after it (the sink's clock).
        detected_ms=row.writetime_peak // 1000,
    )


async def stored_since(db: Db, after: EventKey, now_ms: int) -> list[LiveEvent]:
    """The fleet's stored events that started at or after `after`'s start (at most RESUME_HOURS back), one partition
    (UTC day, hour) at a time, in resume order."""
    hour_ms = 3_600_000
    first_hour = max(after.start_ms // hour_ms, now_ms // hour_ms - RESUME_HOURS + 1)
    # A key from the future (a client's invention) resumes nothing: no partition is read, none is sent.
    since = datetime.fromtimestamp(min(after.start_ms, now_ms) / 1000, UTC)
    events: list[LiveEvent] = []
    for hour in range(first_hour, now_ms // hour_ms + 1):
        day = date.fromtimestamp(0) + timedelta(days=hour // 24)
        rows = await db.rows(_STORED, (day, hour % 24, since), suffix=" AND start_time >= ?")
        events.extend(_stored_event(row) for row in rows)
    return resume_order(events, after)


def _context(request: Request) -> ServiceContext:
    context = request.app.state.context
    if context is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this API runs without a database")
    assert isinstance(context, ServiceContext)
    return context


def _bad_request(message: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, message)


def client_filter(vehicles: list[str], kinds: list[str], driver: str | None) -> ClientFilter:
    """The client's filters, each checked: a 400 that says which value is wrong."""
    for vehicle_id in vehicles:
        try:
            validate_vehicle_id(vehicle_id)
        except ConfigError as exc:
            raise _bad_request(f"vehicle: {exc}") from None
    unknown = sorted(set(kinds) - event_kinds.BY_KEY.keys())
    if unknown:
        raise _bad_request(
            f"kind: {', '.join(map(repr, unknown))} is no event kind; use one of {', '.join(event_kinds.BY_KEY)}"
        )
    if driver is not None and not driver.strip():
        raise _bad_request("driver: an empty driver id; leave the parameter out for every driver")
    return ClientFilter(vehicles=frozenset(vehicles), kinds=frozenset(kinds), driver=driver)


def resume_after(last_event_id: str | None) -> EventKey | None:
    """The key a client resumes after (None: it does not), or a 400 that says what is wrong."""
    if not last_event_id:
        return None
    try:
        return EventKey.parse(last_event_id.strip())
    except (ConfigError, ValueError) as exc:  # ValueError: a digit int() does not read ("²")
        raise _bad_request(f"Last-Event-ID: {exc}; send the id of the last event received") from None


@router.get(
    "/events/live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "a stream of `id: <key>`, `data: <json>`"}},
    summary="Stored events as they happen (Server-Sent Events)",
)
async def live_events(
    request: Request,
    vehicle: list[str] = Query([], description="only these vehicles (repeat the parameter for several)"),  # noqa: B008
    kind: list[str] = Query([], description="only these event kinds"),  # noqa: B008
    driver: str | None = Query(None, description="only the events of the vehicle this driver held at the time"),
    last_event_id: str | None = Header(None, description="resume after this event key (sent by EventSource)"),
    _principal: Any = Depends(require(Role.VIEWER)),  # noqa: B008
) -> StreamingResponse:
    context = _context(request)
    client = client_filter(vehicle, kind, driver)
    after = resume_after(last_event_id)
    if client.driver is not None:
        client.assignments = by_vehicle(await driver_assignments(context.db, client.driver))
    return StreamingResponse(
        _stream(context, client, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _queued(queue: asyncio.Queue[LiveEvent], most: int) -> list[LiveEvent]:
    """What is waiting in `queue` now, at most `most`, without waiting."""
    out: list[LiveEvent] = []
    while len(out) < most and not queue.empty():
        out.append(queue.get_nowait())
    return out


async def _stream(context: ServiceContext, client: ClientFilter, after: EventKey | None) -> AsyncIterator[bytes]:
    # Subscribed before the resume is read: an event stored meanwhile arrives live too, and is sent once.
    subscription = context.hub.subscribe(client.accepts)
    sent = RecentKeys(SENT_KEYS)
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        if after is not None:
            for event in await stored_since(context.db, after, int(time.time() * 1000)):
                if client.accepts(event) and sent.add(event.key):
                    yield sse_event(event)
        refresh_at = time.monotonic() + DRIVER_REFRESH_S
        while True:
            if subscription.dropped:
                yield too_slow(subscription.dropped)
                return
            try:
                event = await asyncio.wait_for(subscription.queue.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                yield HEARTBEAT
            else:
                # With the client behind, what has queued up meanwhile goes in the same write: one send for many
                # events is what lets a process keep up with a busy fleet (bench/api_live.py).
                batch = [event, *_queued(subscription.queue, MAX_EVENTS_PER_WRITE - 1)]
                chunk = b"".join(sse_event(e) for e in batch if sent.add(e.key))
                if chunk:
                    yield chunk
            if client.driver is not None and time.monotonic() >= refresh_at:
                refresh_at = time.monotonic() + DRIVER_REFRESH_S
                client.assignments = by_vehicle(await driver_assignments(context.db, client.driver))
    finally:
        context.hub.unsubscribe(subscription)
