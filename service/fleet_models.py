"""What the read API answers, as pydantic models: the OpenAPI document and the CSV header rows are derived from them.

Every time is given twice: ISO 8601 UTC for people, ms since 1970 for programs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

REVIEW_STATE_NEW = "new"  # an event nobody has reviewed (no event_reviews row)


class Event(BaseModel):
    key: str = Field(description="the event's deterministic key, <vehicle_id>/<start ms>/<kind>")
    vehicle_id: str
    driver_id: str | None = Field(description="the driver assigned at its start (null: nobody was)")
    kind: str = Field(description="fleetsense.event_kinds: harsh_brake, bump, stop, ...")
    start: datetime
    start_ms: int
    end: datetime
    end_ms: int
    duration_ms: int
    peak: float = Field(description="its peak, in peak_unit")
    peak_unit: str
    review_state: str = Field(description="new, reviewed, coached or dismissed")


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null: the range is done. A page may hold fewer than"
        " `limit` items (even none) before the end: follow next_cursor until it is null"
    )


class VehicleNow(BaseModel):
    vehicle_id: str
    label: str | None = Field(description="what operators call it (null: its id)")
    online: bool | None = Field(description="connected, as its latest status says (null: no status yet)")
    status_reason: str | None = Field(description="heartbeat, connected, stopping or connection lost")
    status_received_at: datetime | None
    last_seen: datetime | None = Field(description="its newest sample's time (null: no data yet)")
    last_seen_ms: int | None
    trip_open: bool = Field(description="a trip is under way")
    trip_start: datetime | None = Field(description="the open trip's start (null: none)")
    trip_start_ms: int | None
    trip_duration_s: float | None = Field(description="the open trip's length so far")
    driver_id: str | None = Field(description="the driver assigned now (null: nobody)")
    events_today: dict[str, int] = Field(description="today's (UTC) counted events per kind, as the job counts them")
    score_today: float | None = Field(description="today's (UTC) driver score, 0-100 (null: no driving yet)")
    driving_s_today: float | None


class FleetNow(BaseModel):
    as_of: datetime = Field(
        description="when the snapshot these rows come from was taken: they are at least this fresh (its age is"
        " also in the X-Snapshot-Age-S header)"
    )
    as_of_ms: int
    vehicles: list[VehicleNow]


class VehiclePage(BaseModel):
    as_of: datetime
    as_of_ms: int
    items: list[VehicleNow]
    next_cursor: str | None
