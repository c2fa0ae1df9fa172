"""Vehicle profiles: which class (car, van, truck) each vehicle belongs to, so its events are judged against
its class's thresholds (cloud/analytics/events.py). The job looks a vehicle's profile up when it first sees the
vehicle, and every subtask re-reads the whole table every `profile_refresh_s` (60 s), so a class changed later
applies to vehicles it already tracks too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fleetsense.cloud import tables
from fleetsense.cloud.analytics.events import VEHICLE_CLASSES
from fleetsense.cloud.cassandra_session import statement

from fleetsense.errors import ConfigError
from fleetsense.ids import validate_vehicle_id


def check_vehicle_class(vehicle_class: str) -> str:
    if vehicle_class not in VEHICLE_CLASSES:
        raise ConfigError(
            f"unknown vehicle class {vehicle_class!r}", hint=f"use one of {', '.join(sorted(VEHICLE_CLASSES))}"
        )
    return vehicle_class


def set_vehicle_class(session: Any, keyspace: str, vehicle_ids: Sequence[str], vehicle_class: str) -> None:
    from cassandra import ConsistencyLevel

    check_vehicle_class(vehicle_class)
    insert = session.prepare(tables.VEHICLE_PROFILES.insert_cql().format(ks=keyspace))
    insert.consistency_level = ConsistencyLevel.name_to_value[tables.VEHICLE_PROFILES.write_consistency]
    for vehicle_id in vehicle_ids:
        row = {"vehicle_id": validate_vehicle_id(vehicle_id), "vehicle_class": vehicle_class}
        session.execute(insert, row | {"updated_at": datetime.now(UTC)})  # bound by column name


class Profile(NamedTuple):
    vehicle_class: str
    updated_ms: int  # when it was set: of two readings of one vehicle's profile, the later-set one wins


# Read at the table's read consistency (LOCAL_ONE: a missed setting is read at the next refresh).
_PROFILE_OF = tables.VEHICLE_PROFILES.read("vehicle_class", "updated_at", where=("vehicle_id",))
_EVERY_PROFILE = tables.VEHICLE_PROFILES.read("vehicle_id", "vehicle_class", "updated_at")


def profiles_of(session: Any, keyspace: str, vehicle_ids: Sequence[str]) -> dict[str, Profile]:
    """The profiles of those of `vehicle_ids` that have one, read concurrently (a bundle can bring hundreds of
    vehicles the job has not seen yet, e.g. right after it starts)."""
    select = statement(_PROFILE_OF.cql.format(ks=keyspace), consistency=_PROFILE_OF.consistency)
    futures = [(vehicle_id, session.execute_async(select, (vehicle_id,))) for vehicle_id in vehicle_ids]
    profiles: dict[str, Profile] = {}
    for vehicle_id, future in futures:
        row = future.result().one()
        if row and (profile := _profile(row.vehicle_class, row.updated_at)):
            profiles[vehicle_id] = profile
    return profiles


def all_profiles(session: Any, keyspace: str, *, page_rows: int = 5_000) -> dict[str, Profile]:
    """Every vehicle's profile: one row per vehicle, read a page at a time."""
    cql, level = _EVERY_PROFILE.cql.format(ks=keyspace), _EVERY_PROFILE.consistency
    every = statement(cql, consistency=level, fetch_size=page_rows)
    profiles: dict[str, Profile] = {}
    for row in session.execute(every):
        if profile := _profile(row.vehicle_class, row.updated_at):
            profiles[row.vehicle_id] = profile
    return profiles


def _profile(vehicle_class: str | None, updated_at: datetime | None) -> Profile | None:
    """None for a class this version does not know (written by a newer one): the vehicle keeps what it has."""
    if vehicle_class not in VEHICLE_CLASSES:
        return None
    # The driver returns timestamps as naive UTC datetimes.
    updated_ms = int(updated_at.replace(tzinfo=UTC).timestamp() * 1000) if updated_at else 0
    return Profile(vehicle_class, updated_ms)
