"""The read API against the real Cassandra: rows written as the job and the service write them, read back through
the app (in process, over ASGI): the fleet view with each vehicle's status and driver, events filtered by kind and
time, pagination with limit=1 across hour and day partitions (each event exactly once), CSV equal to the JSON, and a
forged cursor refused."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.csv_stream import cells, header
from fleetsense.service.db import Db
from fleetsense.service.fleet_models import Event
from fleetsense.service.fleet_query import HOUR_MS, day_of, iso
from fleetsense.service.fleet_snapshot import FleetSnapshotter
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings

from .. import service_rows as rows

pytestmark = pytest.mark.integration
MIN_MS = 60_000


@dataclass(frozen=True)
class Seeded:
    fleet_id: str
    v1: str
    v2: str
    v3: str
    d1: str
    d2: str
    from_ms: int
    to_ms: int
    events: dict[str, tuple[str, int, str]]  # name -> (vehicle, start ms, kind)
    drivers: dict[str, str | None]  # name -> attributed driver

    def key(self, name: str) -> str:
        vehicle, start_ms, kind = self.events[name]
        return f"{vehicle}/{start_ms}/{kind}"

    def keys(self, *names: str) -> set[str]:
        return {self.key(n) for n in names}


PRIVATE_PAST_MS = 978_307_200_000  # 2001-01-01T00:00:00Z


@pytest.fixture(scope="module")
def seeded(cql: Any) -> Seeded:
    tag = uuid.uuid4().hex[:6]
    v1, v2, v3, d1, d2 = (f"{p}-{tag}" for p in ("van1", "van2", "van3", "ann", "bob"))
    now_ms = time.time_ns() // 1_000_000
    # Hour partitions h-1h, h, h+1h (maybe two days) of a private past: the fleet-wide lists read whole hours, and
    # the session's other tests store events of the last hours (a random hour of 2001, picked by the tag).
    h = PRIVATE_PAST_MS + int(tag, 16) % (365 * 24) * HOUR_MS
    events = {
        "e1": (v1, h + 10 * MIN_MS, "harsh_brake"),
        "e2": (v1, h + 40 * MIN_MS, "bump"),
        "e3": (v1, h + HOUR_MS + 5 * MIN_MS, "harsh_brake"),
        "e4": (v1, h - 30 * MIN_MS, "stop"),
        "e5": (v2, h + HOUR_MS + 5 * MIN_MS, "harsh_brake"),  # the same start as e3, another vehicle
        "e6": (v2, h + 2 * HOUR_MS - 1, "harsh_corner_left"),  # the last ms of the range
        "e7": (v2, h - HOUR_MS, "harsh_brake"),  # the first ms of the range
        "e8": (v1, h - 50 * MIN_MS, "bump"),  # before d1's assignment
        "outside_before": (v1, h - HOUR_MS - 1, "harsh_brake"),
        "outside_after": (v2, h + 2 * HOUR_MS, "harsh_brake"),
    }
    writes = []
    for vehicle, start_ms, kind in events.values():
        writes += rows.event(vehicle, kind, start_ms, 900, 45.0 if kind == "stop" else 0.6)
    writes += rows.assignment(v1, d1, h - 45 * MIN_MS)
    writes += rows.assignment(v2, d2, h + HOUR_MS + 30 * MIN_MS)
    writes.append(rows.review(v1, day_of(events["e1"][1]), events["e1"][1], "harsh_brake", "coached", d1))
    fleet = f"it-{tag}"
    writes += [rows.fleet_vehicle(fleet, v1, "Van 1"), rows.fleet_vehicle(fleet, v2), rows.fleet_vehicle(fleet, v3)]
    writes += [
        rows.status(v1, online=True, reason="heartbeat", received_ms=now_ms - 5_000),
        rows.status(v2, online=False, reason="connection lost", received_ms=now_ms - 600_000),
        rows.seen(v1, now_ms - 2_000),
        rows.trip(v1, now_ms - 10 * MIN_MS, 600.0, is_open=True),
        rows.trip(v2, now_ms - 60 * MIN_MS, 300.0, is_open=False),
        rows.day_score(v1, day_of(now_ms), 87.5, {"harsh_brake": 2}, now_ms=now_ms),
    ]
    rows.write_all(cql, writes)
    drivers = {"e1": d1, "e2": d1, "e3": d1, "e4": d1, "e5": None, "e6": d2, "e7": None, "e8": None}
    return Seeded(fleet, v1, v2, v3, d1, d2, h - HOUR_MS, h + 2 * HOUR_MS, events, drivers)


Client = httpx.AsyncClient


def run(cql: Any, seeded: Seeded, body: Callable[[Client], Awaitable[None]]) -> None:
    """`body` with a client of an app over the test stack's Cassandra (a fresh Db for this event loop)."""

    async def main() -> None:
        settings = ServeSettings(fleet_id=seeded.fleet_id, secret_key="test-secret-" + "x" * 32)
        snapshotter = FleetSnapshotter(refresh_s=0.5)
        context = ServiceContext(db=Db(cql, "fleetsense"), settings=settings, components=[snapshotter])
        app = create_app(context=context)
        app.dependency_overrides[current_principal] = lambda: Principal("viewer", Role.VIEWER, "token")
        await context.start(app)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await body(client)
        finally:
            await context.stop()

    asyncio.run(main())


async def walk(client: Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(200):
        answer = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= params.get("limit", 100)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor never ended")


def in_range(seeded: Seeded) -> dict[str, Any]:
    return {"from": iso(seeded.from_ms), "to": str(seeded.to_ms)}


def newest_first(items: list[dict[str, Any]]) -> bool:
    starts = [item["start_ms"] for item in items]
    return starts == sorted(starts, reverse=True)


def test_the_fleet_view_shows_each_vehicle_with_its_status_driver_trip_and_score(cql: Any, seeded: Seeded) -> None:
    async def body(client: Client) -> None:
        answer = await client.get("/v1/fleet")
        assert answer.headers["content-encoding"] == "gzip"  # httpx asks for it, and decompresses
        fleet = answer.json()
        by_id = {v["vehicle_id"]: v for v in fleet["vehicles"]}
        assert list(by_id) == sorted([seeded.v1, seeded.v2, seeded.v3])
        v1, v2, v3 = by_id[seeded.v1], by_id[seeded.v2], by_id[seeded.v3]
        assert (v1["online"], v1["status_reason"], v1["driver_id"], v1["label"]) == (
            True,
            "heartbeat",
            seeded.d1,
            "Van 1",
        )
        assert v1["trip_open"] and v1["trip_duration_s"] == 600.0 and v1["last_seen_ms"] is not None
        assert v1["score_today"] == 87.5 and v1["events_today"]["harsh_brake"] == 2
        assert (v2["online"], v2["status_reason"], v2["driver_id"], v2["trip_open"]) == (
            False,
            "connection lost",
            seeded.d2,
            False,
        )
        assert (v3["online"], v3["driver_id"], v3["last_seen"], v3["score_today"]) == (None, None, None, None)
        assert 0 <= float(answer.headers["x-snapshot-age-s"]) < 30 and fleet["as_of_ms"] > 0
        plain = await client.get("/v1/fleet", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.json()["vehicles"] == fleet["vehicles"]
        # The list pages by id; one vehicle is read fresh; an unknown one is a 404.
        first = (await client.get("/v1/vehicles", params={"limit": 2})).json()
        second = (await client.get("/v1/vehicles", params={"limit": 2, "cursor": first["next_cursor"]})).json()
        assert [v["vehicle_id"] for v in first["items"] + second["items"]] == list(by_id)
        assert second["next_cursor"] is None
        one = await client.get(f"/v1/vehicles/{seeded.v1}")
        assert one.status_code == 200 and one.json()["driver_id"] == seeded.d1
        assert (await client.get("/v1/vehicles/no-such-van")).status_code == 404

    run(cql, seeded, body)


def test_limit_1_walks_every_event_of_the_range_once_across_hours_newest_first(cql: Any, seeded: Seeded) -> None:
    inside = {n for n in seeded.events if n.startswith("e")}

    async def body(client: Client) -> None:
        walked = await walk(client, "/v1/events", {**in_range(seeded), "limit": 1})
        keys = [item["key"] for item in walked]
        assert len(keys) == len(set(keys)), "an event came twice"
        assert set(keys) == seeded.keys(*inside)
        assert newest_first(walked)
        whole = (await client.get("/v1/events", params={**in_range(seeded), "limit": 1000})).json()
        assert whole["items"] == walked and whole["next_cursor"] is None
        for item in walked:
            name = next(n for n in inside if seeded.key(n) == item["key"])
            assert item["driver_id"] == seeded.drivers[name], name
            assert item["review_state"] == ("coached" if name == "e1" else "new"), name
            assert item["end_ms"] - item["start_ms"] == item["duration_ms"] == 900

    run(cql, seeded, body)


def test_kind_filters_and_per_vehicle_and_per_driver_lists(cql: Any, seeded: Seeded) -> None:
    async def body(client: Client) -> None:
        brakes = await walk(client, "/v1/events", {**in_range(seeded), "kind": "harsh_brake", "limit": 1})
        assert {i["key"] for i in brakes} == seeded.keys("e1", "e3", "e5", "e7") and newest_first(brakes)
        van1 = await walk(client, f"/v1/vehicles/{seeded.v1}/events", {**in_range(seeded), "limit": 2})
        assert [i["key"] for i in van1] == [seeded.key(n) for n in ("e3", "e2", "e1", "e4", "e8")]
        van1_bumps = await walk(client, f"/v1/vehicles/{seeded.v1}/events", {**in_range(seeded), "kind": "bump"})
        assert [i["key"] for i in van1_bumps] == [seeded.key(n) for n in ("e2", "e8")]
        ann = await walk(client, f"/v1/drivers/{seeded.d1}/events", {**in_range(seeded), "limit": 1})
        assert [i["key"] for i in ann] == [seeded.key(n) for n in ("e3", "e2", "e1", "e4")]
        assert {i["driver_id"] for i in ann} == {seeded.d1}
        bob = await walk(client, f"/v1/drivers/{seeded.d2}/events", in_range(seeded))
        assert [i["key"] for i in bob] == [seeded.key("e6")]

    run(cql, seeded, body)


def test_csv_is_the_json_items_and_a_forged_cursor_is_refused(cql: Any, seeded: Seeded) -> None:
    async def body(client: Client) -> None:
        items = await walk(client, "/v1/events", {**in_range(seeded), "limit": 1000})
        by_format = await client.get("/v1/events", params={**in_range(seeded), "format": "csv"})
        by_accept = await client.get("/v1/events", params=in_range(seeded), headers={"Accept": "text/csv"})
        assert by_format.headers["content-type"].startswith("text/csv")
        assert by_format.text == by_accept.text
        table = list(csv.reader(io.StringIO(by_format.text)))
        assert table[0] == header(Event)
        assert table[1:] == [cells(Event.model_validate(item), header(Event)) for item in items]

        page = (await client.get("/v1/events", params={**in_range(seeded), "limit": 1})).json()
        cursor = page["next_cursor"]
        forged = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
        for bad in (forged, "not-a-cursor", "", "%%%"):
            answer = await client.get("/v1/events", params={**in_range(seeded), "limit": 1, "cursor": bad})
            assert answer.status_code == 400, (bad, answer.text)
        other_list = await client.get(f"/v1/vehicles/{seeded.v1}/events", params={**in_range(seeded), "cursor": cursor})
        assert other_list.status_code == 400 and "another list" in other_list.json()["detail"]
        unknown_kind = await client.get("/v1/events", params={"kind": "wheelie"})
        assert unknown_kind.status_code == 400 and "harsh_brake" in unknown_kind.json()["detail"]
        too_long = await client.get("/v1/events", params={"from": "2026-01-01", "to": "2026-03-01"})
        assert too_long.status_code == 400 and "31 days" in too_long.json()["detail"]
        scraped = await client.get("/v1/metrics")
        assert scraped.status_code == 200 and 'route="/v1/events"' in scraped.text

    run(cql, seeded, body)
