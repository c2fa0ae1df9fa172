"""A driver badge read by a vehicle's agent is an assignment too. The agent sends the badge in its status
(docs/wire-format.md, `badge`); the job stores it in `vehicle_status.badge_id`; a periodic sweep here (a component,
service/context.py) reads each registered vehicle's status and, when its badge names a driver other than the one
holding the vehicle, assigns that driver from the status's arrival (source `badge`), which ends the running
assignment as any shift change does.

Why a sweep and not on read: it works when nobody reads, costs one status read per vehicle per interval, and its
assignment's start is the status's arrival time, so two sweeps (two API processes) write the same row. While a badge
sits in the reader it wins: an assignment set by hand after it is replaced at the next status that shows the badge.
A badge taken out ends nothing (the next badge does); a status older than `FRESH_MS`, or an offline vehicle's, is
not acted on."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.service import assignment_writes as aw
from fleetsense.service.db import Db
from fleetsense.service.drivers import driver_of_badge, ms
from fleetsense.service.vehicles_registry import fleet_vehicles

from fleetsense.errors import ConfigError

log = logging.getLogger(__name__)

FRESH_MS = 5 * 60_000  # a status older than this says nothing about who drives now
BADGE = "badge"  # the assignment's source and setter
_STATUS = t.VEHICLE_STATUS.read("badge_id", "online", "received_at", where=("vehicle_id",))


@dataclass(frozen=True, kw_only=True)
class BadgeReading:
    vehicle_id: str
    badge_id: str | None
    online: bool
    received_ms: int


def badge_assignment(reading: BadgeReading, held: aw.Stored | None, badge_driver: str | None, now_ms: int) -> bool:
    """Whether the reading calls for an assignment of `badge_driver` from its arrival: a fresh reading of an
    online vehicle whose badge names a driver other than `held`'s (the assignment holding the vehicle at the
    reading's arrival), and which arrived after that assignment started."""
    if reading.badge_id is None or badge_driver is None or not reading.online:
        return False
    if now_ms - reading.received_ms > FRESH_MS:
        return False
    if held is None:
        return True
    return held.assignment.driver_id != badge_driver and held.from_ms < reading.received_ms


async def reading_of(db: Db, vehicle_id: str) -> BadgeReading | None:
    found = await db.rows(_STATUS, (vehicle_id,))
    if not found or found[0].received_at is None:
        return None
    row = found[0]
    received = ms(row.received_at)
    assert received is not None
    return BadgeReading(vehicle_id=vehicle_id, badge_id=row.badge_id, online=bool(row.online), received_ms=received)


async def apply_badge(db: Db, fleet_id: str, vehicle_id: str, *, now_ms: int) -> aw.Stored | None:
    """The assignment a vehicle's latest status badge makes, written; None when it makes none."""
    reading = await reading_of(db, vehicle_id)
    if reading is None or reading.badge_id is None:
        return None
    driver = await driver_of_badge(db, fleet_id, reading.badge_id)
    held = aw.running(await aw.vehicle_history(db, vehicle_id), reading.received_ms)
    if not badge_assignment(reading, held, driver, now_ms):
        return None
    assert driver is not None
    return await aw.create(
        db,
        fleet_id,
        vehicle_id=vehicle_id,
        driver_id=driver,
        from_ms=reading.received_ms,
        source=BADGE,
        set_by=BADGE,
        now_ms=now_ms,
    )


async def sweep_once(db: Db, fleet_id: str, *, now_ms: int, concurrency: int = 16) -> int:
    """One pass over the fleet's registered vehicles; how many badge assignments it made. A vehicle whose badge
    cannot be placed (it overlaps an assignment set by hand that has an end) is logged and left."""
    gate = asyncio.Semaphore(concurrency)

    async def one(vehicle_id: str) -> bool:
        async with gate:
            try:
                return await apply_badge(db, fleet_id, vehicle_id, now_ms=now_ms) is not None
            except ConfigError as exc:
                log.warning("%s: its badge makes no assignment: %s", vehicle_id, exc.message)
                return False

    done = await asyncio.gather(*(one(v.vehicle_id) for v in await fleet_vehicles(db, fleet_id)))
    return sum(done)


@dataclass
class BadgeSweep:
    """The component: `sweep_once` every `interval_s` (the agent's status comes every 30 s)."""

    interval_s: float = 30.0
    sweeps: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, context: Any) -> None:
        self._task = asyncio.create_task(self._run(context.db, context.settings.fleet_id))

    async def _run(self, db: Db, fleet_id: str) -> None:
        while True:
            try:
                await sweep_once(db, fleet_id, now_ms=round(datetime.now(UTC).timestamp() * 1000))
                self.sweeps += 1
            except Exception:  # the database away for a moment: the next sweep tries again
                log.exception("the badge sweep failed; retrying in %s s", self.interval_s)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
