"""The service layer's ASGI application: FastAPI on uvicorn (docs/service.md says why). Every resource lives under
`/v1`; each group of routes is its own module with an `APIRouter` named `router`, included here in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fleetsense.service.auth import AUTH_RESPONSES, Problem

API_PREFIX = "/v1"
# The refusals any route may give, declared on every route, so the OpenAPI document (and schemathesis reading it)
# knows them: each is a Problem, {"detail": "what is wrong (what to do: ...)"}.
ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a value the route cannot take (the detail says which and what to do)"},
    **AUTH_RESPONSES,
    404: {"model": Problem, "description": "no such thing"},
    409: {"model": Problem, "description": "it conflicts with what is stored (the detail names what)"},
    503: {"model": Problem, "description": "not ready yet (Retry-After says when to ask again)"},
}
TITLE = "fleetsense"


def create_app(*, context: Any | None = None) -> FastAPI:
    """The application. `context` (service/context.py's ServiceContext) holds the database and the settings; None
    builds the app without one, enough to print its OpenAPI document (`fleetsense serve --print-openapi`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if context is not None:
            await context.start(app)
        try:
            yield
        finally:
            if context is not None:
                await context.stop()

    from fleetsense import __version__

    app = FastAPI(title=TITLE, version=__version__, lifespan=lifespan, openapi_url=f"{API_PREFIX}/openapi.json")
    app.state.context = context
    for router in _routers():
        app.include_router(router, prefix=API_PREFIX, responses=ANSWERS)
    from fleetsense.service.routes_web import web_router

    app.include_router(web_router())  # the dashboard's shell and assets, outside /v1 (routes_web.py says why)
    from fleetsense.service.csv_export import CsvExport
    from fleetsense.service.metrics import MetricsMiddleware
    from fleetsense.service.results_http import PinResultsVersion

    app.add_middleware(PinResultsVersion)  # each /v1 request reads one result version (docs/reprocessing.md)
    app.add_middleware(CsvExport)  # a bounded list's JSON answer as CSV, when asked (the long lists stream their own)
    app.add_middleware(MetricsMiddleware)  # outermost: it times every request, a refused one too
    return app


def _routers() -> list[Any]:
    # Each module owns its routes; the order is the OpenAPI document's (and the live feed's fixed path is
    # matched before the event routes' {event_key:path}).
    from fleetsense.service import (
        routes_assignments,
        routes_auth,
        routes_catalog,
        routes_drivers,
        routes_events,
        routes_fleet,
        routes_health,
        routes_live,
        routes_reviews,
        routes_scores,
        routes_trace,
        routes_trips,
        routes_vehicle_admin,
        routes_vehicles,
        routes_webhooks,
    )

    return [
        routes_health.router,
        routes_auth.router,
        routes_fleet.router,
        routes_vehicles.router,
        routes_vehicle_admin.router,
        routes_catalog.router,
        routes_live.router,
        routes_events.router,
        routes_trace.router,
        routes_trips.router,
        routes_scores.router,
        routes_drivers.router,
        routes_assignments.router,
        routes_reviews.router,
        routes_webhooks.router,
    ]
