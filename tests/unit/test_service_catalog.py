"""GET /v1/vehicle-classes and GET /v1/event-kinds (service/routes_catalog.py): derived from their one declaration,
so a class or kind added there is served without another edit; any logged-in role reads them, nobody else."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fleetsense.cloud.analytics.events import DEFAULT_VEHICLE_CLASS, VEHICLE_CLASSES
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.roles import Principal, Role

from fleetsense.event_kinds import COUNTED_KINDS, EVENT_KINDS, HARSH_KINDS


def get(path: str, role: Role | None) -> httpx.Response:
    app = create_app()
    if role is not None:

        async def principal() -> Principal:
            return Principal("someone", role, "token")

        app.dependency_overrides[current_principal] = principal

    async def ask() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get(path)

    return asyncio.run(ask())


def test_the_vehicle_classes_are_the_declared_ones_with_their_thresholds_in_g() -> None:
    classes = get("/v1/vehicle-classes", Role.VIEWER).json()
    assert [c["name"] for c in classes] == list(VEHICLE_CLASSES)
    assert [c["name"] for c in classes if c["default"]] == [DEFAULT_VEHICLE_CLASS]
    truck = next(c for c in classes if c["name"] == "truck")
    assert truck["thresholds_g"]["harsh_brake"] == VEHICLE_CLASSES["truck"].harsh_brake_g
    assert truck["min_duration_ms"] == VEHICLE_CLASSES["truck"].min_duration_ms


def test_the_event_kinds_are_the_declared_ones_with_a_label_unit_and_flags() -> None:
    kinds = get("/v1/event-kinds", Role.VIEWER).json()
    assert [k["key"] for k in kinds] == [k.key for k in EVENT_KINDS]
    assert [k["key"] for k in kinds if k["harsh"]] == list(HARSH_KINDS)
    assert [k["key"] for k in kinds if k["counted"]] == list(COUNTED_KINDS)
    brake = next(k for k in kinds if k["key"] == "harsh_brake")
    assert (brake["label"], brake["unit"]) == ("harsh brake", "g")


@pytest.mark.parametrize("path", ["/v1/vehicle-classes", "/v1/event-kinds"])
def test_a_catalogue_needs_a_login_and_the_csv_of_it_is_its_rows(path: str) -> None:
    assert get(path, None).status_code == 401
    rows = get(path + "?format=csv", Role.VIEWER).text.strip().splitlines()
    assert len(rows) == 1 + len(get(path, Role.VIEWER).json())
