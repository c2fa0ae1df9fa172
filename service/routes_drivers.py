"""/v1/drivers: the driver registry (a manager registers and changes drivers; anyone logged in reads them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, status
from fleetsense.service import drivers as d
from fleetsense.service.registry_http import Manager, Viewer, answered, db_of, fleet_of, from_ms, now_ms
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(tags=["drivers"])

DriverId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", examples=["ann-01"])]
BadgeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9:_-]{1,64}$", examples=["04:A2:24:B2"])]
Text = Annotated[str, Field(min_length=1, max_length=d.MAX_TEXT_CHARS)]


class DriverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    driver_id: DriverId
    name: Text
    employee_no: Text | None = None
    badge_id: BadgeId | None = None
    manager: Text | None = Field(default=None, description="username of the manager who coaches them")


class DriverPatch(BaseModel):
    """Only the fields given change; null clears an optional one. `retire: true` retires the driver (their results
    are kept), `false` brings them back."""

    model_config = ConfigDict(extra="forbid")
    name: Text | None = None
    employee_no: Text | None = None
    badge_id: BadgeId | None = None
    manager: Text | None = None
    retire: bool | None = None


class DriverOut(BaseModel):
    driver_id: str
    name: str
    employee_no: str | None
    badge_id: str | None
    manager: str | None
    created_at: datetime | None
    retired_at: datetime | None
    active: bool


def _out(driver: d.Driver) -> DriverOut:
    return DriverOut(
        driver_id=driver.driver_id,
        name=driver.name,
        employee_no=driver.employee_no,
        badge_id=driver.badge_id,
        manager=driver.manager,
        created_at=from_ms(driver.created_ms),
        retired_at=from_ms(driver.retired_ms),
        active=driver.active,
    )


@router.post("/drivers", response_model=DriverOut, status_code=status.HTTP_201_CREATED)
async def create_driver(body: DriverIn, request: Request, _who: Manager) -> DriverOut:
    db, fleet = db_of(request), fleet_of(request)
    with answered():
        if await d.get_driver(db, fleet, body.driver_id) is not None:
            raise d.Conflict(
                f"driver {body.driver_id} exists", hint=f"change them with PATCH /v1/drivers/{body.driver_id}"
            )
        driver = d.Driver(**body.model_dump(), created_ms=now_ms())
        await d.save_driver(db, fleet, driver, before=None)
    return _out(driver)


@router.get("/drivers", response_model=list[DriverOut])
async def list_drivers(request: Request, _who: Viewer) -> list[DriverOut]:
    return [_out(x) for x in await d.list_drivers(db_of(request), fleet_of(request))]


@router.get("/drivers/{driver_id}", response_model=DriverOut)
async def get_driver(driver_id: DriverId, request: Request, _who: Viewer) -> DriverOut:
    with answered():
        return _out(await d.require_driver(db_of(request), fleet_of(request), driver_id))


@router.patch("/drivers/{driver_id}", response_model=DriverOut)
async def change_driver(driver_id: DriverId, body: DriverPatch, request: Request, _who: Manager) -> DriverOut:
    db, fleet = db_of(request), fleet_of(request)
    with answered():
        before = await d.require_driver(db, fleet, driver_id)
        after = d.changed(before, body.model_dump(exclude_unset=True), now_ms=now_ms())
        await d.save_driver(db, fleet, after, before=before)
    return _out(after)
