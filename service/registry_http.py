"""What the registry's routes (drivers, assignments, vehicles, reviews) share: the request's database and fleet, the
clock, times as the API takes them, and the registry's errors as HTTP answers (404, 409, 400: never a 5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fleetsense.service.auth import require
from fleetsense.service.db import Db
from fleetsense.service.drivers import Conflict, NotFound
from fleetsense.service.roles import Principal, Role
from pydantic import AfterValidator, AwareDatetime

from fleetsense.errors import ConfigError

# Who may call a route: the registry reads are a viewer's, its changes a manager's (vehicles an admin's).
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # later than any shift: a typo in the year, not a plan
_MS = timedelta(milliseconds=1)


def _in_range(moment: datetime) -> datetime:
    try:
        inside = EPOCH <= moment < LATEST
    except OverflowError:  # year 9999 at a negative offset is beyond datetime's range in UTC
        inside = False
    if not inside:
        raise ValueError(f"{moment.isoformat()} is outside 1970..2099: give a time of the fleet's life")
    return moment


# A time as the API takes it: ISO 8601 with its offset ("2026-12-06T08:00:00Z"), kept to the millisecond.
Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]


def to_ms(moment: datetime) -> int:
    """ms since 1970, the sub-millisecond part dropped (Cassandra keeps ms)."""
    return (moment - EPOCH) // _MS


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + value * _MS


def now_ms() -> int:
    return to_ms(datetime.now(UTC))


def context_of(request: Request) -> Any:
    context = request.app.state.context
    if context is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this app runs without a database")
    return context


def db_of(request: Request) -> Db:
    db: Db = context_of(request).db
    return db


def fleet_of(request: Request) -> str:
    fleet: str = context_of(request).settings.fleet_id
    return fleet


def _detail(exc: ConfigError) -> str:
    return f"{exc.message} (what to do: {exc.hint})" if exc.hint else exc.message


@contextmanager
def answered() -> Iterator[None]:
    """The registry's errors as HTTP answers: NotFound 404, Conflict 409, any other ConfigError 400."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _detail(exc)) from None
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, _detail(exc)) from None
    except ConfigError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, _detail(exc)) from None
