"""Running the API: a Cassandra session (as the stack's `service` user), the ServiceContext around it, uvicorn.

The caller (the CLI's `serve`, fleetsense/stack/api.py) turns the stack's configuration into ServeSettings and the
Cassandra login: the service layer never imports the roof. `openapi_json` needs no database at all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fleetsense.cloud.cassandra_session import Login, connect
from fleetsense.service.app import create_app
from fleetsense.service.context import ServiceContext
from fleetsense.service.db import Db
from fleetsense.service.settings import ServeSettings

from fleetsense.errors import ConfigError


def openapi_json() -> str:
    """The OpenAPI document, built without a database (`fleetsense serve --print-openapi`)."""
    return json.dumps(create_app(context=None).openapi(), indent=2, sort_keys=False)


def cassandra_contact(text: str) -> tuple[str, int]:
    """`host[,host...]:port` as connect() takes it."""
    hosts, _, port = text.rpartition(":")
    if not hosts or not port.isdigit() or not 0 < int(port) < 65_536:
        raise ConfigError(f"cassandra_contact {text!r} is not host[,host...]:port", hint="e.g. 127.0.0.1:9042")
    return hosts, int(port)


def build_context(settings: ServeSettings, session: Any) -> ServiceContext:
    """The context requests share, with the components that run beside the requests, started in this order: the
    hub's subscribers (webhooks, the review queue) before the live feed that fills it."""
    from fleetsense.service.badges import BadgeSweep
    from fleetsense.service.fleet_snapshot import FleetSnapshotter
    from fleetsense.service.live_feed import LiveFeed
    from fleetsense.service.review_feed import ReviewFeed
    from fleetsense.service.reviews import ReviewCatchUp
    from fleetsense.service.webhook_dispatcher import webhook_dispatcher

    db = Db(session, settings.keyspace, results_cache_s=settings.results_version_cache_s)
    context = ServiceContext(db=db, settings=settings)
    context.components += [
        FleetSnapshotter(),
        webhook_dispatcher(context),
        ReviewFeed(),
        ReviewCatchUp(),
        BadgeSweep(),
        LiveFeed(),
    ]
    return context


@contextmanager
def opened_context(settings: ServeSettings, login: Login | None) -> Iterator[ServiceContext]:
    with connect(cassandra_contact(settings.cassandra_contact), login=login) as session:
        yield build_context(settings, session)


def uvicorn_config(app: Any, settings: ServeSettings) -> Any:
    """uvicorn's configuration: the address, and TLS when the settings have a certificate (the secure profile)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        proxy_headers=False,  # the client address is the socket's: a header must not pick the login brake's key
        server_header=False,
        log_level="info",
    )


def run(settings: ServeSettings, login: Login | None) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's own handlers end it cleanly)."""
    import uvicorn

    with opened_context(settings, login) as context:
        uvicorn.Server(uvicorn_config(create_app(context=context), settings)).run()
