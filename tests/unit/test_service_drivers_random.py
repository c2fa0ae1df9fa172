"""The assignment write path (service/assignment_writes.py) under seeded random sequences of create, correct, end
and delete on two vehicles, against an in-memory model of both tables (tests/unit/service_memory_db.py): after
every step the two tables mirror each other, no vehicle's assignments overlap, what is stored is what the rule
(service/attribution.py) makes of the same requests, and a refused request changes nothing.
FLEETSENSE_SIM_CASES=N runs N seeds; FLEETSENSE_SIM_SEED=N replays one."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from dataclasses import replace
from typing import Any

import pytest
from fleetsense.cloud import tables as t
from fleetsense.service import assignment_writes as aw
from fleetsense.service import drivers as d
from fleetsense.service.attribution import Assignment, driver_at, place

from fleetsense.errors import ConfigError
from tests.unit.service_memory_db import MemoryDb

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "1500"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
H = 3_600_000  # an hour in ms
FLEET = "default"
VEHICLES = ("van-1", "van-2")
DRIVERS = ("ann", "bob", "cat", "dan")
Row = tuple[str, str, int, int | None]  # vehicle, driver, from ms, to ms


def _model_rows(model: dict[str, list[Assignment]]) -> set[Row]:
    return {
        (a.vehicle_id, a.driver_id, a.valid_from_us // 1000, None if a.valid_to_us is None else a.valid_to_us // 1000)
        for history in model.values()
        for a in history
    }


def _ms(value: Any) -> int | None:
    return d.ms(value)


def _stored_rows(db: MemoryDb, table: t.Table) -> set[Row]:
    rows = {(r["vehicle_id"], r["driver_id"], _ms(r["valid_from"]), _ms(r["valid_to"])) for r in db.all(table)}
    assert len(rows) == len(db.all(table))
    return rows  # type: ignore[return-value]


def _a(vehicle: str, driver: str, from_ms: int, to_ms: int | None) -> Assignment:
    return aw.assignment(vehicle, driver, from_ms, to_ms)


def _expect_correct(history: list[Assignment], old: Assignment, new: Assignment) -> list[Assignment]:
    others = [a for a in history if a != old]
    if any(a.overlaps(new) for a in others):
        raise d.Conflict("overlap")
    return sorted([*others, new], key=lambda a: a.valid_from_us)


async def _step(db: MemoryDb, model: dict[str, list[Assignment]], rng: random.Random) -> str:
    """One random request, applied to the store and to the model; what it was, for a failure's message."""
    vehicle = rng.choice(VEHICLES)
    history = model[vehicle]
    op = rng.choice(("create", "create", "correct", "end", "delete"))
    start = rng.randrange(0, 48) * H + rng.choice((0, 0, 0, 1))  # now and then off the hour by a ms
    end = None if rng.random() < 0.35 else start + rng.choice((-H, 1, H, 3 * H, 9 * H))
    if op == "end" and end is None:
        end = start + rng.choice((-H, H, 5 * H))  # an end always has a time (the API requires `at`)
    driver = rng.choice((*DRIVERS, "zed")) if rng.random() < 0.05 else rng.choice(DRIVERS)
    known = rng.choice(history) if history and rng.random() < 0.9 else None
    from_ms = known.valid_from_us // 1000 if known else start
    known = next((a for a in history if a.valid_from_us // 1000 == from_ms), None)  # a random start may name one
    changes = rng.sample(("driver", "from", "to"), rng.randrange(1, 4))
    new_driver = driver if "driver" in changes or known is None else known.driver_id
    new_from = start if "from" in changes else from_ms
    old_to = None if known is None or known.valid_to_us is None else known.valid_to_us // 1000
    new_to = end if "to" in changes else old_to
    expected: list[Assignment] | None = None
    error: type[Exception] | None = None
    try:
        if op == "create":
            new = _a(vehicle, driver, start, end)  # an end before the start is refused first
            if driver not in DRIVERS:
                raise d.NotFound("unknown")
            expected, _ = place(history, new)
        elif known is None:
            raise d.NotFound("no such assignment")
        elif op == "correct":
            if new_driver not in DRIVERS:
                raise d.NotFound("unknown")
            expected = _expect_correct(history, known, _a(vehicle, new_driver, new_from, new_to))
        elif op == "end":
            if end <= known.valid_from_us // 1000:
                raise ConfigError("ends before it starts")
            expected = _expect_correct(history, known, replace(known, valid_to_us=end * 1000))
        else:
            expected = [a for a in history if a != known]
    except ConfigError as exc:
        error = type(exc)
    before = {name: dict(rows) for name, rows in db.tables.items()}
    what = f"{op} {vehicle} driver={driver} from={from_ms} start={start} end={end}"
    try:
        common: dict[str, Any] = {"set_by": "m", "now_ms": 1}
        if op == "create":
            await aw.create(
                db, FLEET, vehicle_id=vehicle, driver_id=driver, from_ms=start, to_ms=end, source="api", **common
            )
        elif op == "correct":
            kwargs: dict[str, Any] = {}
            if known is not None:
                kwargs = {"driver_id": new_driver, "new_from_ms": new_from, "to_ms": new_to}
            await aw.correct(db, FLEET, vehicle_id=vehicle, from_ms=from_ms, **kwargs, **common)
        elif op == "end":
            await aw.end(db, FLEET, vehicle_id=vehicle, from_ms=from_ms, at_ms=end, **common)
        else:
            await aw.delete(db, vehicle_id=vehicle, from_ms=from_ms)
    except ConfigError as exc:
        assert error is not None, f"{what}: refused ({exc.message}) but the rule allows it"
        assert isinstance(exc, error) or error is ConfigError, f"{what}: {type(exc).__name__}, expected {error}"
        assert {name: dict(rows) for name, rows in db.tables.items()} == before, f"{what}: a refusal wrote"
        return what
    assert error is None, f"{what}: accepted, but the rule refuses it ({error.__name__})"
    assert expected is not None
    model[vehicle] = expected
    return what


async def _run(seed: int) -> None:
    rng = random.Random(seed)
    db = MemoryDb()
    for name in DRIVERS:
        await d.save_driver(db, FLEET, d.Driver(driver_id=name, name=name.title()), before=None)
    model: dict[str, list[Assignment]] = {v: [] for v in VEHICLES}
    for _ in range(rng.randrange(4, 24)):
        what = await _step(db, model, rng)
        by_vehicle = _stored_rows(db, t.VEHICLE_ASSIGNMENTS)
        assert by_vehicle == _stored_rows(db, t.DRIVER_ASSIGNMENTS), f"seed {seed}, after {what}: tables differ"
        assert by_vehicle == _model_rows(model), f"seed {seed}, after {what}: stored differs from the rule"
        for vehicle in VEHICLES:
            stored = await aw.vehicle_history(db, vehicle)
            for x, y in itertools.pairwise(stored):
                assert not x.assignment.overlaps(y.assignment), f"seed {seed}, after {what}: overlap stored"
            for at in (rng.randrange(0, 60 * H) for _ in range(8)):
                held = aw.running(stored, at)
                assert (held.assignment.driver_id if held else None) == driver_at(model[vehicle], at * 1000)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_assignment_writes_keep_both_tables_mirrored_and_follow_the_rule(seed: int) -> None:
    asyncio.run(_run(seed))


def test_a_correction_that_moves_the_start_deletes_the_old_rows_in_the_same_batch() -> None:
    async def run() -> MemoryDb:
        db = MemoryDb()
        for name in ("ann", "bob"):
            await d.save_driver(db, FLEET, d.Driver(driver_id=name, name=name), before=None)
        await aw.create(
            db, FLEET, vehicle_id="van-1", driver_id="ann", from_ms=8 * H, source="api", set_by="m", now_ms=1
        )
        batches = db.batches
        await aw.correct(
            db, FLEET, vehicle_id="van-1", from_ms=8 * H, driver_id="bob", new_from_ms=7 * H, set_by="m", now_ms=2
        )
        assert db.batches == batches + 1
        return db

    db = asyncio.run(run())
    assert _stored_rows(db, t.VEHICLE_ASSIGNMENTS) == {("van-1", "bob", 7 * H, None)}
    assert _stored_rows(db, t.DRIVER_ASSIGNMENTS) == {("van-1", "bob", 7 * H, None)}
