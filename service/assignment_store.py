"""Reading who had which vehicle when: a vehicle's or a driver's assignments, as service/attribution.py's
`Assignment`s (its pure rule attributes results). Writes live with the driver registry."""

from __future__ import annotations

from fleetsense.cloud import tables as t
from fleetsense.service.attribution import Assignment
from fleetsense.service.db import Db

_COLUMNS = ("vehicle_id", "driver_id", "valid_from", "valid_to")
_BY_VEHICLE = t.VEHICLE_ASSIGNMENTS.read(*_COLUMNS, where=("vehicle_id",))
_BY_DRIVER = t.DRIVER_ASSIGNMENTS.read(*_COLUMNS, where=("driver_id",))


def _us(value: object) -> int | None:
    from datetime import UTC, datetime

    if value is None:
        return None
    assert isinstance(value, datetime)
    return round(value.replace(tzinfo=UTC).timestamp() * 1_000_000)


def _assignment(row: object) -> Assignment:
    start = _us(row.valid_from)  # type: ignore[attr-defined]
    assert start is not None
    return Assignment(
        vehicle_id=row.vehicle_id,  # type: ignore[attr-defined]
        driver_id=row.driver_id,  # type: ignore[attr-defined]
        valid_from_us=start,
        valid_to_us=_us(row.valid_to),  # type: ignore[attr-defined]
    )


async def vehicle_assignments(db: Db, vehicle_id: str) -> list[Assignment]:
    """The vehicle's assignments, oldest first."""
    return sorted((_assignment(r) for r in await db.rows(_BY_VEHICLE, (vehicle_id,))), key=lambda a: a.valid_from_us)


async def driver_assignments(db: Db, driver_id: str) -> list[Assignment]:
    """The driver's assignments on every vehicle, oldest first."""
    return sorted((_assignment(r) for r in await db.rows(_BY_DRIVER, (driver_id,))), key=lambda a: a.valid_from_us)
