"""The webhook routes' guard, without a database: every route answers 401 to no proof of identity and 403 to a
viewer or a manager, before it reads a body or asks the database (their behaviour with Cassandra:
tests/integration/test_webhooks.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fleetsense.service.app import create_app
from fleetsense.service.auth import current_principal
from fleetsense.service.roles import Principal, Role

ROUTES = [
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/wh_1"),
    ("PATCH", "/v1/webhooks/wh_1"),
    ("DELETE", "/v1/webhooks/wh_1"),
    ("POST", "/v1/webhooks/wh_1/secret"),
    ("GET", "/v1/webhooks/wh_1/deliveries"),
    ("POST", "/v1/webhooks/wh_1/test"),
]


def test_the_list_covers_every_webhook_route_in_the_openapi_document() -> None:
    paths = create_app().openapi()["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() if "webhooks" in path for method in ops}
    assert documented == {(m, p.replace("wh_1", "{webhook_id}")) for m, p in ROUTES}


def answers(role: Role | None) -> list[int]:
    app = create_app()
    if role is not None:

        async def principal() -> Principal:
            return Principal("someone", role, "token")

        app.dependency_overrides[current_principal] = principal

    async def ask() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            # A body that would be refused (422) if it were read first: the guard answers before.
            return [(await client.request(m, p, content=b"{not json")).status_code for m, p in ROUTES]

    return asyncio.run(ask())


@pytest.mark.parametrize(("role", "status"), [(None, 401), (Role.VIEWER, 403), (Role.MANAGER, 403)])
def test_only_an_admin_reaches_any_webhook_route(role: Role | None, status: int) -> None:
    assert answers(role) == [status] * len(ROUTES)


def test_an_admin_passes_the_guard_and_meets_the_next_check() -> None:
    # No database here: past the guard, every route needs one and says so.
    assert answers(Role.ADMIN) == [503] * len(ROUTES)
