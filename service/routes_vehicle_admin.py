"""An admin registers vehicles into the fleet (`fleet_vehicles`), labels them, and sets their class (car, van,
truck: their event thresholds), as `fleetsense vehicle-class` does. Reading vehicles is the fleet view's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, status
from fleetsense.cloud.analytics.events import VEHICLE_CLASSES
from fleetsense.service import vehicles_registry as v
from fleetsense.service.registry_http import Admin, answered, db_of, fleet_of, from_ms, now_ms
from fleetsense.service.routes_assignments import VehicleId
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(tags=["vehicles"])

Label = Annotated[str, Field(min_length=1, max_length=200, examples=["KA-1234 (van 1)"])]


class VehicleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vehicle_id: VehicleId
    label: Label | None = None


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Label | None


class ClassIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vehicle_class: str = Field(description=f"one of {', '.join(sorted(VEHICLE_CLASSES))}")


class RegisteredOut(BaseModel):
    vehicle_id: str
    label: str | None
    registered_at: datetime | None


class ClassOut(BaseModel):
    vehicle_id: str
    vehicle_class: str
    chosen: bool = Field(
        default=True, description="set for this vehicle (false: nobody set one, so the default class applies)"
    )


def _out(vehicle: v.FleetVehicle) -> RegisteredOut:
    return RegisteredOut(
        vehicle_id=vehicle.vehicle_id, label=vehicle.label, registered_at=from_ms(vehicle.registered_ms)
    )


@router.post("/vehicles", response_model=RegisteredOut, status_code=status.HTTP_201_CREATED)
async def register_vehicle(body: VehicleIn, request: Request, _who: Admin) -> RegisteredOut:
    with answered():
        vehicle = await v.register(db_of(request), fleet_of(request), body.vehicle_id, body.label, now_ms=now_ms())
    return _out(vehicle)


@router.patch("/vehicles/{vehicle_id}", response_model=RegisteredOut)
async def relabel_vehicle(vehicle_id: VehicleId, body: LabelIn, request: Request, _who: Admin) -> RegisteredOut:
    with answered():
        vehicle = await v.relabel(db_of(request), fleet_of(request), vehicle_id, body.label, now_ms=now_ms())
    return _out(vehicle)


@router.put("/vehicles/{vehicle_id}/class", response_model=ClassOut)
async def set_vehicle_class(vehicle_id: VehicleId, body: ClassIn, request: Request, _who: Admin) -> ClassOut:
    with answered():
        await v.set_class(db_of(request), vehicle_id, body.vehicle_class, now_ms=now_ms())
    return ClassOut(vehicle_id=vehicle_id, vehicle_class=body.vehicle_class)
