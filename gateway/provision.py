"""Per-device broker users: each vehicle logs in as itself and may publish only under fleet/<its id>/."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from fleetsense.gateway.management import ManagementClient
from fleetsense.gateway.topology import FLEET_VHOST, MQTT_EXCHANGE

from fleetsense.device_config import BrokerConfig, EdgeConfig, StorageConfig, render
from fleetsense.ids import validate_vehicle_id

# The broker substitutes the authenticated username, never the client-chosen client_id.
DEVICE_TOPIC_PATTERN = r"^fleet\.{username}\.[a-z]+$"


@dataclass(frozen=True, kw_only=True)
class BrokerEndpoint:
    host: str
    mqtt_port: int


def provision(
    client: ManagementClient,
    vehicle_id: str,
    *,
    endpoint: BrokerEndpoint,
    config_path: Path,
    state_dir: Path,
    password: str,
) -> EdgeConfig:
    validate_vehicle_id(vehicle_id)
    client.put_user(vehicle_id, password)
    # MQTT publishing needs write on the exchange only; no queue of its own, no reads.
    client.put_permissions(FLEET_VHOST, vehicle_id, configure="^$", write=f"^{re.escape(MQTT_EXCHANGE)}$", read="^$")
    client.put_topic_permissions(FLEET_VHOST, vehicle_id, exchange=MQTT_EXCHANGE, write=DEVICE_TOPIC_PATTERN, read="^$")
    config = EdgeConfig(
        vehicle_id=vehicle_id,
        broker=BrokerConfig(host=endpoint.host, port=endpoint.mqtt_port, username=vehicle_id, password=password),
        storage=StorageConfig(state_dir=str(state_dir)),
    )
    config_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(render(config))
    os.chmod(config_path, 0o600)  # an existing file keeps its old mode through O_CREAT
    return config


def revoke(client: ManagementClient, vehicle_id: str) -> None:
    validate_vehicle_id(vehicle_id)
    client.delete_user(vehicle_id)  # removes its permissions too and closes nothing else
