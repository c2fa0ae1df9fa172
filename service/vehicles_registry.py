"""The fleet's vehicles: registering one into `fleet_vehicles` (the one partition the fleet view and the badge sweep
read), its label, and its class in `vehicle_profiles`, written the way `fleetsense vehicle-class` writes it (the job
re-reads that table every `profile_refresh_s`, so a class set here picks the vehicle's thresholds within a minute)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetsense.cloud import tables as t
from fleetsense.cloud.profiles import check_vehicle_class
from fleetsense.service.db import Db
from fleetsense.service.drivers import MAX_TEXT_CHARS, NotFound, ms

from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id


@dataclass(frozen=True, kw_only=True)
class FleetVehicle:
    vehicle_id: str
    label: str | None
    registered_ms: int


_COLUMNS = ("vehicle_id", "label", "registered_at")
_ONE = t.FLEET_VEHICLES.read(*_COLUMNS, where=("fleet_id", "vehicle_id"))
_EVERY = t.FLEET_VEHICLES.read(*_COLUMNS, where=("fleet_id",))
_CLASS = t.VEHICLE_PROFILES.read("vehicle_class", where=("vehicle_id",))


def _vehicle(row: Any) -> FleetVehicle:
    return FleetVehicle(vehicle_id=row.vehicle_id, label=row.label, registered_ms=ms(row.registered_at) or 0)


def check_label(label: str | None) -> str | None:
    if label is not None and (not label.strip() or len(label) > MAX_TEXT_CHARS):
        raise ConfigError(f"a label of {len(label)} characters", hint=f"give 1 to {MAX_TEXT_CHARS}, or null")
    return label


async def get_vehicle(db: Db, fleet_id: str, vehicle_id: str) -> FleetVehicle | None:
    found = await db.rows(_ONE, (fleet_id, vehicle_id))
    return _vehicle(found[0]) if found else None


async def fleet_vehicles(db: Db, fleet_id: str) -> list[FleetVehicle]:
    """Every registered vehicle of the fleet: one partition."""
    return [_vehicle(row) for row in await db.rows(_EVERY, (fleet_id,))]


async def register(db: Db, fleet_id: str, vehicle_id: str, label: str | None, *, now_ms: int) -> FleetVehicle:
    """Register a vehicle (again: its label is set, its registration time kept)."""
    validate_vehicle_id(vehicle_id)
    before = await get_vehicle(db, fleet_id, vehicle_id)
    vehicle = FleetVehicle(
        vehicle_id=vehicle_id, label=check_label(label), registered_ms=before.registered_ms if before else now_ms
    )
    await db.write(
        t.FLEET_VEHICLES.row(
            fleet_id=fleet_id, vehicle_id=vehicle_id, label=vehicle.label, registered_at=vehicle.registered_ms
        )
    )
    return vehicle


async def register_missing(db: Db, fleet_id: str, vehicle_ids: list[str], *, now_ms: int) -> list[str]:
    """Register those of `vehicle_ids` the fleet does not have yet (a provisioned device's vehicle, the demo's
    vans), leaving the others' labels alone; the ids registered."""
    known = {vehicle.vehicle_id for vehicle in await fleet_vehicles(db, fleet_id)}
    added = [vehicle_id for vehicle_id in dict.fromkeys(vehicle_ids) if vehicle_id not in known]
    for vehicle_id in added:
        await register(db, fleet_id, vehicle_id, None, now_ms=now_ms)
    return added


async def relabel(db: Db, fleet_id: str, vehicle_id: str, label: str | None, *, now_ms: int) -> FleetVehicle:
    if await get_vehicle(db, fleet_id, validate_vehicle_id(vehicle_id)) is None:
        raise NotFound(f"vehicle {vehicle_id} is not registered", hint="register it first: POST /v1/vehicles")
    return await register(db, fleet_id, vehicle_id, label, now_ms=now_ms)


async def vehicle_class(db: Db, vehicle_id: str) -> str | None:
    found = await db.rows(_CLASS, (vehicle_id,))
    return found[0].vehicle_class if found else None


async def set_class(db: Db, vehicle_id: str, vehicle_class: str, *, now_ms: int) -> None:
    """The vehicle's class, as cloud/profiles.py's `set_vehicle_class` writes it (vehicle_profiles has no service
    statement of its own: the CLI and this write the same declared INSERT at the table's write consistency)."""
    validate_vehicle_id(vehicle_id)
    check_vehicle_class(vehicle_class)
    values = {"vehicle_id": vehicle_id, "vehicle_class": vehicle_class, "updated_at": now_ms}
    table = t.VEHICLE_PROFILES
    await db.execute(
        table.insert_cql(),
        [values[c] for c in table.written_columns],
        consistency=table.write_consistency,
    )
