"""One vehicle now, from what its tables say: reads of its partitions (I/O) and the pure assembly of a `VehicleNow`
from them (tested alone). The fleet view (service/fleet_snapshot.py) and GET /v1/vehicles/{id} both use it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.table_model import LOCAL_ONE
from fleetsense.service import assignment_store
from fleetsense.service.attribution import Assignment, driver_at
from fleetsense.service.db import Db
from fleetsense.service.fleet_events import ms_of, utc
from fleetsense.service.fleet_models import VehicleNow
from fleetsense.service.fleet_query import day_of

_FLEET = t.FLEET_VEHICLES.read("vehicle_id", "label", where=("fleet_id",))
_ONE_OF_FLEET = t.FLEET_VEHICLES.read("vehicle_id", "label", where=("fleet_id", "vehicle_id"))
# A status a heartbeat old is as good as the newest for a view that is seconds stale anyway: one replica answers.
_STATUS = t.VEHICLE_STATUS.read("online", "reason", "received_at", where=("vehicle_id",), consistency=LOCAL_ONE)
_SEEN = t.VEHICLES.read("last_sample_time", where=("vehicle_id",))
_NEWEST_TRIP = t.TRIPS.read("start_time", "duration_s", "open", where=("vehicle_id",))
_DAY_SCORE = t.DRIVER_SCORES.read("score", "driving_s", "event_counts", where=("vehicle_id", "day_bucket"))


@dataclass(frozen=True)
class VehicleRows:
    """What one vehicle's partitions hold (a row or None for each)."""

    vehicle_id: str
    label: str | None
    status: Any | None
    seen: Any | None
    newest_trip: Any | None
    assignments: list[Assignment]
    today_score: Any | None


def vehicle_now(rows: VehicleRows, *, now_ms: int) -> VehicleNow:
    status, seen, trip, score = rows.status, rows.seen, rows.newest_trip, rows.today_score
    seen_at = seen.last_sample_time if seen is not None else None
    open_trip = trip if trip is not None and trip.open else None
    return VehicleNow(
        vehicle_id=rows.vehicle_id,
        label=rows.label,
        online=status.online if status is not None else None,
        status_reason=status.reason if status is not None else None,
        status_received_at=utc(status.received_at) if status is not None and status.received_at else None,
        last_seen=utc(seen_at) if seen_at is not None else None,
        last_seen_ms=ms_of(seen_at) if seen_at is not None else None,
        trip_open=open_trip is not None,
        trip_start=utc(open_trip.start_time) if open_trip is not None else None,
        trip_start_ms=ms_of(open_trip.start_time) if open_trip is not None else None,
        trip_duration_s=float(open_trip.duration_s) if open_trip is not None else None,
        driver_id=driver_at(rows.assignments, now_ms * 1000),
        events_today=dict(score.event_counts or {}) if score is not None else {},
        score_today=float(score.score) if score is not None and score.score is not None else None,
        driving_s_today=float(score.driving_s) if score is not None and score.driving_s is not None else None,
    )


async def fleet_members(db: Db, fleet_id: str) -> list[tuple[str, str | None]]:
    """(vehicle_id, label) of every vehicle of the fleet, by id."""
    return [(row.vehicle_id, row.label) for row in await db.rows(_FLEET, (fleet_id,))]


async def fleet_member(db: Db, fleet_id: str, vehicle_id: str) -> tuple[str, str | None] | None:
    found = await db.rows(_ONE_OF_FLEET, (fleet_id, vehicle_id))
    return (found[0].vehicle_id, found[0].label) if found else None


async def vehicle_rows(db: Db, vehicle_id: str, label: str | None, *, now_ms: int) -> VehicleRows:
    """The five reads of one vehicle, concurrently; each names its partition."""
    status, seen, trip, assignments, score = await asyncio.gather(
        db.page(_STATUS, (vehicle_id,), page_rows=1),
        db.page(_SEEN, (vehicle_id,), page_rows=1),
        db.page(_NEWEST_TRIP, (vehicle_id,), page_rows=1, suffix=" LIMIT 1"),
        assignment_store.vehicle_assignments(db, vehicle_id),
        db.page(_DAY_SCORE, (vehicle_id, day_of(now_ms)), page_rows=1),
    )
    return VehicleRows(
        vehicle_id=vehicle_id,
        label=label,
        status=_first(status.rows),
        seen=_first(seen.rows),
        newest_trip=_first(trip.rows),
        assignments=assignments,
        today_score=_first(score.rows),
    )


def _first(rows: list[Any]) -> Any | None:
    return rows[0] if rows else None
