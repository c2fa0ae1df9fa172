"""The driver registry: who drives for the fleet (`drivers`, one partition per fleet) and which badge names whom
(`drivers_by_badge`, kept consistent with it: a badge moved or removed loses its old row). Ids and badges are checked
here once, for the API, the CLI and the badge sweep alike."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.service.db import Db

from fleetsense.errors import ConfigError

MAX_ID_CHARS = 64
_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}")
# A badge as an RFID reader reports it: hex UIDs, with the separators readers use.
_BADGE = re.compile(rf"[A-Za-z0-9:_-]{{1,{MAX_ID_CHARS}}}")
MAX_TEXT_CHARS = 200  # a name, an employee number, a manager's username


class NotFound(ConfigError):
    """What a request names does not exist (404)."""


class Conflict(ConfigError):
    """A request that contradicts what is stored (409): a badge held by another driver, an overlapping assignment."""


def validate_driver_id(text: str) -> str:
    if not isinstance(text, str) or not _ID.fullmatch(text):
        raise ConfigError(
            f"{str(text)[:80]!r} is no driver id",
            hint=f"use 1 to {MAX_ID_CHARS} letters, digits, - and _ (e.g. ann-01)",
        )
    return text


def validate_badge_id(text: str) -> str:
    if not isinstance(text, str) or not _BADGE.fullmatch(text):
        raise ConfigError(
            f"{str(text)[:80]!r} is no badge id",
            hint=f"use 1 to {MAX_ID_CHARS} letters, digits, :, - and _ (as the RFID reader reports it)",
        )
    return text


@dataclass(frozen=True, kw_only=True)
class Driver:
    driver_id: str
    name: str
    employee_no: str | None = None
    badge_id: str | None = None
    manager: str | None = None
    created_ms: int = 0
    retired_ms: int | None = None  # None: active

    @property
    def active(self) -> bool:
        return self.retired_ms is None


_COLUMNS = ("driver_id", "name", "employee_no", "badge_id", "manager", "created_at", "retired_at")
_ONE = t.DRIVERS.read(*_COLUMNS, where=("fleet_id", "driver_id"))
_EVERY = t.DRIVERS.read(*_COLUMNS, where=("fleet_id",))
_BY_BADGE = t.DRIVERS_BY_BADGE.read("fleet_id", "driver_id", where=("badge_id",))


def ms(value: datetime | None) -> int | None:
    """A timestamp column as the driver reads it (a naive UTC datetime) in ms since 1970."""
    return None if value is None else round(value.replace(tzinfo=UTC).timestamp() * 1000)


def _driver(row: Any) -> Driver:
    return Driver(
        driver_id=row.driver_id,
        name=row.name or "",
        employee_no=row.employee_no,
        badge_id=row.badge_id,
        manager=row.manager,
        created_ms=ms(row.created_at) or 0,
        retired_ms=ms(row.retired_at),
    )


async def get_driver(db: Db, fleet_id: str, driver_id: str) -> Driver | None:
    found = await db.rows(_ONE, (fleet_id, driver_id))
    return _driver(found[0]) if found else None


async def require_driver(db: Db, fleet_id: str, driver_id: str) -> Driver:
    driver = await get_driver(db, fleet_id, validate_driver_id(driver_id))
    if driver is None:
        raise NotFound(f"no driver {driver_id!r}", hint="register them first: POST /v1/drivers")
    return driver


async def list_drivers(db: Db, fleet_id: str) -> list[Driver]:
    return [_driver(row) for row in await db.rows(_EVERY, (fleet_id,))]


async def driver_of_badge(db: Db, fleet_id: str, badge_id: str) -> str | None:
    """The driver holding `badge_id` in this fleet, or None."""
    found = [row for row in await db.rows(_BY_BADGE, (badge_id,)) if row.fleet_id == fleet_id]
    return found[0].driver_id if found else None


async def save_driver(db: Db, fleet_id: str, driver: Driver, *, before: Driver | None) -> None:
    """Write a new or changed driver: its registry row, its badge's row, and the removal of the badge it held
    `before`. A badge another driver holds is refused (409) naming them; nothing is written then."""
    if driver.badge_id is not None:
        holder = await driver_of_badge(db, fleet_id, driver.badge_id)
        if holder is not None and holder != driver.driver_id:
            raise Conflict(
                f"badge {driver.badge_id} belongs to driver {holder}",
                hint=f"take it from {holder} first (PATCH /v1/drivers/{holder} with badge_id null)",
            )
    writes = [
        t.DRIVERS.row(
            fleet_id=fleet_id,
            driver_id=driver.driver_id,
            name=driver.name,
            employee_no=driver.employee_no,
            badge_id=driver.badge_id,
            manager=driver.manager,
            created_at=driver.created_ms,
            retired_at=driver.retired_ms,
        )
    ]
    if driver.badge_id is not None:
        writes.append(t.DRIVERS_BY_BADGE.row(badge_id=driver.badge_id, fleet_id=fleet_id, driver_id=driver.driver_id))
    old_badge = before.badge_id if before is not None else None
    deletes = [(t.DRIVERS_BY_BADGE, (old_badge,))] if old_badge and old_badge != driver.badge_id else []
    await db.write(*writes, deletes=deletes, logged_batch=True)


def changed(driver: Driver, changes: dict[str, Any], *, now_ms: int) -> Driver:
    """`driver` with a PATCH's fields (only those given; None clears an optional one), `retire: true` retiring
    them now and `retire: false` bringing them back."""
    fields = {k: v for k, v in changes.items() if k in ("name", "employee_no", "badge_id", "manager")}
    if "name" in fields and not fields["name"]:
        raise ConfigError("a driver's name cannot be empty", hint="give their name, or leave name out")
    if fields.get("badge_id") is not None:
        validate_badge_id(fields["badge_id"])
    if "retire" in changes and changes["retire"] is not None:
        fields["retired_ms"] = (driver.retired_ms or now_ms) if changes["retire"] else None
    return replace(driver, **fields)
