"""The catalogues a client names things from: the vehicle classes (their event thresholds), the event kinds and the
result versions, served from their one declaration (cloud/analytics/events.py, fleetsense/event_kinds.py,
`result_versions`) so the dashboard holds no second list of either (docs/plan-18.md). Any logged-in role reads them.
The kinds change only with a release; the classes' thresholds are those of the result version served (its
`thresholds` setting over the code's, issue 19), so they change with `fleetsense job promote` too."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fleetsense.cloud.analytics.events import DETECTORS
from fleetsense.service.auth import require
from fleetsense.service.result_version import class_thresholds, default_class
from fleetsense.service.results_http import serving
from fleetsense.service.roles import Role
from pydantic import BaseModel, Field

from fleetsense.event_kinds import EVENT_KINDS

router = APIRouter(tags=["catalog"], dependencies=[Depends(require(Role.VIEWER))])


class VehicleClassOut(BaseModel):
    name: str = Field(examples=["van"])
    default: bool = Field(description="the class of a vehicle nobody has set one for")
    thresholds_g: dict[str, float] = Field(description="per harsh or bump kind, the level (g) an event starts at")
    min_duration_ms: int = Field(description="a harsh event shorter than this is dropped")


class ResultVersionOut(BaseModel):
    version: int = Field(description="1 is the results as first computed; each `fleetsense job reprocess` adds one")
    state: str = Field(description="replaying, active, retired or dropped (its results removed)")
    active: bool = Field(description="the version every result the API serves is read from")
    parent: int | None = Field(description="the version it was reprocessed from (null: version 1)")
    from_time: datetime | None = Field(description="where its replay started (null: from the beginning)")
    from_ms: int | None = Field(description="from_time in ms since 1970")
    settings: dict[str, Any] = Field(description="the job settings it was computed with, beside the code's defaults")
    promoted_at: datetime | None = Field(description="when it last became the active version")


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
async def vehicle_classes(request: Request) -> list[VehicleClassOut]:
    """Every vehicle class an admin may set (PUT /v1/vehicles/{id}/class), in declaration order, with the thresholds
    the served result version's events were detected with."""
    active = await serving(request)
    default = default_class(active)
    return [
        VehicleClassOut(
            name=name,
            default=name == default,
            thresholds_g={d.kind: d.level_g(thresholds) for d in DETECTORS},
            min_duration_ms=thresholds.min_duration_ms,
        )
        for name, thresholds in class_thresholds(active).items()
    ]


@router.get("/result-versions", response_model=list[ResultVersionOut], tags=["results"])
async def result_versions(request: Request) -> list[ResultVersionOut]:
    """Every result version, oldest first, and which one the API serves (also named by each answer's
    X-Fleetsense-Results-Version header). Version 1 is always listed."""
    active = await serving(request)
    return [
        ResultVersionOut(
            version=v.version,
            state=v.state,
            active=v.version == active.version,
            parent=v.parent,
            from_time=v.from_time,
            from_ms=None if v.from_time is None else round(v.from_time.timestamp() * 1000),
            settings=dict(v.settings),
            promoted_at=v.promoted_at,
        )
        for v in active.versions
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
