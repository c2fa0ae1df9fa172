"""What the trace, trip and scorecard routes read from the job's tables, each query naming its partition: an event,
a vehicle's class, its batches around a time, its trips, minute rows, reviews and daily scores. Rows come back as
the driver gives them; times as UTC microseconds. The results (events, trips, minutes, daily scores) are read from
the result version the request is pinned to: `Db` routes them (service/db.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS, VEHICLE_CLASSES
from fleetsense.cloud.store import HOUR_US, day_buckets, hour_bucket_ms
from fleetsense.service.db import Db

from fleetsense import wire

_EVENT = ("start_time", "kind", "end_time", "duration_ms", "peak", "peak_unit")
_ONE_EVENT = t.EVENTS_BY_VEHICLE.read(*_EVENT, where=("vehicle_id", "day_bucket", "start_time", "kind"))
_EVENTS_OF_DAY = t.EVENTS_BY_VEHICLE.read(*_EVENT, where=("vehicle_id", "day_bucket"))
_PROFILE = t.VEHICLE_PROFILES.read("vehicle_class", where=("vehicle_id",))
# Batches: their keys and times first (a few bytes a row), then the messages of the seq range in the window only.
_BATCH_TIMES = t.BATCHES.read(
    "epoch", "seq", "kind", "start_time", "sample_count", "sample_period_us", where=("vehicle_id", "hour_bucket")
)
_BATCH_MESSAGES = t.BATCHES.read("seq", "kind", "message", where=("vehicle_id", "hour_bucket", "epoch"))
_SEQ_RANGE = " AND seq >= ? AND seq <= ?"
_TRIP = ("start_time", "end_time", "duration_s", "open", "event_counts", "score")
_TRIPS = t.TRIPS.read(*_TRIP, where=("vehicle_id",))
_ONE_TRIP = t.TRIPS.read(*_TRIP, where=("vehicle_id", "start_time"))
_MINUTE = ("minute", "sample_count", "driving_s", "max_longitudinal_g", "max_lateral_g", "rms_vertical_g")
_MINUTES = t.MINUTE_AGGREGATES.read(*_MINUTE, "event_counts", where=("vehicle_id", "day_bucket"))
_REVIEWS = t.EVENT_REVIEWS.read("start_time", "kind", "state", where=("vehicle_id", "day_bucket"))
_DAILY = t.DRIVER_SCORES.read("day_bucket", "score", "driving_s", "event_counts", where=("vehicle_id",))
_DRIVERS = t.DRIVERS.read("driver_id", "name", "retired_at", where=("fleet_id",))
_ONE_DRIVER = t.DRIVERS.read("driver_id", "name", where=("fleet_id", "driver_id"))
_FLEET_VEHICLES = t.FLEET_VEHICLES.read("vehicle_id", where=("fleet_id",))

# The latest time a request may name (9999-12-31T23:59:59.999Z): later ones cannot be a UTC day or a timestamp.
LATEST_MS = 253_402_300_799_999
# A batch starting this long before a window may still hold samples in it (the edge's longest batch window).
LONGEST_BATCH_US = 60_000_000
_MOTION_KINDS = frozenset({int(wire.Kind.IMU), int(wire.Kind.ACCEL)})


def to_us(value: datetime) -> int:
    """A timestamp column's value (a naive UTC datetime) in UTC microseconds."""
    return round(value.replace(tzinfo=UTC).timestamp() * 1_000_000)


def day_of(value: Any) -> date:
    """A `date` column's value (cassandra.util.Date) as a datetime.date."""
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


async def event(db: Db, vehicle_id: str, start_ms: int, kind: str) -> Any | None:
    from fleetsense.cloud.store import day_bucket

    rows = await db.rows(_ONE_EVENT, (vehicle_id, day_bucket(start_ms * 1000), start_ms, kind))
    return rows[0] if rows else None


async def events_between(db: Db, vehicle_id: str, start_us: int, end_us: int) -> list[Any]:
    """The vehicle's events that started in [start_us, end_us), oldest first (one read per UTC day)."""
    rows = []
    for day in day_buckets(start_us, max(start_us, end_us - 1)):
        rows += await db.rows(_EVENTS_OF_DAY, (vehicle_id, day))
    inside = [row for row in rows if start_us <= to_us(row.start_time) < end_us]
    return sorted(inside, key=lambda row: (row.start_time, row.kind))


async def vehicle_class(db: Db, vehicle_id: str, *, default: str = DEFAULT_VEHICLE_CLASS) -> str:
    """The vehicle's class, `default` when nobody set one (the job's `vehicle_class` setting of the version read)."""
    rows = await db.rows(_PROFILE, (vehicle_id,))
    found = rows[0].vehicle_class if rows else None
    return found if found in VEHICLE_CLASSES else default


async def motion_messages(db: Db, vehicle_id: str, from_us: int, to_us_: int) -> list[bytes]:
    """The wire messages of the vehicle's motion batches that may hold samples in [from_us, to_us_): the hour
    partitions the window touches, their batches' keys and start times first, then only the messages of the seq
    range whose batches start in the window (a few bytes a row to skip, instead of every message of the hour)."""
    first_us = from_us - LONGEST_BATCH_US
    hours = range(hour_bucket_ms(first_us) * 1000, to_us_, HOUR_US)
    messages: list[bytes] = []
    for hour_us in hours:
        hour_ms = hour_us // 1000
        keys = await db.page(_BATCH_TIMES, (vehicle_id, hour_ms), page_rows=10_000)
        rows = keys.rows
        if keys.paging_state is not None:  # an hour of more than 10,000 batches: read the rest too
            rows = await db.rows(_BATCH_TIMES, (vehicle_id, hour_ms))
        seqs: dict[int, list[int]] = {}
        for row in rows:
            start_us = to_us(row.start_time)
            end_us = start_us + row.sample_count * row.sample_period_us
            if row.kind in _MOTION_KINDS and end_us > from_us and start_us < to_us_:
                seqs.setdefault(row.epoch, []).append(row.seq)
        for epoch, found in seqs.items():
            params = (vehicle_id, hour_ms, epoch, min(found), max(found))
            for row in await db.rows(_BATCH_MESSAGES, params, suffix=_SEQ_RANGE):
                if row.kind in _MOTION_KINDS:
                    messages.append(bytes(row.message))
    return messages


async def trips(db: Db, vehicle_id: str, from_us: int, to_us_: int, *, limit: int) -> list[Any]:
    """The vehicle's trips that started in [from_us, to_us_), newest first (a clustering slice of its partition)."""
    suffix = " AND start_time >= ? AND start_time < ?"
    rows = await db.rows(_TRIPS, (vehicle_id, from_us // 1000, to_us_ // 1000), suffix=suffix, most=limit)
    return rows


async def trip(db: Db, vehicle_id: str, start_ms: int) -> Any | None:
    rows = await db.rows(_ONE_TRIP, (vehicle_id, start_ms))
    return rows[0] if rows else None


async def minutes(db: Db, vehicle_id: str, days: Sequence[date]) -> list[Any]:
    """The vehicle's minute rows of those UTC days, oldest first."""
    per_day = await asyncio.gather(*(db.rows(_MINUTES, (vehicle_id, day)) for day in days))
    return sorted((row for rows in per_day for row in rows), key=lambda row: row.minute)


async def dismissed(db: Db, vehicle_id: str, days: Sequence[date]) -> list[tuple[int, str]]:
    """(start us, kind) of the vehicle's events dismissed as false positives on those UTC days."""
    per_day = await asyncio.gather(*(db.rows(_REVIEWS, (vehicle_id, day)) for day in days))
    return [(to_us(row.start_time), row.kind) for rows in per_day for row in rows if row.state == "dismissed"]


async def daily_scores(db: Db, vehicle_id: str, first: date, last: date) -> list[Any]:
    """The job's daily_scores rows of the vehicle from `first` to `last` (inclusive), oldest first."""
    rows = await db.rows(_DAILY, (vehicle_id, first, last), suffix=" AND day_bucket >= ? AND day_bucket <= ?")
    return sorted(rows, key=lambda row: day_of(row.day_bucket))


async def drivers(db: Db, fleet_id: str) -> list[Any]:
    return await db.rows(_DRIVERS, (fleet_id,))


async def driver(db: Db, fleet_id: str, driver_id: str) -> Any | None:
    rows = await db.rows(_ONE_DRIVER, (fleet_id, driver_id))
    return rows[0] if rows else None


async def fleet_vehicle_ids(db: Db, fleet_id: str) -> list[str]:
    return [row.vehicle_id for row in await db.rows(_FLEET_VEHICLES, (fleet_id,))]
