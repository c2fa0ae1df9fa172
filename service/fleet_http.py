"""What the read routes share: the service's context from the request, the cursor in and out, and each bad query
parameter turned into a 400 that says what to send instead."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request, status
from fleetsense.service import cursor as cursors
from fleetsense.service.context import ServiceContext
from fleetsense.service.cursor import Cursor, CursorError
from fleetsense.service.fleet_query import QueryError


def context_of(request: Request) -> ServiceContext:
    context = request.app.state.context
    if context is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this app runs without a database")
    assert isinstance(context, ServiceContext)
    return context


@contextmanager
def bad_request() -> Iterator[None]:
    """A QueryError or CursorError raised inside becomes a 400 with its message."""
    try:
        yield
    except (QueryError, CursorError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


class Cursors:
    """Reads and writes the cursors of one list with its filters (`query_tag`)."""

    def __init__(self, context: ServiceContext, *query: object) -> None:
        self.key = cursors.signing_key(context.settings.secret_key)
        self.query = cursors.query_tag(*query)

    def read(self, text: str | None) -> Cursor | None:
        if text is None:
            return None
        with bad_request():
            return cursors.decode(text, key=self.key, query=self.query)

    def write(self, cursor: Cursor | None) -> str | None:
        return None if cursor is None else cursors.encode(cursor, key=self.key, query=self.query)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
