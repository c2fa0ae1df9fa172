"""Setting who had which vehicle when: create, correct, end and remove assignments.

The rule is service/attribution.py's `place` (a new assignment starting while another runs ends it; any other
overlap is refused, naming it). Each change is planned as a pure function of the vehicle's history (`plan_*`), then
the rows that differ are written: `vehicle_assignments` and its mirror `driver_assignments` together in one logged
batch, a moved key's old rows deleted in the same batch, so the two tables never disagree.

Two requests for one vehicle are serialized by an asyncio lock per vehicle: read, plan and write happen under it.
That holds within one API process; two processes (or the CLI beside the API) could race on one vehicle between the
read and the write (a Cassandra LWT cannot guard a batch spanning two tables' partitions). docs/service.md says so."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.table_model import Write
from fleetsense.service.attribution import Assignment, place
from fleetsense.service.db import Db, Delete
from fleetsense.service.drivers import Conflict, NotFound, ms, require_driver, validate_driver_id

from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id

SOURCES = ("api", "cli", "badge")
US_PER_MS = 1_000


@dataclass(frozen=True, kw_only=True)
class Stored:
    """An assignment as stored: the rule's `Assignment` and who set it, how and when."""

    assignment: Assignment
    source: str  # api, cli or badge
    set_by: str
    set_at_ms: int

    @property
    def from_ms(self) -> int:
        return self.assignment.valid_from_us // US_PER_MS

    @property
    def to_ms(self) -> int | None:
        to = self.assignment.valid_to_us
        return None if to is None else to // US_PER_MS


def assignment(vehicle_id: str, driver_id: str, from_ms: int, to_ms: int | None) -> Assignment:
    return Assignment(
        vehicle_id=vehicle_id,
        driver_id=driver_id,
        valid_from_us=from_ms * US_PER_MS,
        valid_to_us=None if to_ms is None else to_ms * US_PER_MS,
    )


# --- the plans: pure, one vehicle's history (oldest first) in, its history afterwards out --------------------------


def _overlap(error: ConfigError) -> Conflict:
    return Conflict(error.message, hint=error.hint)


def plan_create(history: Sequence[Stored], new: Stored) -> list[Stored]:
    """The history with `new` placed by the rule: a running assignment it starts inside is ended at its start
    (stamped with `new`'s setter), any other overlap refused (Conflict)."""
    try:
        _, ended = place([s.assignment for s in history], new.assignment)
    except ConfigError as exc:
        raise _overlap(exc) from None
    after = []
    for stored in history:
        if ended is not None and stored.assignment.valid_from_us == ended.valid_from_us:
            stored = replace(stored, assignment=ended, set_by=new.set_by, set_at_ms=new.set_at_ms)
        after.append(stored)
    return sorted([*after, new], key=lambda s: s.assignment.valid_from_us)


def find(history: Sequence[Stored], from_ms: int) -> Stored:
    for stored in history:
        if stored.from_ms == from_ms:
            return stored
    vehicle = history[0].assignment.vehicle_id if history else "the vehicle"
    raise NotFound(
        f"{vehicle} has no assignment starting at {from_ms} ms",
        hint="GET /v1/vehicles/{id}/assignments lists them with their from_ms",
    )


_KEEP: Any = object()  # a correction's field left as it is


def plan_correct(
    history: Sequence[Stored],
    from_ms: int,
    *,
    driver_id: str = _KEEP,
    new_from_ms: int = _KEEP,
    to_ms: int | None = _KEEP,
    set_by: str,
    set_at_ms: int,
) -> tuple[list[Stored], Stored]:
    """The history with the assignment starting at `from_ms` corrected (another driver, start or end; `to_ms`
    None reopens it). A correction changes that assignment only: an overlap with any other is refused (Conflict),
    so nothing is overwritten silently: correct or end the other one first."""
    old = find(history, from_ms)
    a = old.assignment
    start = a.valid_from_us // US_PER_MS if new_from_ms is _KEEP else new_from_ms
    end = old.to_ms if to_ms is _KEEP else to_ms
    corrected = replace(
        old,
        assignment=assignment(a.vehicle_id, a.driver_id if driver_id is _KEEP else driver_id, start, end),
        set_by=set_by,
        set_at_ms=set_at_ms,
    )
    others = [s for s in history if s is not old]
    for other in others:
        if other.assignment.overlaps(corrected.assignment):
            to = "open" if other.to_ms is None else f"{other.to_ms} ms"
            raise Conflict(
                f"{a.vehicle_id} is assigned to {other.assignment.driver_id} from {other.from_ms} ms to {to}, which"
                f" overlaps the corrected assignment of {corrected.assignment.driver_id}",
                hint="end or correct that assignment first (a vehicle has one driver at a time)",
            )
    return sorted([*others, corrected], key=lambda s: s.assignment.valid_from_us), corrected


def plan_delete(history: Sequence[Stored], from_ms: int) -> list[Stored]:
    old = find(history, from_ms)
    return [s for s in history if s is not old]


# --- rows: what differs between two histories, as writes and deletes of both tables ---------------------------------


def _vehicle_key(s: Stored) -> tuple[Any, ...]:
    return (s.assignment.vehicle_id, s.from_ms)


def _driver_key(s: Stored) -> tuple[Any, ...]:
    return (s.assignment.driver_id, s.from_ms, s.assignment.vehicle_id)


def rows(before: Sequence[Stored], after: Sequence[Stored]) -> tuple[list[Write], list[Delete]]:
    """The writes that turn `before` into `after` in both tables: each new or changed assignment written to both,
    each key no longer held deleted (never a key also written: in one batch the delete would win)."""
    gone = [s for s in before if s not in after]
    new = [s for s in after if s not in before]
    writes: list[Write] = []
    for s in new:
        common = {
            "valid_from": s.from_ms,
            "valid_to": s.to_ms,
            "source": s.source,
            "set_by": s.set_by,
            "set_at": s.set_at_ms,
        }
        vehicle, driver = s.assignment.vehicle_id, s.assignment.driver_id
        writes.append(t.VEHICLE_ASSIGNMENTS.row(vehicle_id=vehicle, driver_id=driver, **common))
        writes.append(t.DRIVER_ASSIGNMENTS.row(driver_id=driver, vehicle_id=vehicle, **common))
    deletes: list[Delete] = []
    for table, key in ((t.VEHICLE_ASSIGNMENTS, _vehicle_key), (t.DRIVER_ASSIGNMENTS, _driver_key)):
        kept = {key(s) for s in after}
        deletes += [(table, key(s)) for s in gone if key(s) not in kept]
    return writes, deletes


# --- reading and writing -------------------------------------------------------------------------------------------

_COLUMNS = ("vehicle_id", "driver_id", "valid_from", "valid_to", "source", "set_by", "set_at")
_BY_VEHICLE = t.VEHICLE_ASSIGNMENTS.read(*_COLUMNS, where=("vehicle_id",))
_BY_DRIVER = t.DRIVER_ASSIGNMENTS.read(*_COLUMNS, where=("driver_id",))


def _stored(row: Any) -> Stored:
    start = ms(row.valid_from)
    assert start is not None
    return Stored(
        assignment=assignment(row.vehicle_id, row.driver_id, start, ms(row.valid_to)),
        source=row.source or "api",
        set_by=row.set_by or "",
        set_at_ms=ms(row.set_at) or 0,
    )


async def vehicle_history(db: Db, vehicle_id: str) -> list[Stored]:
    """A vehicle's assignments with who set them, oldest first."""
    found = [_stored(r) for r in await db.rows(_BY_VEHICLE, (vehicle_id,))]
    return sorted(found, key=lambda s: s.assignment.valid_from_us)


async def driver_history(db: Db, driver_id: str) -> list[Stored]:
    """A driver's assignments on every vehicle, oldest first."""
    found = [_stored(r) for r in await db.rows(_BY_DRIVER, (driver_id,))]
    return sorted(found, key=lambda s: (s.assignment.valid_from_us, s.assignment.vehicle_id))


# One lock per vehicle in this process (weak: a vehicle nobody writes holds none).
_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _lock(vehicle_id: str) -> asyncio.Lock:
    lock = _locks.get(vehicle_id)
    if lock is None:
        lock = _locks[vehicle_id] = asyncio.Lock()
    return lock


Plan = Callable[[list[Stored]], tuple[list[Stored], Stored | None]]


async def _apply(db: Db, vehicle_id: str, plan: Plan) -> Stored | None:
    async with _lock(vehicle_id):
        before = await vehicle_history(db, vehicle_id)
        after, result = plan(before)
        writes, deletes = rows(before, after)
        if writes or deletes:
            await db.write(*writes, deletes=deletes, logged_batch=True)
        return result


async def _driver_may_drive(db: Db, fleet_id: str, driver_id: str, from_ms: int) -> None:
    driver = await require_driver(db, fleet_id, driver_id)
    if driver.retired_ms is not None and from_ms >= driver.retired_ms:
        raise Conflict(
            f"driver {driver_id} retired at {driver.retired_ms} ms, before this assignment starts",
            hint="bring them back first (PATCH /v1/drivers/{id} with retire false), or assign someone else",
        )


def _source(source: str) -> str:
    if source not in SOURCES:
        raise ConfigError(f"{source!r} is no assignment source", hint=f"one of {', '.join(SOURCES)}")
    return source


async def create(
    db: Db,
    fleet_id: str,
    *,
    vehicle_id: str,
    driver_id: str,
    from_ms: int,
    to_ms: int | None = None,
    source: str,
    set_by: str,
    now_ms: int,
) -> Stored:
    """Assign a driver to a vehicle from `from_ms` (to `to_ms`, or open-ended)."""
    validate_vehicle_id(vehicle_id)
    validate_driver_id(driver_id)
    new = Stored(
        assignment=assignment(vehicle_id, driver_id, from_ms, to_ms),
        source=_source(source),
        set_by=set_by,
        set_at_ms=now_ms,
    )
    await _driver_may_drive(db, fleet_id, driver_id, from_ms)
    placed = await _apply(db, vehicle_id, lambda h: (plan_create(h, new), new))
    assert placed is not None
    return placed


async def correct(
    db: Db,
    fleet_id: str,
    *,
    vehicle_id: str,
    from_ms: int,
    driver_id: str = _KEEP,
    new_from_ms: int = _KEEP,
    to_ms: int | None = _KEEP,
    set_by: str,
    now_ms: int,
) -> Stored:
    """Correct the assignment starting at `from_ms` (another driver, start or end; `to_ms=None` reopens it)."""
    validate_vehicle_id(vehicle_id)
    if driver_id is not _KEEP:
        await _driver_may_drive(db, fleet_id, driver_id, from_ms if new_from_ms is _KEEP else new_from_ms)

    def plan(history: list[Stored]) -> tuple[list[Stored], Stored | None]:
        return plan_correct(
            history,
            from_ms,
            driver_id=driver_id,
            new_from_ms=new_from_ms,
            to_ms=to_ms,
            set_by=set_by,
            set_at_ms=now_ms,
        )

    corrected = await _apply(db, vehicle_id, plan)
    assert corrected is not None
    return corrected


async def end(db: Db, fleet_id: str, *, vehicle_id: str, from_ms: int, at_ms: int, set_by: str, now_ms: int) -> Stored:
    """End the assignment starting at `from_ms` at `at_ms` (a correction of its end)."""
    return await correct(
        db, fleet_id, vehicle_id=vehicle_id, from_ms=from_ms, to_ms=at_ms, set_by=set_by, now_ms=now_ms
    )


async def delete(db: Db, *, vehicle_id: str, from_ms: int) -> None:
    """Remove a wrong assignment from both tables."""
    validate_vehicle_id(vehicle_id)
    await _apply(db, vehicle_id, lambda h: (plan_delete(h, from_ms), None))


def running(history: Sequence[Stored], at_ms: int) -> Stored | None:
    """The assignment holding the vehicle at `at_ms`, or None."""
    for stored in history:
        if stored.assignment.holds(at_ms * US_PER_MS):
            return stored
    return None
