"""Vehicles: the fleet's vehicles as a list (the fleet snapshot's rows, a page at a time by vehicle id) and one vehicle
read fresh from Cassandra. Registering a vehicle is an admin's write, not here."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS
from fleetsense.service.auth import require
from fleetsense.service.csv_stream import Format, csv_response, wants_csv
from fleetsense.service.cursor import Cursor
from fleetsense.service.fleet_http import Cursors, bad_request, context_of, now_ms
from fleetsense.service.fleet_models import VehicleNow, VehiclePage
from fleetsense.service.fleet_query import DEFAULT_LIMIT, MAX_LIMIT, check_limit, utc_of_ms
from fleetsense.service.fleet_snapshot import Snapshot
from fleetsense.service.fleet_view import fleet_member, vehicle_now, vehicles_rows
from fleetsense.service.roles import Role
from fleetsense.service.routes_fleet import SNAPSHOT_RESPONSES, fleet_snapshot
from fleetsense.service.routes_vehicle_admin import ClassOut
from fleetsense.service.vehicles_registry import vehicle_class

router = APIRouter(tags=["vehicles"], dependencies=[Depends(require(Role.VIEWER))])
LIST = "vehicles"


@router.get(
    "/vehicles",
    response_model=VehiclePage,
    responses={**SNAPSHOT_RESPONSES, 400: {"description": "a bad limit or cursor: the detail says which"}},
)
async def vehicles_list(
    request: Request,
    snapshot: Annotated[Snapshot, Depends(fleet_snapshot)],
    limit: Annotated[int, Query(description=f"items a page, 1..{MAX_LIMIT}")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    format: Annotated[Format | None, Query(description="csv: every vehicle as CSV")] = None,
) -> VehiclePage | Response:
    """The fleet's vehicles by id, as the fleet view shows them (`as_of`: the snapshot's time)."""
    with bad_request():
        limit = check_limit(limit)
    cursors = Cursors(context_of(request), LIST)
    after = cursors.read(cursor)
    vehicles = list(snapshot.vehicles)
    start = 0 if after is None else _after(vehicles, after)
    if wants_csv(request, format):
        return csv_response(VehicleNow, _one_page(vehicles[start:]), "vehicles.csv")
    items = vehicles[start : start + limit]
    following = Cursor((items[-1].vehicle_id,)) if start + limit < len(vehicles) and items else None
    return VehiclePage(
        as_of=utc_of_ms(snapshot.as_of_ms),
        as_of_ms=snapshot.as_of_ms,
        items=items,
        next_cursor=cursors.write(following),
    )


@router.get("/vehicles/{vehicle_id}", response_model=VehicleNow, responses={404: {"description": "no such vehicle"}})
async def vehicle_one(request: Request, vehicle_id: str) -> VehicleNow:
    """One vehicle now, read fresh from Cassandra (not from the snapshot)."""
    context = context_of(request)
    member = await fleet_member(context.db, context.settings.fleet_id, vehicle_id)
    if member is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _no_such(vehicle_id))
    at_ms = now_ms()
    (rows,) = await vehicles_rows(context.db, [member], now_ms=at_ms)
    return vehicle_now(rows, now_ms=at_ms)


@router.get(
    "/vehicles/{vehicle_id}/class", response_model=ClassOut, responses={404: {"description": "no such vehicle"}}
)
async def vehicle_class_now(request: Request, vehicle_id: str) -> ClassOut:
    """The vehicle's class (its harsh-event thresholds: GET /v1/vehicle-classes), or the default class when nobody
    set one (`chosen` false); an admin sets it with PUT."""
    context = context_of(request)
    if await fleet_member(context.db, context.settings.fleet_id, vehicle_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _no_such(vehicle_id))
    chosen = await vehicle_class(context.db, vehicle_id)
    return ClassOut(vehicle_id=vehicle_id, vehicle_class=chosen or DEFAULT_VEHICLE_CLASS, chosen=chosen is not None)


def _no_such(vehicle_id: str) -> str:
    return f"{vehicle_id[:100]!r} is no vehicle of this fleet: GET /v1/vehicles lists them (an admin registers one)"


def _after(vehicles: list[VehicleNow], cursor: Cursor) -> int:
    """The index of the first vehicle after the cursor's (ids are sorted; one removed since is simply passed)."""
    if len(cursor.position) != 1 or not isinstance(cursor.position[0], str):
        # Signed by this service for this list, so only an older release's: not a client's mistake to explain.
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "this cursor does not fit this list: start again without one")
    return bisect_right([v.vehicle_id for v in vehicles], cursor.position[0])


async def _one_page(items: list[VehicleNow]) -> AsyncIterator[list[VehicleNow]]:
    yield items
