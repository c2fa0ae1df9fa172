"""The broker topology as data, applied idempotently: vhost, queues, bindings and service users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetsense.gateway.management import ManagementClient

FLEET_VHOST = "fleet"
MQTT_EXCHANGE = "amq.topic"  # where the MQTT plugin publishes; MQTT `/` becomes `.` in routing keys
TELEMETRY_QUEUE = "fleet.telemetry"
FLINK_USER = "fleetsense-flink"


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    name: str
    binding_key: str
    arguments: dict[str, Any]


QUEUES = (
    QueueSpec(
        name=TELEMETRY_QUEUE,
        binding_key="fleet.*.telemetry",
        # Quorum: replicated and durable on a cluster; on one node it still survives broker restarts.
        arguments={"x-queue-type": "quorum"},
    ),
)


def apply(client: ManagementClient, *, operator: str) -> None:
    client.put_vhost(FLEET_VHOST)
    client.put_permissions(FLEET_VHOST, operator, configure=".*", write=".*", read=".*")
    for spec in QUEUES:
        client.put_queue(FLEET_VHOST, spec.name, spec.arguments)
        client.bind(FLEET_VHOST, MQTT_EXCHANGE, spec.name, spec.binding_key)


def ensure_flink_user(client: ManagementClient, password: str) -> None:
    """The job's own user: it may consume from the fleet queues and nothing else."""
    client.put_user(FLINK_USER, password)
    queues = "|".join(spec.name.replace(".", r"\.") for spec in QUEUES)
    client.put_permissions(FLEET_VHOST, FLINK_USER, configure="^$", write="^$", read=f"^({queues})$")
