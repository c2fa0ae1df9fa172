"""The event lists: fleet-wide (fleet_events, one partition per UTC hour), a vehicle's (vehicle_events, one per
vehicle and UTC day) and a driver's (their assignments, then each vehicle's events inside each assignment), newest
first, each event with its attributed driver (service/attribution.py) and its review state (event_reviews, the same
partition key as vehicle_events). Their cursors name the result version they were read from (service/cursor.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.service import assignment_store
from fleetsense.service.attribution import Assignment, driver_at
from fleetsense.service.cursor import Cursor
from fleetsense.service.db import Db
from fleetsense.service.event_key import EventKey
from fleetsense.service.fleet_models import REVIEW_STATE_NEW, Event
from fleetsense.service.fleet_query import TimeRange, days_newest_first, hours_newest_first, ms_of, utc
from fleetsense.service.fleet_view import assignments_of
from fleetsense.service.fleet_walk import Partition, WalkPage, walk
from fleetsense.service.result_version import pinned_version

_COLUMNS = ("vehicle_id", "day_bucket", "start_time", "kind", "end_time", "duration_ms", "peak", "peak_unit")
_SLICE = " AND start_time >= ? AND start_time < ?"
_FLEET = t.EVENTS_BY_FLEET.read(*_COLUMNS, where=("day_bucket", "hour"))
_FLEET_OF_KIND = t.EVENTS_BY_FLEET.read(*_COLUMNS, where=("day_bucket", "hour", "kind"))  # SAI on kind
_VEHICLE = t.EVENTS_BY_VEHICLE.read(*_COLUMNS, where=("vehicle_id", "day_bucket"))
_VEHICLE_OF_KIND = t.EVENTS_BY_VEHICLE.read(*_COLUMNS, where=("vehicle_id", "day_bucket", "kind"))  # SAI on kind
_REVIEWS = t.EVENT_REVIEWS.read("start_time", "kind", "state", where=("vehicle_id", "day_bucket"))
REVIEW_READS_IN_FLIGHT = 32  # a page of 1,000 events may touch as many (vehicle, day) partitions


def fleet_partitions(span: TimeRange, kind: str | None) -> list[Partition]:
    return [_partition((day.isoformat(), hour), (day, hour), kind, span.from_ms, span.to_ms, fleet=True)
            for day, hour in hours_newest_first(span)]  # fmt: skip


def vehicle_partitions(
    vehicle_id: str, from_ms: int, to_ms: int, kind: str | None, *, prefix: tuple[Any, ...] = ()
) -> list[Partition]:
    return [
        _partition((*prefix, day.isoformat()), (vehicle_id, day), kind, from_ms, to_ms, fleet=False)
        for day in days_newest_first(from_ms, to_ms)
    ]


def _partition(
    position: tuple[Any, ...], key: tuple[Any, ...], kind: str | None, from_ms: int, to_ms: int, *, fleet: bool
) -> Partition:
    """The events of one partition that started in [from_ms, to_ms). Of one kind, the SAI index on kind finds
    them, but CQL cannot also slice start_time (kind is a clustering column after it): the slice is applied to
    the rows instead (only a range's first and last partitions hold rows outside it)."""
    if kind is None:
        return Partition(position, _FLEET if fleet else _VEHICLE, (*key, from_ms, to_ms), _SLICE)
    return Partition(
        position,
        _FLEET_OF_KIND if fleet else _VEHICLE_OF_KIND,
        (*key, kind),
        keep=lambda row: from_ms <= ms_of(row.start_time) < to_ms,
    )


def driver_partitions(assignments: Sequence[Assignment], span: TimeRange, kind: str | None) -> list[Partition]:
    """Each assignment's part of the range (an event is the driver's when their assignment holds its start), newest
    assignment first; positions (valid_from ms, vehicle, day) sort descending in that order."""
    out: list[Partition] = []
    newest_first = sorted(assignments, key=lambda a: (a.valid_from_us, a.vehicle_id), reverse=True)
    for a in newest_first:
        lo = max(span.from_ms, -(-a.valid_from_us // 1000))
        hi = min(span.to_ms, -(-a.end_us // 1000))
        if lo < hi:
            prefix = (a.valid_from_us // 1000, a.vehicle_id)
            out += vehicle_partitions(a.vehicle_id, lo, hi, kind, prefix=prefix)
    return out


async def fleet_page(
    db: Db, span: TimeRange, kind: str | None, cursor: Cursor | None, limit: int
) -> tuple[list[Event], Cursor | None]:
    return await _events(db, await walk(db, fleet_partitions(span, kind), cursor, limit), driver=None)


async def vehicle_page(
    db: Db, vehicle_id: str, span: TimeRange, kind: str | None, cursor: Cursor | None, limit: int
) -> tuple[list[Event], Cursor | None]:
    partitions = vehicle_partitions(vehicle_id, span.from_ms, span.to_ms, kind)
    return await _events(db, await walk(db, partitions, cursor, limit), driver=None)


async def driver_page(
    db: Db, driver_id: str, span: TimeRange, kind: str | None, cursor: Cursor | None, limit: int
) -> tuple[list[Event], Cursor | None]:
    assignments = await assignment_store.driver_assignments(db, driver_id)
    partitions = driver_partitions(assignments, span, kind)
    return await _events(db, await walk(db, partitions, cursor, limit), driver=driver_id)


async def _events(db: Db, page: WalkPage, *, driver: str | None) -> tuple[list[Event], Cursor | None]:
    rows = [row for _, row in page.rows]
    vehicles = sorted({row.vehicle_id for row in rows})
    assignments = await assignments_of(db, vehicles) if driver is None else {}
    reviews = await _review_states(db, rows)
    events = []
    for row in rows:
        start_ms, end_ms = ms_of(row.start_time), ms_of(row.end_time)
        who = driver if driver is not None else driver_at(assignments[row.vehicle_id], start_ms * 1000)
        events.append(
            Event(
                key=str(EventKey(row.vehicle_id, start_ms, row.kind)),
                vehicle_id=row.vehicle_id,
                driver_id=who,
                kind=row.kind,
                start=utc(row.start_time),
                start_ms=start_ms,
                end=utc(row.end_time),
                end_ms=end_ms,
                duration_ms=row.duration_ms,
                peak=row.peak,
                peak_unit=row.peak_unit,
                review_state=reviews.get((row.vehicle_id, start_ms, row.kind), REVIEW_STATE_NEW),
            )
        )
    following = page.next
    if following is not None:  # the version the request read (pinned at its start): a later one refuses it
        following = replace(following, results_version=pinned_version())
    return events, following


async def _review_states(db: Db, rows: Sequence[Any]) -> dict[tuple[str, int, str], str]:
    """The review state of each reviewed event among `rows`: one read per (vehicle, day) partition, sliced to the
    page's times."""
    spans: dict[tuple[str, date], tuple[datetime, datetime]] = {}
    for row in rows:
        key = (row.vehicle_id, _day(row.day_bucket))
        lo, hi = spans.get(key, (row.start_time, row.start_time))
        spans[key] = (min(lo, row.start_time), max(hi, row.start_time))
    gate = asyncio.Semaphore(REVIEW_READS_IN_FLIGHT)

    async def read(vehicle: str, day: date, lo: datetime, hi: datetime) -> list[Any]:
        async with gate:
            slice_ = " AND start_time >= ? AND start_time <= ?"
            return await db.rows(_REVIEWS, (vehicle, day, ms_of(lo), ms_of(hi)), suffix=slice_)

    found_all = await asyncio.gather(*(read(v, day, lo, hi) for (v, day), (lo, hi) in spans.items()))
    states: dict[tuple[str, int, str], str] = {}
    for (vehicle, _), found in zip(spans, found_all, strict=True):
        for review in found:
            states[(vehicle, ms_of(review.start_time), review.kind)] = review.state
    return states


def _day(value: Any) -> date:
    # The driver reads a `date` back as a cassandra.util.Date; its date() is the datetime.date.
    return value if isinstance(value, date) else value.date()
