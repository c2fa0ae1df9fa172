"""Vehicle ids: the one name a device has in broker usernames, MQTT topics, routing keys and table keys."""

from __future__ import annotations

import re

from fleetsense.errors import ConfigError

# No `.`, `/`, `+`, `#`, `*` or regex metacharacters: the id is spliced into MQTT topics, AMQP routing keys
# and the broker's topic-permission regex (through {username}), so it must mean itself everywhere.
VEHICLE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_vehicle_id(vehicle_id: str) -> str:
    if not VEHICLE_ID_PATTERN.fullmatch(vehicle_id):
        raise ConfigError(
            f"invalid vehicle id {vehicle_id!r}: use 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'",
            hint="for example van-042; dots, slashes, wildcards and spaces are not allowed",
        )
    return vehicle_id


# The kinds of message a vehicle publishes, each on `fleet/<vehicle-id>/<kind>`: sample batches, and its status
# (heartbeat and last will). The one list: the topics below and the broker's topic permission derive from it.
TELEMETRY_KIND = "telemetry"
STATUS_KIND = "status"
TOPIC_KINDS = (TELEMETRY_KIND, STATUS_KIND)


def telemetry_topic(vehicle_id: str) -> str:
    """The MQTT topic a vehicle publishes its sample batches to."""
    return f"fleet/{validate_vehicle_id(vehicle_id)}/{TELEMETRY_KIND}"


def status_topic(vehicle_id: str) -> str:
    """Where a vehicle publishes its heartbeat, and where its last will lands when it drops off."""
    return f"fleet/{validate_vehicle_id(vehicle_id)}/{STATUS_KIND}"


def vehicle_from_routing_key(routing_key: str) -> str:
    """The vehicle id from an AMQP routing key `fleet.<id>.<kind>` (MQTT `/` becomes `.` on amq.topic)."""
    parts = routing_key.split(".")
    if len(parts) != 3 or parts[0] != "fleet":
        raise ValueError(f"routing key {routing_key!r} is not of the form fleet.<vehicle-id>.<kind>")
    return validate_vehicle_id(parts[1])
