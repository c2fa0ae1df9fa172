"""/v1/assignments: who had which vehicle when. A manager creates, corrects, ends and removes them; anyone logged in
reads a vehicle's or a driver's. An assignment is named by its vehicle and its start in ms since 1970 (`from_ms`).
Every result (events, trips, scores) is attributed when it is read, so a correction in the past moves them all."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from fleetsense.service import assignment_writes as aw
from fleetsense.service.registry_http import (
    Manager,
    Moment,
    Viewer,
    answered,
    db_of,
    fleet_of,
    from_ms,
    now_ms,
    to_ms,
)
from fleetsense.service.routes_drivers import DriverId
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(tags=["assignments"])

VehicleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["van-1"])]
FromMs = Annotated[int, Field(ge=0, le=4_102_444_800_000, description="the assignment's start, ms since 1970")]


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    vehicle_id: VehicleId
    driver_id: DriverId
    valid_from: Moment = Field(alias="from", description="when the driver takes the vehicle (ISO 8601 with offset)")
    valid_to: Moment | None = Field(default=None, alias="to", description="when they give it back; none: open")


class AssignmentPatch(BaseModel):
    """Only the fields given change; `to: null` reopens the assignment."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    driver_id: DriverId | None = None
    valid_from: Moment | None = Field(default=None, alias="from")
    valid_to: Moment | None = Field(default=None, alias="to")


class EndIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Moment


class AssignmentOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    vehicle_id: str
    driver_id: str
    valid_from: datetime = Field(alias="from")
    valid_to: datetime | None = Field(alias="to")
    from_ms: int
    to_ms: int | None
    source: str
    set_by: str
    set_at: datetime | None


def _out(stored: aw.Stored) -> AssignmentOut:
    return AssignmentOut.model_validate(
        {
            "vehicle_id": stored.assignment.vehicle_id,
            "driver_id": stored.assignment.driver_id,
            "from": from_ms(stored.from_ms),
            "to": from_ms(stored.to_ms),
            "from_ms": stored.from_ms,
            "to_ms": stored.to_ms,
            "source": stored.source,
            "set_by": stored.set_by,
            "set_at": from_ms(stored.set_at_ms),
        }
    )


@router.post("/assignments", response_model=AssignmentOut, status_code=status.HTTP_201_CREATED)
async def create_assignment(body: AssignmentIn, request: Request, who: Manager) -> AssignmentOut:
    with answered():
        stored = await aw.create(
            db_of(request),
            fleet_of(request),
            vehicle_id=body.vehicle_id,
            driver_id=body.driver_id,
            from_ms=to_ms(body.valid_from),
            to_ms=None if body.valid_to is None else to_ms(body.valid_to),
            source="api",
            set_by=who.username,
            now_ms=now_ms(),
        )
    return _out(stored)


@router.patch("/assignments/{vehicle_id}/{from_ms}", response_model=AssignmentOut)
async def correct_assignment(
    vehicle_id: VehicleId,
    from_ms: FromMs,
    body: AssignmentPatch,
    request: Request,
    who: Manager,
) -> AssignmentOut:
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "driver_id" in given and body.driver_id is not None:
        changes["driver_id"] = body.driver_id
    if "valid_from" in given and body.valid_from is not None:
        changes["new_from_ms"] = to_ms(body.valid_from)
    if "valid_to" in given:
        changes["to_ms"] = None if body.valid_to is None else to_ms(body.valid_to)
    with answered():
        stored = await aw.correct(
            db_of(request),
            fleet_of(request),
            vehicle_id=vehicle_id,
            from_ms=from_ms,
            set_by=who.username,
            now_ms=now_ms(),
            **changes,
        )
    return _out(stored)


@router.post("/assignments/{vehicle_id}/{from_ms}/end", response_model=AssignmentOut)
async def end_assignment(
    vehicle_id: VehicleId,
    from_ms: FromMs,
    body: EndIn,
    request: Request,
    who: Manager,
) -> AssignmentOut:
    with answered():
        stored = await aw.end(
            db_of(request),
            fleet_of(request),
            vehicle_id=vehicle_id,
            from_ms=from_ms,
            at_ms=to_ms(body.at),
            set_by=who.username,
            now_ms=now_ms(),
        )
    return _out(stored)


@router.delete("/assignments/{vehicle_id}/{from_ms}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_assignment(vehicle_id: VehicleId, from_ms: FromMs, request: Request, _who: Manager) -> Response:
    with answered():
        await aw.delete(db_of(request), vehicle_id=vehicle_id, from_ms=from_ms)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/vehicles/{vehicle_id}/assignments", response_model=list[AssignmentOut])
async def vehicle_assignments(vehicle_id: VehicleId, request: Request, _who: Viewer) -> list[AssignmentOut]:
    return [_out(s) for s in await aw.vehicle_history(db_of(request), vehicle_id)]


@router.get("/drivers/{driver_id}/assignments", response_model=list[AssignmentOut])
async def driver_assignments(driver_id: DriverId, request: Request, _who: Viewer) -> list[AssignmentOut]:
    return [_out(s) for s in await aw.driver_history(db_of(request), driver_id)]
