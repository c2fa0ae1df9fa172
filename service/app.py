"""The service layer's ASGI application: FastAPI on uvicorn (docs/service.md says why). Every resource lives under
`/v1`; each group of routes is its own module with an `APIRouter` named `router`, included here in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

API_PREFIX = "/v1"
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
        app.include_router(router, prefix=API_PREFIX)
    return app


def _routers() -> list[Any]:
    # Each module owns its routes; the order is the OpenAPI document's.
    from fleetsense.service import routes_health, routes_live

    return [routes_health.router, routes_live.router]
