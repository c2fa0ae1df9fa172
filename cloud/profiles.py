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


def vehicle_classes_of(session: Any, keyspace: str, vehicle_ids: Sequence[str]) -> dict[str, str]:
    """The classes of those of `vehicle_ids` that have a profile, read concurrently (a bundle can bring hundreds
    of vehicles the job has not seen yet, e.g. right after it starts)."""
    statement = f"SELECT vehicle_class FROM {keyspace}.vehicle_profiles WHERE vehicle_id = %s"
    futures = [(vehicle_id, session.execute_async(statement, (vehicle_id,))) for vehicle_id in vehicle_ids]
    classes: dict[str, str] = {}
    for vehicle_id, future in futures:
        row = future.result().one()
        if row and row.vehicle_class in VEHICLE_CLASSES:
            classes[vehicle_id] = row.vehicle_class
    return classes
