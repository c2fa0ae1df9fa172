"""Drivers, assignments, vehicles and reviews through the API on the real stack (Cassandra with migration 9): a
retroactive correction moves an event to another driver, a review takes it off its manager's queue, a badge in a
vehicle's status becomes an assignment, and a viewer is refused every change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fleetsense.cloud import tables as t
from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS
from fleetsense.cloud.schema import KEYSPACE
from fleetsense.cloud.store import STATEMENTS, day_bucket
from fleetsense.service import badges, reviews
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings

pytestmark = pytest.mark.integration

VAN = "van-d1"
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def job_write(cql: Any, write: tuple[str, Any]) -> None:
    """A row written as the job writes it (its declared statement)."""
    name, values = write
    cql.execute(cql.prepare(STATEMENTS[name].format(ks=KEYSPACE)), list(values))


def seed_harsh_brake(cql: Any, start: datetime) -> str:
    start_ms = ms(start)
    common = {"end_time": start_ms + 800, "duration_ms": 800, "peak": 0.61, "peak_unit": "g"}
    job_write(
        cql,
        t.EVENTS_BY_VEHICLE.row(
            vehicle_id=VAN,
            day_bucket=day_bucket(start_ms * 1000),
            start_time=start_ms,
            kind="harsh_brake",
            detected_at=start_ms + 900,
            **common,
        ),
    )
    job_write(
        cql,
        t.EVENTS_BY_FLEET.row(
            day_bucket=day_bucket(start_ms * 1000),
            hour=start.hour,
            start_time=start_ms,
            vehicle_id=VAN,
            kind="harsh_brake",
            **common,
        ),
    )
    return f"{VAN}/{start_ms}/harsh_brake"


Scenario = Callable[[httpx.AsyncClient, Db, Callable[[str, Role], None]], Awaitable[None]]


def run(cql: Any, scenario: Scenario) -> None:
    """`scenario(client, db, login)` against the app on the stack's Cassandra; `login(name, role)` sets who asks."""

    async def main() -> None:
        db = Db(cql, KEYSPACE)
        app = create_app(context=ServiceContext(db=db, settings=ServeSettings()))
        who = {"principal": Principal("mia", Role.MANAGER, "token")}

        async def principal() -> Principal:
            return who["principal"]

        app.dependency_overrides[current_principal] = principal

        def login(name: str, role: Role) -> None:
            who["principal"] = Principal(name, role, "token")

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await scenario(client, db, login)

    asyncio.run(main())


def test_a_retroactive_assignment_moves_an_event_and_a_review_empties_the_queue(cql: Any) -> None:
    event_key = seed_harsh_brake(cql, at(10.5))

    async def scenario(client: httpx.AsyncClient, db: Db, login: Callable[[str, Role], None]) -> None:
        login("root", Role.ADMIN)
        assert (await client.post("/v1/vehicles", json={"vehicle_id": VAN, "label": "van one"})).status_code == 201
        before = (await client.get(f"/v1/vehicles/{VAN}/class")).json()
        assert (before["vehicle_class"], before["chosen"]) == (DEFAULT_VEHICLE_CLASS, False)  # nobody set one yet
        assert (await client.put(f"/v1/vehicles/{VAN}/class", json={"vehicle_class": "van"})).status_code == 200
        after = (await client.get(f"/v1/vehicles/{VAN}/class")).json()
        assert (after["vehicle_class"], after["chosen"]) == ("van", True)
        assert (await client.get("/v1/vehicles/no-such-van/class")).status_code == 404
        bad_class = await client.put(f"/v1/vehicles/{VAN}/class", json={"vehicle_class": "tank"})
        assert bad_class.status_code == 400 and "car" in bad_class.json()["detail"]
        login("mia", Role.MANAGER)
        for driver, badge in (("ann", "B-1"), ("bob", None)):
            body = {"driver_id": driver, "name": driver.title(), "badge_id": badge, "manager": "mia"}
            assert (await client.post("/v1/drivers", json=body)).status_code == 201
        taken = await client.patch("/v1/drivers/bob", json={"badge_id": "B-1"})
        assert taken.status_code == 409 and "ann" in taken.json()["detail"]

        # ann takes the van at 08:00; bob at 12:00 ends her shift.
        for driver, hour in (("ann", 8), ("bob", 12)):
            made = await client.post(
                "/v1/assignments", json={"vehicle_id": VAN, "driver_id": driver, "from": iso(at(hour))}
            )
            assert made.status_code == 201, made.text
        listed = (await client.get(f"/v1/vehicles/{VAN}/assignments")).json()
        assert [(a["driver_id"], a["from_ms"], a["to_ms"]) for a in listed] == [
            ("ann", ms(at(8)), ms(at(12))),
            ("bob", ms(at(12)), None),
        ]
        overlap = await client.post(
            "/v1/assignments", json={"vehicle_id": VAN, "driver_id": "bob", "from": iso(at(9)), "to": iso(at(11))}
        )
        assert overlap.status_code == 409 and "ann" in overlap.json()["detail"]

        # The harsh brake at 10:30 was ann's: it waits in her manager's queue.
        assert await reviews.enqueue_since(db, ms(at(0))) >= 1
        queue = (await client.get("/v1/reviews/queue")).json()
        assert [(e["key"], e["driver_id"]) for e in queue["events"]] == [(event_key, "ann")]

        # The dispatcher forgot bob's early shift (10:00-12:00): ann's ends at 10:00, bob's is added.
        corrected = await client.patch(f"/v1/assignments/{VAN}/{ms(at(8))}", json={"to": iso(at(10))})
        assert corrected.status_code == 200 and corrected.json()["to_ms"] == ms(at(10))
        early = {"vehicle_id": VAN, "driver_id": "bob", "from": iso(at(10)), "to": iso(at(12))}
        assert (await client.post("/v1/assignments", json=early)).status_code == 201
        bobs = (await client.get("/v1/drivers/bob/assignments")).json()
        assert [(a["from_ms"], a["to_ms"]) for a in bobs] == [(ms(at(10)), ms(at(12))), (ms(at(12)), None)]

        # Reviewed now, the event is bob's, and it leaves the queue; dismissed, it leaves the scores.
        reviewed = await client.put(f"/v1/events/{event_key}/review", json={"state": "dismissed", "note": "pothole"})
        assert reviewed.status_code == 200, reviewed.text
        assert reviewed.json()["driver_id"] == "bob" and reviewed.json()["reviewed_by"] == "mia"
        assert (await client.get("/v1/reviews/queue")).json()["events"] == []
        assert (await client.get(f"/v1/reviews/{event_key}")).json()["state"] == "dismissed"
        assert (ms(at(10.5)), "harsh_brake") in await reviews.dismissed_events(db, VAN, at(10.5).date())
        # A correction that moves a start and changes the driver: both tables' old rows go in the same batch.
        moved = {"from": iso(at(10.25)), "driver_id": "ann"}
        assert (await client.patch(f"/v1/assignments/{VAN}/{ms(at(10))}", json=moved)).status_code == 200
        anns = (await client.get("/v1/drivers/ann/assignments")).json()
        assert [(a["from_ms"], a["to_ms"]) for a in anns] == [(ms(at(8)), ms(at(10))), (ms(at(10.25)), ms(at(12)))]
        assert [a["from_ms"] for a in (await client.get("/v1/drivers/bob/assignments")).json()] == [ms(at(12))]
        on_van = (await client.get(f"/v1/vehicles/{VAN}/assignments")).json()
        assert [a["driver_id"] for a in on_van] == ["ann", "ann", "bob"]
        missing = await client.put(f"/v1/events/{VAN}/{ms(at(3))}/harsh_brake/review", json={"state": "reviewed"})
        assert missing.status_code == 404
        assert (await client.put("/v1/events/nonsense/review", json={"state": "reviewed"})).status_code == 400

    run(cql, scenario)


def test_a_badge_in_the_status_becomes_an_assignment(cql: Any) -> None:
    now_ms = round(time.time() * 1000)
    van = "van-d2"

    async def scenario(client: httpx.AsyncClient, db: Db, login: Callable[[str, Role], None]) -> None:
        login("root", Role.ADMIN)
        assert (await client.post("/v1/vehicles", json={"vehicle_id": van})).status_code == 201
        body = {"driver_id": "cat", "name": "Cat", "badge_id": "04:A2:24:B2"}
        assert (await client.post("/v1/drivers", json=body)).status_code == 201
        status: dict[str, Any] = dict.fromkeys(t.VEHICLE_STATUS.written_columns)
        status |= {"vehicle_id": van, "online": True, "reason": "heartbeat", "received_at": now_ms}
        job_write(cql, t.VEHICLE_STATUS.row(**(status | {"badge_id": "04:A2:24:B2"})))
        assert await badges.sweep_once(db, "default", now_ms=now_ms + 1000) >= 1
        assert await badges.sweep_once(db, "default", now_ms=now_ms + 2000) == 0  # nothing changed: nothing made
        listed = (await client.get(f"/v1/vehicles/{van}/assignments")).json()
        assert [(a["driver_id"], a["from_ms"], a["source"]) for a in listed] == [("cat", now_ms, "badge")]

    run(cql, scenario)


def test_a_viewer_is_refused_every_change(cql: Any) -> None:
    async def scenario(client: httpx.AsyncClient, db: Db, login: Callable[[str, Role], None]) -> None:
        login("vera", Role.VIEWER)
        key = f"{VAN}/{ms(at(10.5))}/harsh_brake"
        changes = [
            ("POST", "/v1/drivers", {"driver_id": "eve", "name": "Eve"}),
            ("PATCH", "/v1/drivers/ann", {"name": "Anne"}),
            ("POST", "/v1/assignments", {"vehicle_id": VAN, "driver_id": "ann", "from": iso(at(20))}),
            ("PATCH", f"/v1/assignments/{VAN}/{ms(at(8))}", {"to": iso(at(9))}),
            ("POST", f"/v1/assignments/{VAN}/{ms(at(8))}/end", {"at": iso(at(9))}),
            ("DELETE", f"/v1/assignments/{VAN}/{ms(at(8))}", None),
            ("POST", "/v1/vehicles", {"vehicle_id": "van-x"}),
            ("PATCH", f"/v1/vehicles/{VAN}", {"label": "x"}),
            ("PUT", f"/v1/vehicles/{VAN}/class", {"vehicle_class": "car"}),
            ("PUT", f"/v1/events/{key}/review", {"state": "reviewed"}),
        ]
        for method, path, body in changes:
            answer = await client.request(method, path, json=body)
            assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
        login("mia", Role.MANAGER)
        for method, path, body in changes[6:9]:  # vehicles are an admin's
            assert (await client.request(method, path, json=body)).status_code == 403, path
        assert (await client.get("/v1/drivers")).status_code == 200

    run(cql, scenario)
