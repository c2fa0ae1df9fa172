"""The catalogues a client names things from: the vehicle classes (their event thresholds) and the event kinds, served
from their one declaration (cloud/analytics/events.py, fleetsense/event_kinds.py) so the dashboard holds no second
list of either (docs/plan-18.md). Any logged-in role reads them; they change only with a release."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS, DETECTORS, VEHICLE_CLASSES
from fleetsense.service.auth import require
from fleetsense.service.roles import Role
from pydantic import BaseModel, Field

from fleetsense.event_kinds import EVENT_KINDS

router = APIRouter(tags=["catalog"], dependencies=[Depends(require(Role.VIEWER))])


class VehicleClassOut(BaseModel):
    name: str = Field(examples=["van"])
    default: bool = Field(description="the class of a vehicle nobody has set one for")
    thresholds_g: dict[str, float] = Field(description="per harsh or bump kind, the level (g) an event starts at")
    min_duration_ms: int = Field(description="a harsh event shorter than this is dropped")


class EventKindOut(BaseModel):
    key: str = Field(description="as events, counts and webhooks name it", examples=["harsh_brake"])
    label: str = Field(description="for people", examples=["harsh brake"])
    unit: str = Field(description="the unit of an event's `peak`", examples=["g"])
    harsh: bool = Field(description="a driving behaviour the driver is judged on")
    counted: bool = Field(description="counted in the minute, trip and day totals (events_today, leaderboards)")
    description: str


def kind_label(key: str) -> str:
    """A kind's name for people ("harsh_brake" -> "harsh brake"): the dashboard prints this, never the key."""
    return key.replace("_", " ")


@router.get("/vehicle-classes", response_model=list[VehicleClassOut])
async def vehicle_classes() -> list[VehicleClassOut]:
    """Every vehicle class an admin may set (PUT /v1/vehicles/{id}/class), in declaration order."""
    return [
        VehicleClassOut(
            name=name,
            default=name == DEFAULT_VEHICLE_CLASS,
            thresholds_g={d.kind: d.level_g(thresholds) for d in DETECTORS},
            min_duration_ms=thresholds.min_duration_ms,
        )
        for name, thresholds in VEHICLE_CLASSES.items()
    ]


@router.get("/event-kinds", response_model=list[EventKindOut])
async def event_kinds() -> list[EventKindOut]:
    """Every kind of event fleetsense records, in declaration order."""
    return [
        EventKindOut(
            key=kind.key,
            label=kind_label(kind.key),
            unit=kind.peak_unit,
            harsh=kind.harsh,
            counted=kind.counted,
            description=kind.description,
        )
        for kind in EVENT_KINDS
    ]
