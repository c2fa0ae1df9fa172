"""Events fleet-wide, of a vehicle and of a driver: filtered by kind and time range, newest first, a page at a time
behind a signed cursor, or the whole range as streamed CSV."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fleetsense.service import fleet_events
from fleetsense.service.auth import require
from fleetsense.service.csv_stream import CSV_PAGE_ITEMS, Format, csv_response, follow, wants_csv
from fleetsense.service.cursor import Cursor
from fleetsense.service.fleet_http import Cursors, bad_request, context_of, now_ms
from fleetsense.service.fleet_models import Event, EventPage
from fleetsense.service.fleet_query import DEFAULT_LIMIT, MAX_LIMIT, TimeRange, check_kind, check_limit, time_range
from fleetsense.service.roles import Role

router = APIRouter(tags=["events"], dependencies=[Depends(require(Role.VIEWER))])

From = Annotated[str | None, Query(alias="from", description="ISO 8601 or ms since 1970 (default: `to` - 24 h)")]
To = Annotated[str | None, Query(description="exclusive; ISO 8601 or ms since 1970 (default: now); at most 31 days")]
Kind = Annotated[str | None, Query(description="one kind of fleetsense.event_kinds")]
Limit = Annotated[int, Query(description=f"items a page, 1..{MAX_LIMIT}")]
CursorText = Annotated[str | None, Query(description="next_cursor of the previous page")]
FormatQuery = Annotated[Format | None, Query(description="csv: the whole range as CSV (also Accept: text/csv)")]
Fetch = Callable[[TimeRange, str | None, Cursor | None, int], Awaitable[tuple[list[Event], Cursor | None]]]
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "the events as JSON, or as CSV"},
    400: {"description": "a bad parameter or cursor: the detail says which and what to send"},
}


async def _answer(
    request: Request,
    fetch: Fetch,
    list_name: str,
    from_: str | None,
    to: str | None,
    kind: str | None,
    limit: int,
    cursor: str | None,
    format: Format | None,
) -> EventPage | Response:
    with bad_request():
        span = time_range(from_, to, now_ms=now_ms())
        kind = check_kind(kind)
        limit = check_limit(limit)
    cursors = Cursors(context_of(request), list_name, from_, to, kind)
    start = cursors.read(cursor)
    if start is not None:
        # The range the first page resolved (a default `to` is "now" then, not now): every page walks the same.
        span = TimeRange(*start.pinned) if len(start.pinned) == 2 else span
    pin = (span.from_ms, span.to_ms)

    async def fetch_pinned(at: Cursor | None, n: int) -> tuple[list[Event], Cursor | None]:
        items, following = await fetch(span, kind, at, n)
        return items, None if following is None else replace(following, pinned=pin)

    if wants_csv(request, format):
        pages = follow(lambda c: fetch_pinned(c, CSV_PAGE_ITEMS), start)
        return csv_response(Event, pages, f"{list_name.strip('/').replace('/', '-')}.csv")
    items, following = await fetch_pinned(start, limit)
    return EventPage(items=items, next_cursor=cursors.write(following))


@router.get("/events", response_model=EventPage, responses=_CSV)
async def fleet_events_list(
    request: Request,
    from_: From = None,
    to: To = None,
    kind: Kind = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorText = None,
    format: FormatQuery = None,
) -> EventPage | Response:
    """The whole fleet's events that started in [from, to), newest first."""
    db = context_of(request).db

    async def fetch(span: TimeRange, kind: str | None, at: Cursor | None, n: int) -> tuple[list[Event], Cursor | None]:
        return await fleet_events.fleet_page(db, span, kind, at, n)

    return await _answer(request, fetch, "events", from_, to, kind, limit, cursor, format)


@router.get("/vehicles/{vehicle_id}/events", response_model=EventPage, responses=_CSV)
async def vehicle_events_list(
    request: Request,
    vehicle_id: str,
    from_: From = None,
    to: To = None,
    kind: Kind = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorText = None,
    format: FormatQuery = None,
) -> EventPage | Response:
    """A vehicle's events that started in [from, to), newest first."""
    db = context_of(request).db

    async def fetch(span: TimeRange, kind: str | None, at: Cursor | None, n: int) -> tuple[list[Event], Cursor | None]:
        return await fleet_events.vehicle_page(db, vehicle_id, span, kind, at, n)

    return await _answer(request, fetch, f"vehicles/{vehicle_id}/events", from_, to, kind, limit, cursor, format)


@router.get("/drivers/{driver_id}/events", response_model=EventPage, responses=_CSV)
async def driver_events_list(
    request: Request,
    driver_id: str,
    from_: From = None,
    to: To = None,
    kind: Kind = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorText = None,
    format: FormatQuery = None,
) -> EventPage | Response:
    """A driver's events in [from, to): those that started while one of their assignments held the vehicle."""
    db = context_of(request).db

    async def fetch(span: TimeRange, kind: str | None, at: Cursor | None, n: int) -> tuple[list[Event], Cursor | None]:
        return await fleet_events.driver_page(db, driver_id, span, kind, at, n)

    return await _answer(request, fetch, f"drivers/{driver_id}/events", from_, to, kind, limit, cursor, format)
