"""The coaching workflow: each harsh event's review state (new, reviewed, coached, dismissed as a false positive)
in `event_reviews`, and the queue of harsh events awaiting review per manager (`review_queue`, one partition per
manager: listing a manager's queue is one query).

An event enters the queue of its driver's manager (`unassigned` when it has no driver or the driver no manager):
`queue_event` for each live event as it arrives, `enqueue_since` for those that arrived while no API ran (it walks
fleet_events' hour partitions). A review removes it from the queue; a review back to `new` puts it in again. A
dismissed event is left out of every score (docs/analytics.md): `dismissed_events` is the reader the scores use."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.store import day_bucket
from fleetsense.cloud.table_model import Write
from fleetsense.service.assignment_writes import running, vehicle_history
from fleetsense.service.db import Db, Delete
from fleetsense.service.drivers import NotFound, get_driver, ms
from fleetsense.service.event_key import EventKey
from fleetsense.service.live_event import LiveEvent

from fleetsense.errors import ConfigError
from fleetsense.event_kinds import HARSH_KINDS
from fleetsense.ids import validate_vehicle_id

log = logging.getLogger(__name__)

STATES = t.REVIEW_STATES
UNASSIGNED = "unassigned"  # the queue of events with no driver, or whose driver has no manager
MAX_NOTE_CHARS = 2_000
MAX_CATCH_UP_HOURS = 7 * 24  # enqueue_since walks at most a week of fleet_events' hour partitions
HOUR_MS = 3_600_000


@dataclass(frozen=True, kw_only=True)
class Review:
    key: str
    state: str
    note: str
    reviewed_by: str
    reviewed_ms: int
    driver_id: str | None


@dataclass(frozen=True, kw_only=True)
class Queued:
    key: str
    vehicle_id: str
    kind: str
    start_ms: int
    driver_id: str | None
    peak: float | None
    peak_unit: str | None
    queued_ms: int


_EVENT = t.EVENTS_BY_VEHICLE.read("peak", "peak_unit", where=("vehicle_id", "day_bucket", "start_time", "kind"))
_REVIEW_COLUMNS = ("start_time", "kind", "state", "note", "reviewed_by", "reviewed_at", "driver_id")
_REVIEW = t.EVENT_REVIEWS.read(*_REVIEW_COLUMNS, where=("vehicle_id", "day_bucket", "start_time", "kind"))
_DAY_REVIEWS = t.EVENT_REVIEWS.read("start_time", "kind", "state", where=("vehicle_id", "day_bucket"))
_QUEUE = t.REVIEW_QUEUE.read(
    "start_time", "vehicle_id", "kind", "driver_id", "peak", "peak_unit", "queued_at", where=("manager",)
)
_FLEET_HOUR = t.EVENTS_BY_FLEET.read(
    "start_time", "vehicle_id", "kind", "end_time", "duration_ms", "peak", "peak_unit", where=("day_bucket", "hour")
)


def check_state(state: str) -> str:
    if state not in STATES:
        raise ConfigError(f"{state[:40]!r} is no review state", hint=f"one of {', '.join(STATES)}")
    return state


LATEST_MS = 4_102_444_800_000  # 2100-01-01: a later start is no event's


def check_key(key: EventKey) -> EventKey:
    """A key that can name a stored event: a valid vehicle id and a start in 1970..2099 (else a 400, never a
    day bucket out of range)."""
    validate_vehicle_id(key.vehicle_id)
    if key.start_ms >= LATEST_MS:
        raise ConfigError(f"an event starting at {key.start_ms} ms", hint="an event's start is ms since 1970, < 2100")
    return key


def check_reviewable(key: EventKey) -> EventKey:
    check_key(key)
    if key.kind not in HARSH_KINDS:
        raise ConfigError(
            f"{key.kind[:40]} events are not reviewed", hint=f"harsh events are: {', '.join(HARSH_KINDS)}"
        )
    return key


def _event_key_values(key: EventKey) -> tuple[Any, ...]:
    return (key.vehicle_id, day_bucket(key.start_ms * 1000), key.start_ms, key.kind)


async def attributed_driver(db: Db, vehicle_id: str, at_ms: int) -> str | None:
    """Who had the vehicle at `at_ms` (service/attribution.py's rule), now: a correction moves it."""
    held = running(await vehicle_history(db, vehicle_id), at_ms)
    return None if held is None else held.assignment.driver_id


async def manager_of(db: Db, fleet_id: str, driver_id: str | None) -> str:
    driver = None if driver_id is None else await get_driver(db, fleet_id, driver_id)
    return driver.manager if driver is not None and driver.manager else UNASSIGNED


async def review_of(db: Db, key: EventKey) -> Review | None:
    found = await db.rows(_REVIEW, _event_key_values(check_key(key)))
    if not found:
        return None
    row = found[0]
    return Review(
        key=str(key),
        state=row.state,
        note=row.note or "",
        reviewed_by=row.reviewed_by or "",
        reviewed_ms=ms(row.reviewed_at) or 0,
        driver_id=row.driver_id,
    )


def _queue_row(manager: str, key: EventKey, driver_id: str | None, peak: Any, unit: Any, now_ms: int) -> Write:
    return t.REVIEW_QUEUE.row(
        manager=manager,
        start_time=key.start_ms,
        vehicle_id=key.vehicle_id,
        kind=key.kind,
        driver_id=driver_id,
        peak=peak,
        peak_unit=unit,
        queued_at=now_ms,
    )


async def review(
    db: Db, fleet_id: str, key: EventKey, *, state: str, note: str, reviewed_by: str, now_ms: int
) -> Review:
    """Set an event's review state. The event must be stored (404 otherwise); its driver is the one attributed
    now. A review takes the event off the queues it can be in (its driver's manager's, `unassigned`'s and the
    reviewer's own); `new` puts it back in its driver's manager's queue."""
    check_state(state)
    check_reviewable(key)
    if len(note) > MAX_NOTE_CHARS:
        raise ConfigError(f"a note of {len(note)} characters", hint=f"write at most {MAX_NOTE_CHARS}")
    found = await db.rows(_EVENT, _event_key_values(key))
    if not found:
        raise NotFound(f"no event {key}", hint="an event's key is <vehicle>/<start ms>/<kind>, as the API lists it")
    driver_id = await attributed_driver(db, key.vehicle_id, key.start_ms)
    manager = await manager_of(db, fleet_id, driver_id)
    vehicle, day, start, kind = _event_key_values(key)
    writes = [
        t.EVENT_REVIEWS.row(
            vehicle_id=vehicle,
            day_bucket=day,
            start_time=start,
            kind=kind,
            state=state,
            note=note,
            reviewed_by=reviewed_by,
            reviewed_at=now_ms,
            driver_id=driver_id,
        )
    ]
    deletes: list[Delete] = []
    if state == "new":
        writes.append(_queue_row(manager, key, driver_id, found[0].peak, found[0].peak_unit, now_ms))
    else:
        deletes = [(t.REVIEW_QUEUE, (m, start, vehicle, kind)) for m in sorted({manager, UNASSIGNED, reviewed_by})]
    await db.write(*writes, deletes=deletes, logged_batch=True)
    return Review(
        key=str(key), state=state, note=note, reviewed_by=reviewed_by, reviewed_ms=now_ms, driver_id=driver_id
    )


async def queue_event(db: Db, event: LiveEvent, *, fleet_id: str = "default", now_ms: int | None = None) -> str | None:
    """Put a harsh event in its driver's manager's queue; the queue's name, or None for an event that is not
    harsh or already reviewed (a replayed event, a catch-up over events seen live). Idempotent: the queue row is
    keyed by the event."""
    if event.kind not in HARSH_KINDS:
        return None
    key = EventKey(event.vehicle_id, event.start_ms, event.kind)
    reviewed = await review_of(db, key)
    if reviewed is not None and reviewed.state != "new":
        return None
    driver_id = await attributed_driver(db, event.vehicle_id, event.start_ms)
    manager = await manager_of(db, fleet_id, driver_id)
    stamp = now_ms if now_ms is not None else round(datetime.now(UTC).timestamp() * 1000)
    await db.write(_queue_row(manager, key, driver_id, event.peak, event.peak_unit, stamp))
    return manager


def hour_partitions(since_ms: int, until_ms: int) -> list[tuple[date, int]]:
    """fleet_events' (day, hour) partitions from the hour of `since_ms` to that of `until_ms`, at most
    MAX_CATCH_UP_HOURS of the newest."""
    first = max(since_ms - since_ms % HOUR_MS, until_ms - until_ms % HOUR_MS - (MAX_CATCH_UP_HOURS - 1) * HOUR_MS)
    out = []
    for hour_ms in range(first, until_ms + 1, HOUR_MS):
        moment = datetime.fromtimestamp(hour_ms / 1000, UTC)
        out.append((moment.date(), moment.hour))
    return out


async def enqueue_since(db: Db, since_ms: int, *, fleet_id: str = "default", now_ms: int | None = None) -> int:
    """Queue the harsh events that started from `since_ms` on (those that arrived while no API ran): one read per
    hour partition of fleet_events. Returns how many were queued."""
    until = now_ms if now_ms is not None else round(datetime.now(UTC).timestamp() * 1000)
    queued = 0
    for day, hour in hour_partitions(since_ms, until):
        for row in await db.rows(_FLEET_HOUR, (day, hour)):
            start = ms(row.start_time) or 0
            if row.kind not in HARSH_KINDS or start < since_ms:
                continue
            event = LiveEvent(
                vehicle_id=row.vehicle_id,
                kind=row.kind,
                start_ms=start,
                end_ms=ms(row.end_time) or start,
                duration_ms=row.duration_ms or 0,
                peak=row.peak or 0.0,
                peak_unit=row.peak_unit or "",
                detected_ms=ms(row.end_time) or start,
            )
            if await queue_event(db, event, fleet_id=fleet_id, now_ms=until) is not None:
                queued += 1
    return queued


async def queue_of(db: Db, manager: str, *, most: int = 500) -> tuple[list[Queued], bool]:
    """A manager's queue, newest first: one query (its partition), at most `most`; and whether more wait."""
    page = await db.page(_QUEUE, (manager,), page_rows=most)
    items = [
        Queued(
            key=str(EventKey(row.vehicle_id, ms(row.start_time) or 0, row.kind)),
            vehicle_id=row.vehicle_id,
            kind=row.kind,
            start_ms=ms(row.start_time) or 0,
            driver_id=row.driver_id,
            peak=row.peak,
            peak_unit=row.peak_unit,
            queued_ms=ms(row.queued_at) or 0,
        )
        for row in page.rows
    ]
    return items, page.paging_state is not None


async def dismissed_events(db: Db, vehicle_id: str, day: date) -> set[tuple[int, str]]:
    """The events of a vehicle's UTC day dismissed as false positives, as (start ms, kind): the scores leave them
    out (docs/analytics.md). One read of event_reviews' partition, the same key as vehicle_events'."""
    rows = await db.rows(_DAY_REVIEWS, (vehicle_id, day))
    return {(ms(r.start_time) or 0, r.kind) for r in rows if r.state == "dismissed"}


@dataclass
class ReviewCatchUp:
    """A component (service/context.py): when the service starts, queue the harsh events of the last
    `window_h` hours that no running API queued (the live feed queues the rest as they come)."""

    window_h: int = 24
    queued: int = 0
    _task: asyncio.Task[None] | None = None

    async def start(self, context: Any) -> None:
        now = round(datetime.now(UTC).timestamp() * 1000)
        since = now - round(timedelta(hours=self.window_h).total_seconds() * 1000)

        async def run() -> None:
            try:
                with context.db.pinned():  # one result version for the whole pass, as for a request
                    self.queued = await enqueue_since(context.db, since, fleet_id=context.settings.fleet_id, now_ms=now)
            except Exception:  # a catch-up that fails leaves the live queue working; it runs again at next start
                log.exception("queueing the harsh events since %s ms for review failed", since)

        self._task = asyncio.create_task(run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
