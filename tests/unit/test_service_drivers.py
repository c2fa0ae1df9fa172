"""The driver registry and the vehicle registry (service/drivers.py, service/vehicles_registry.py) and the
assignment routes' answers, over the in-memory database: badges kept consistent both ways, conflicts named, and one
vehicle's concurrent writers serialized."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fleetsense.cloud import tables as t
from fleetsense.service import assignment_writes as aw
from fleetsense.service import drivers as d
from fleetsense.service import vehicles_registry as v
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings

from tests.unit.service_memory_db import MemoryDb

H = 3_600_000
FLEET = "default"


def badges(db: MemoryDb) -> dict[str, str]:
    return {row["badge_id"]: row["driver_id"] for row in db.all(t.DRIVERS_BY_BADGE)}


def api(db: MemoryDb, role: Role = Role.MANAGER) -> httpx.AsyncClient:
    app = create_app(context=ServiceContext(db=db, settings=ServeSettings()))  # type: ignore[arg-type]

    async def who() -> Principal:
        return Principal("mia", role, "token")

    app.dependency_overrides[current_principal] = who
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def test_a_badge_moved_or_cleared_loses_its_old_row_and_a_taken_one_is_refused_naming_its_holder() -> None:
    async def run() -> None:
        db = MemoryDb()
        async with api(db) as client:
            assert (
                await client.post("/v1/drivers", json={"driver_id": "ann", "name": "Ann", "badge_id": "B1"})
            ).is_success
            assert (await client.post("/v1/drivers", json={"driver_id": "bob", "name": "Bob"})).is_success
            assert badges(db) == {"B1": "ann"}
            taken = await client.patch("/v1/drivers/bob", json={"badge_id": "B1"})
            assert taken.status_code == 409 and "badge B1 belongs to driver ann" in taken.json()["detail"]
            assert (await client.patch("/v1/drivers/ann", json={"badge_id": "B2"})).json()["badge_id"] == "B2"
            assert badges(db) == {"B2": "ann"}
            assert (await client.patch("/v1/drivers/bob", json={"badge_id": "B1"})).status_code == 200
            assert (await client.patch("/v1/drivers/ann", json={"badge_id": None})).json()["badge_id"] is None
            assert badges(db) == {"B1": "bob"}
            assert await d.driver_of_badge(db, FLEET, "B1") == "bob"

    asyncio.run(run())


def test_a_driver_is_created_once_changed_in_part_retired_and_back() -> None:
    async def run() -> None:
        db = MemoryDb()
        async with api(db) as client:
            body = {"driver_id": "ann", "name": "Ann", "employee_no": "E-7", "manager": "mia"}
            assert (await client.post("/v1/drivers", json=body)).status_code == 201
            again = await client.post("/v1/drivers", json=body)
            assert again.status_code == 409 and "PATCH /v1/drivers/ann" in again.json()["detail"]
            changed = (await client.patch("/v1/drivers/ann", json={"name": "Anne"})).json()
            assert (changed["name"], changed["employee_no"], changed["manager"]) == ("Anne", "E-7", "mia")
            assert (await client.patch("/v1/drivers/ann", json={"name": None})).status_code == 400
            retired = (await client.patch("/v1/drivers/ann", json={"retire": True})).json()
            assert retired["active"] is False and retired["retired_at"] is not None
            late = {"vehicle_id": "van-1", "driver_id": "ann", "from": "2099-01-01T00:00:00Z"}
            refused = await client.post("/v1/assignments", json=late)
            assert refused.status_code == 409 and "retired" in refused.json()["detail"]
            assert (await client.patch("/v1/drivers/ann", json={"retire": False})).json()["active"] is True
            assert (await client.post("/v1/assignments", json=late)).status_code == 201
            assert (await client.get("/v1/drivers/nobody")).status_code == 404
            assert [x["driver_id"] for x in (await client.get("/v1/drivers")).json()] == ["ann"]

    asyncio.run(run())


def test_assignment_answers_name_what_is_wrong() -> None:
    async def run() -> None:
        db = MemoryDb()
        async with api(db) as client:
            await client.post("/v1/drivers", json={"driver_id": "ann", "name": "Ann"})
            base = {"vehicle_id": "van-1", "driver_id": "ann"}
            unknown = await client.post(
                "/v1/assignments", json=base | {"driver_id": "zed", "from": "2026-12-06T08:00Z"}
            )
            assert unknown.status_code == 404 and "POST /v1/drivers" in unknown.json()["detail"]
            backwards = await client.post(
                "/v1/assignments", json=base | {"from": "2026-12-06T08:00Z", "to": "2026-12-06T07:00Z"}
            )
            assert backwards.status_code == 400 and "before it starts" in backwards.json()["detail"]
            naive = await client.post("/v1/assignments", json=base | {"from": "2026-12-06T08:00"})
            assert naive.status_code == 422
            made = (await client.post("/v1/assignments", json=base | {"from": "2026-12-06T08:00Z"})).json()
            missing = await client.patch(f"/v1/assignments/van-1/{made['from_ms'] + 1}", json={"to": None})
            assert missing.status_code == 404 and "from_ms" in missing.json()["detail"]
            ended = await client.post(f"/v1/assignments/van-1/{made['from_ms']}/end", json={"at": "2026-12-06T18:00Z"})
            assert ended.json()["to_ms"] == made["from_ms"] + 10 * H
            reopened = await client.patch(f"/v1/assignments/van-1/{made['from_ms']}", json={"to": None})
            assert reopened.json()["to"] is None
            assert (await client.delete(f"/v1/assignments/van-1/{made['from_ms']}")).status_code == 204
            assert (await client.get("/v1/vehicles/van-1/assignments")).json() == []
            assert db.all(t.DRIVER_ASSIGNMENTS) == []

    asyncio.run(run())


class SlowDb(MemoryDb):
    """Yields to the loop on every read, so two requests interleave between their read and their write."""

    async def rows(self, *args: Any, **kwargs: Any) -> list[Any]:
        found = await super().rows(*args, **kwargs)
        await asyncio.sleep(0)  # the answer is on its way back: another request runs meanwhile
        return found


def test_two_concurrent_overlapping_assignments_of_one_vehicle_are_serialized_one_refused() -> None:
    async def run() -> list[BaseException | aw.Stored]:
        db = SlowDb()
        for name in ("ann", "bob"):
            await d.save_driver(db, FLEET, d.Driver(driver_id=name, name=name), before=None)

        def create(driver: str, start_h: int) -> Any:
            return aw.create(
                db,
                FLEET,
                vehicle_id="van-1",
                driver_id=driver,
                from_ms=start_h * H,
                to_ms=(start_h + 4) * H,
                source="api",
                set_by="m",
                now_ms=0,
            )

        done = await asyncio.gather(create("ann", 8), create("bob", 10), return_exceptions=True)
        assert len(db.all(t.VEHICLE_ASSIGNMENTS)) == 1
        return done

    first, second = asyncio.run(run())
    assert isinstance(first, aw.Stored) and isinstance(second, d.Conflict)


def test_a_vehicle_registered_again_keeps_its_registration_time_and_its_class_is_the_profiles() -> None:
    async def run() -> None:
        db = MemoryDb()
        await v.register(db, FLEET, "van-1", None, now_ms=5)
        again = await v.register(db, FLEET, "van-1", "KA 1", now_ms=9)
        assert (again.label, again.registered_ms) == ("KA 1", 5)
        with pytest.raises(d.NotFound):
            await v.relabel(db, FLEET, "van-2", "x", now_ms=1)
        await v.set_class(db, "van-1", "truck", now_ms=1)
        assert await v.vehicle_class(db, "van-1") == "truck"
        assert [x.vehicle_id for x in await v.fleet_vehicles(db, FLEET)] == ["van-1"]
        assert await v.register_missing(db, FLEET, ["van-1", "van-2", "van-2"], now_ms=20) == ["van-2"]
        assert (await v.get_vehicle(db, FLEET, "van-1")) == again  # its label kept

    asyncio.run(run())
