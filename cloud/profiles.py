"""Vehicle profiles: which class (car, van, truck) each vehicle belongs to, so its events are judged against
its class's thresholds (cloud/analytics/events.py). The job reads a vehicle's class when it first sees it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fleetsense.cloud.analytics.events import VEHICLE_CLASSES

from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id


def check_vehicle_class(vehicle_class: str) -> str:
    if vehicle_class not in VEHICLE_CLASSES:
        raise ConfigError(
            f"unknown vehicle class {vehicle_class!r}", hint=f"use one of {', '.join(sorted(VEHICLE_CLASSES))}"
        )
    return vehicle_class


def set_vehicle_class(session: Any, keyspace: str, vehicle_ids: Sequence[str], vehicle_class: str) -> None:
    check_vehicle_class(vehicle_class)
    for vehicle_id in vehicle_ids:
        session.execute(
            f"INSERT INTO {keyspace}.vehicle_profiles (vehicle_id, vehicle_class, updated_at) VALUES (%s, %s, %s)",
            (validate_vehicle_id(vehicle_id), vehicle_class, datetime.now(UTC)),
        )


def vehicle_class_of(session: Any, keyspace: str, vehicle_id: str) -> str | None:
    """The vehicle's class, or None when it has no profile (the job's default class applies)."""
    row = session.execute(
        f"SELECT vehicle_class FROM {keyspace}.vehicle_profiles WHERE vehicle_id = %s", (vehicle_id,)
    ).one()
    return row.vehicle_class if row and row.vehicle_class in VEHICLE_CLASSES else None
