"""Request bodies of the driver and assignment routes fuzzed (hypothesis) through the app over the in-memory
database: whatever the driver ids, names, badges and times, the answer is a 2xx or a 4xx with a reason, never a 5xx,
and a valid request is accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.context import ServiceContext
from fleetsense.service.roles import Principal, Role
from fleetsense.service.settings import ServeSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.service_memory_db import MemoryDb

ID_CHARS = st.sampled_from("abcXYZ019_-")
GOOD_ID = st.text(ID_CHARS, min_size=1, max_size=64)
ANY_TEXT = st.one_of(st.text(max_size=80), GOOD_ID, st.integers(), st.none(), st.booleans())
TIMES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),  # naive: refused
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=30),
    st.sampled_from(["2026-12-06T08:00:00Z", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]),
)


def call(requests: Callable[[httpx.AsyncClient], Awaitable[list[httpx.Response]]]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        app = create_app(context=ServiceContext(db=MemoryDb(), settings=ServeSettings()))  # type: ignore[arg-type]

        async def manager() -> Principal:
            return Principal("mia", Role.MANAGER, "token")

        app.dependency_overrides[current_principal] = manager
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await requests(client)

    return asyncio.run(main())


def no_server_error(answer: httpx.Response) -> None:
    assert answer.status_code < 500, f"{answer.request.method} {answer.request.url}: {answer.text}"
    if answer.status_code >= 400:
        assert answer.json()["detail"], "a refusal says why"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(driver_id=ANY_TEXT, name=ANY_TEXT, badge=ANY_TEXT, employee_no=ANY_TEXT)
def test_a_driver_body_of_any_shape_gets_an_answer_not_an_error(
    driver_id: Any, name: Any, badge: Any, employee_no: Any
) -> None:
    body = {"driver_id": driver_id, "name": name, "badge_id": badge, "employee_no": employee_no}

    async def requests(client: httpx.AsyncClient) -> list[httpx.Response]:
        made = await client.post("/v1/drivers", json=body)
        path_id = quote(driver_id, safe="") if isinstance(driver_id, str) and driver_id else "x"
        return [
            made,
            await client.get(f"/v1/drivers/{path_id}"),
            await client.patch(f"/v1/drivers/{path_id}", json=body),
        ]

    answers = call(requests)
    for answer in answers:
        no_server_error(answer)
    valid = (
        isinstance(driver_id, str)
        and all(c in "abcXYZ019_-" for c in driver_id)
        and 1 <= len(driver_id) <= 64
        and isinstance(name, str)
        and 1 <= len(name) <= 200
        and (badge is None or (isinstance(badge, str) and 1 <= len(badge) <= 64 and badge.replace(":", "").isalnum()))
        and (employee_no is None or (isinstance(employee_no, str) and 1 <= len(employee_no) <= 200))
    )
    if valid and (badge is None or all(c in "abcXYZ019_-:" for c in badge)):
        assert answers[0].status_code == 201, answers[0].text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=TIMES, end=st.one_of(st.none(), TIMES), at=TIMES, from_ms=st.integers(-(2**64), 2**64))
def test_assignment_times_of_any_shape_get_an_answer_not_an_error(start: Any, end: Any, at: Any, from_ms: int) -> None:
    async def requests(client: httpx.AsyncClient) -> list[httpx.Response]:
        await client.post("/v1/drivers", json={"driver_id": "ann", "name": "Ann"})
        body = {"vehicle_id": "van-1", "driver_id": "ann", "from": start, "to": end}
        made = await client.post("/v1/assignments", json=body)
        key = made.json()["from_ms"] if made.status_code == 201 else from_ms
        return [
            made,
            await client.patch(f"/v1/assignments/van-1/{key}", json={"from": at}),
            await client.post(f"/v1/assignments/van-1/{key}/end", json={"at": at}),
            await client.delete(f"/v1/assignments/van-1/{from_ms}"),
            await client.get("/v1/vehicles/van-1/assignments"),
        ]

    for answer in call(requests):
        no_server_error(answer)


def test_an_assignment_on_the_hour_is_created_and_listed_in_ms() -> None:
    async def requests(client: httpx.AsyncClient) -> list[httpx.Response]:
        await client.post("/v1/drivers", json={"driver_id": "ann", "name": "Ann"})
        body = {"vehicle_id": "van-1", "driver_id": "ann", "from": "2026-12-06T08:00:00.123456+01:00"}
        return [await client.post("/v1/assignments", json=body), await client.get("/v1/drivers/ann/assignments")]

    made, listed = call(requests)
    assert made.status_code == 201
    assert listed.json()[0]["from_ms"] == 1_796_540_400_123  # 07:00:00.123 UTC, the µs dropped
    assert listed.json()[0]["to"] is None and listed.json()[0]["set_by"] == "mia"
