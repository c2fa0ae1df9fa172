"""One vehicle now, from what its tables say: reads of its partitions (I/O) and the pure assembly of a `VehicleNow`
from them (tested alone). The fleet view (service/fleet_snapshot.py) and GET /v1/vehicles/{id} both use it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.table_model import LOCAL_ONE
from fleetsense.service.attribution import Assignment, driver_at
from fleetsense.service.db import Db
from fleetsense.service.fleet_models import VehicleNow
from fleetsense.service.fleet_query import day_of, ms_of, utc

_FLEET = t.FLEET_VEHICLES.read("vehicle_id", "label", where=("fleet_id",))
_ONE_OF_FLEET = t.FLEET_VEHICLES.read("vehicle_id", "label", where=("fleet_id", "vehicle_id"))
# Each read below names its partitions, a batch of vehicles at once (`IN ?`, bound to their ids): 5 queries for 100
# vehicles instead of 500, because the driver's cost per query, not Cassandra's, bounds how often the view refreshes.
_IN = " WHERE vehicle_id IN ?"
# A status a heartbeat old is as good as the newest for a view that is seconds stale anyway: one replica answers.
_STATUS = t.VEHICLE_STATUS.read("vehicle_id", "online", "reason", "received_at", consistency=LOCAL_ONE)
_SEEN = t.VEHICLES.read("vehicle_id", "last_sample_time")
_NEWEST_TRIP = t.TRIPS.read("vehicle_id", "start_time", "duration_s", "open")  # PER PARTITION LIMIT 1: the newest
_DAY_SCORE = t.DRIVER_SCORES.read("vehicle_id", "score", "driving_s", "event_counts")
_ASSIGNMENTS = t.VEHICLE_ASSIGNMENTS.read("vehicle_id", "driver_id", "valid_from", "valid_to")
BATCH_VEHICLES = 100  # vehicles a query names: a coordinator's fan-out kept small


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


async def vehicles_rows(db: Db, members: Sequence[tuple[str, str | None]], *, now_ms: int) -> list[VehicleRows]:
    """The five reads of up to BATCH_VEHICLES vehicles, concurrently; each names its partitions."""
    ids = [vehicle_id for vehicle_id, _ in members]
    status, seen, trips, scores, held = await asyncio.gather(
        db.rows(_STATUS, (ids,), suffix=_IN),
        db.rows(_SEEN, (ids,), suffix=_IN),
        db.rows(_NEWEST_TRIP, (ids,), suffix=_IN + " PER PARTITION LIMIT 1"),
        db.rows(_DAY_SCORE, (ids, day_of(now_ms)), suffix=_IN + " AND day_bucket = ?"),
        db.rows(_ASSIGNMENTS, (ids,), suffix=_IN),
    )
    by_status, by_seen, by_trip, by_score = (_by_vehicle(found) for found in (status, seen, trips, scores))
    assignments: dict[str, list[Assignment]] = {}
    for row in held:
        assignments.setdefault(row.vehicle_id, []).append(_assignment(row))
    return [
        VehicleRows(
            vehicle_id=vehicle_id,
            label=label,
            status=by_status.get(vehicle_id),
            seen=by_seen.get(vehicle_id),
            newest_trip=by_trip.get(vehicle_id),
            assignments=assignments.get(vehicle_id, []),
            today_score=by_score.get(vehicle_id),
        )
        for vehicle_id, label in members
    ]


async def assignments_of(db: Db, vehicle_ids: Sequence[str]) -> dict[str, list[Assignment]]:
    """Each vehicle's assignments (none: an empty list), BATCH_VEHICLES vehicles a query."""
    batches = [vehicle_ids[i : i + BATCH_VEHICLES] for i in range(0, len(vehicle_ids), BATCH_VEHICLES)]
    found = await asyncio.gather(*(db.rows(_ASSIGNMENTS, (list(batch),), suffix=_IN) for batch in batches))
    held: dict[str, list[Assignment]] = {vehicle_id: [] for vehicle_id in vehicle_ids}
    for row in (row for rows in found for row in rows):
        held[row.vehicle_id].append(_assignment(row))
    return held


def _by_vehicle(rows: list[Any]) -> dict[str, Any]:
    return {row.vehicle_id: row for row in rows}


def _assignment(row: Any) -> Assignment:
    end = None if row.valid_to is None else ms_of(row.valid_to) * 1000
    return Assignment(
        vehicle_id=row.vehicle_id, driver_id=row.driver_id, valid_from_us=ms_of(row.valid_from) * 1000, valid_to_us=end
    )
