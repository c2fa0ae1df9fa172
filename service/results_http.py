"""Each API request reads one result version (issue 19): an ASGI middleware pins the active version when a request
starts (service/result_version.py) and names it in the response's X-Fleetsense-Results-Version header, so a client
sees which version an answer came from, and a cursor made under one version is refused under another
(service/cursor.py). `GET /v1/result-versions` (service/routes_catalog.py) lists the versions."""

from __future__ import annotations

import logging
from typing import Any

from fleetsense.service.app import API_PREFIX
from fleetsense.service.db import Db
from fleetsense.service.result_version import HEADER, Active, code_only, current_pin

log = logging.getLogger(__name__)

_HEADER = HEADER.lower().encode("latin-1")
# A load balancer's probe answers without Cassandra (service/routes_health.py): it is never held up by a read of
# the versions.
UNPINNED_PATHS = frozenset({f"{API_PREFIX}/health"})


class PinResultsVersion:
    """Pins every request under /v1 to the active result version, resolved at its start. A version that cannot be
    read then (Cassandra away) is not an error here: the request's result reads try again and fail with their own
    error, and a request that reads no results answers as before."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        db = _db_of(scope)
        if db is None or current_pin() is not None:
            await self.app(scope, receive, send)
            return
        with db.pinned() as pin:
            try:
                await pin.active()
            except Exception as exc:  # the reads that need it raise their own error
                log.warning("the active result version could not be read at a request's start: %s", exc)

            async def send_naming_the_version(message: Any) -> None:
                if message["type"] == "http.response.start" and pin.resolved is not None:
                    version = str(pin.resolved.version).encode("latin-1")
                    message = {**message, "headers": [*message.get("headers", ()), (_HEADER, version)]}
                await send(message)

            await self.app(scope, receive, send_naming_the_version)


def _db_of(scope: Any) -> Db | None:
    """The database of a request under /v1 of an app with one (None: the app built without a database, or a test's
    stand-in for it, which has no versions)."""
    path = scope.get("path", "")
    if scope["type"] != "http" or not path.startswith(API_PREFIX + "/") or path in UNPINNED_PATHS:
        return None
    context = getattr(getattr(scope.get("app"), "state", None), "context", None)
    db = getattr(context, "db", None) if context is not None else None
    return db if isinstance(db, Db) else None


async def serving(request: Any) -> Active:
    """The result version this request reads (its pin's); for an app without a database, version 1 with the code's
    own settings."""
    db = _db_of(request.scope)
    return code_only() if db is None else await db.active_version()
